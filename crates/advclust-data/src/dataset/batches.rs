//! Borrowed batches of a [`Dataset`], in dataset order.

use super::Dataset;

/// What [`Dataset::batches`] does with a final batch smaller than the batch
/// size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastBatch {
    /// Yield the final, smaller batch.
    #[default]
    Keep,
    /// Skip it, so every batch has exactly the batch size.
    Drop,
}

/// One batch borrowed from a [`Dataset`], see [`Dataset::batches`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batch<'a> {
    /// Index in the dataset of the batch's first image.
    pub start: usize,
    /// The batch's images, NCHW, `dims[0] * dims[1] * dims[2] * dims[3]` values.
    pub images: &'a [f32],
    /// The batch's labels, one per image.
    pub labels: &'a [usize],
    /// `[batch_len, c, h, w]`.
    pub dims: [usize; 4],
}

impl Batch<'_> {
    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the batch holds no image (never the case for batches yielded
    /// by [`Batches`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Iterator over consecutive batches of a [`Dataset`], in dataset order.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    pub(super) data: &'a Dataset,
    pub(super) batch_size: usize,
    pub(super) pos: usize,
    pub(super) end: usize,
}

impl<'a> Iterator for Batches<'a> {
    type Item = Batch<'a>;

    fn next(&mut self) -> Option<Batch<'a>> {
        if self.pos >= self.end {
            return None;
        }
        let start = self.pos;
        let stop = start.saturating_add(self.batch_size).min(self.end);
        self.pos = stop;
        let d = self.data;
        let il = d.image_len();
        Some(Batch {
            start,
            images: &d.images[start * il..stop * il],
            labels: &d.labels[start..stop],
            dims: [stop - start, d.c, d.h, d.w],
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.end - self.pos).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}
