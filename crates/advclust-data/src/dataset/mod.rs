//! The in-memory [`Dataset`] and its transformations.

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::DataError;
use crate::util::{par_items, try_with_capacity, try_zeroed_f32, u8_to_f32_table};

mod batches;
mod stats;

pub use batches::{Batch, Batches, LastBatch};
pub use stats::ChannelStats;

/// A labelled image dataset held on the host.
///
/// * Images are one contiguous `Vec<f32>` in NCHW order (`n` images, `c`
///   channels, `h` rows, `w` columns), with pixel values in `[0, 1]` as
///   produced by every reader of this crate (`byte / 255`). Only
///   [`Dataset::normalize`] takes values out of that range.
/// * Labels are class ids in `0..num_classes`, where `num_classes` is the
///   number of class names.
///
/// Operations that select or reorder images (`shuffle`, `subset`, `take`,
/// `per_class`) keep the class names, so class ids stay comparable between a
/// dataset and its subsets even when a class ends up empty.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    images: Vec<f32>,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    labels: Vec<usize>,
    class_names: Vec<String>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("n", &self.n)
            .field("c", &self.c)
            .field("h", &self.h)
            .field("w", &self.w)
            .field("num_classes", &self.class_names.len())
            .finish_non_exhaustive()
    }
}

fn checked_len(dims: [usize; 4]) -> Option<usize> {
    dims[0]
        .checked_mul(dims[1])?
        .checked_mul(dims[2])?
        .checked_mul(dims[3])
}

impl Dataset {
    /// Builds a dataset from NCHW pixel values, `dims = [n, c, h, w]`, labels
    /// and class names.
    ///
    /// Errors if `c`, `h` or `w` is zero, if `c*h*w` overflows, if
    /// `images.len() != n*c*h*w`, if
    /// there are not `n` labels, or if a label is `>= class_names.len()`.
    /// Values are not range-checked (readers produce `[0, 1]`).
    pub fn new(
        images: Vec<f32>,
        dims: [usize; 4],
        labels: Vec<usize>,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        let [n, c, h, w] = dims;
        if c == 0 || h == 0 || w == 0 {
            return Err(DataError::InvalidArgument(format!(
                "image dims must be positive, got c={c} h={h} w={w}"
            )));
        }
        // Checked on its own so `image_len` cannot overflow even when n = 0.
        if c.checked_mul(h).and_then(|x| x.checked_mul(w)).is_none() {
            return Err(DataError::InvalidArgument(format!(
                "image dims c={c} h={h} w={w} overflow usize"
            )));
        }
        match checked_len(dims) {
            Some(len) if len == images.len() => {}
            _ => {
                return Err(DataError::InvalidArgument(format!(
                    "{} pixel values do not match dims {n}x{c}x{h}x{w}",
                    images.len()
                )));
            }
        }
        if labels.len() != n {
            return Err(DataError::InvalidArgument(format!(
                "{} labels for {n} images",
                labels.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l >= class_names.len()) {
            return Err(DataError::InvalidArgument(format!(
                "label {l} out of range for {} class names",
                class_names.len()
            )));
        }
        Ok(Dataset {
            images,
            n,
            c,
            h,
            w,
            labels,
            class_names,
        })
    }

    /// Like [`Dataset::new`] from 8-bit pixels (NCHW), mapped to `b / 255`.
    pub fn from_u8(
        pixels: &[u8],
        dims: [usize; 4],
        labels: Vec<usize>,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        let t = u8_to_f32_table();
        let images = pixels.iter().map(|&b| t[b as usize]).collect();
        Dataset::new(images, dims, labels, class_names)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if there is no image.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// Channels per image (1 for grayscale, 3 for RGB).
    pub fn channels(&self) -> usize {
        self.c
    }

    /// Image height (rows).
    pub fn height(&self) -> usize {
        self.h
    }

    /// Image width (columns).
    pub fn width(&self) -> usize {
        self.w
    }

    /// Values per image, `c * h * w`.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// All pixel values, NCHW.
    pub fn images(&self) -> &[f32] {
        &self.images
    }

    /// All pixel values, NCHW, mutable (the length cannot change).
    pub fn images_mut(&mut self) -> &mut [f32] {
        &mut self.images
    }

    /// Image `i` as a CHW slice.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        assert!(
            i < self.n,
            "image index {i} out of range for {} images",
            self.n
        );
        let il = self.image_len();
        &self.images[i * il..(i + 1) * il]
    }

    /// Image `i` as a mutable CHW slice.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(
            i < self.n,
            "image index {i} out of range for {} images",
            self.n
        );
        let il = self.image_len();
        &mut self.images[i * il..(i + 1) * il]
    }

    /// All labels, one per image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Label of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    /// Class names; class id `k` is `class_names()[k]`.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes (`class_names().len()`), including classes that
    /// have no image in this dataset.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Number of images of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// Takes the dataset apart: `(images, [n, c, h, w], labels, class_names)`.
    pub fn into_parts(self) -> (Vec<f32>, [usize; 4], Vec<usize>, Vec<String>) {
        let dims = self.dims();
        (self.images, dims, self.labels, self.class_names)
    }

    /// Pixels re-quantised to bytes, `round(x * 255)` clamped to `0..=255`.
    ///
    /// For data read from 8-bit files (and not transformed since) this gives
    /// back the original bytes exactly.
    pub fn to_u8(&self) -> Vec<u8> {
        self.images
            .iter()
            .map(|&x| (x * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// Images and labels at `indices`, in that order (repeats allowed).
    ///
    /// Errors if an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self, DataError> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.n) {
            return Err(DataError::InvalidArgument(format!(
                "subset index {i} out of range for {} images",
                self.n
            )));
        }
        let images = self.alloc_images(indices.len(), "subset")?;
        Ok(self.gather_into(images, indices))
    }

    /// Room for `count` images, or an error instead of an abort when that
    /// overflows or cannot be allocated.
    fn alloc_images(&self, count: usize, what: &str) -> Result<Vec<f32>, DataError> {
        let len = count.checked_mul(self.image_len()).ok_or_else(|| {
            DataError::InvalidArgument(format!(
                "{what} of {count} images of {} values overflows usize",
                self.image_len()
            ))
        })?;
        try_with_capacity(len, || format!("{what} of {count} images"))
    }

    /// `indices` must be in range and at most `len()` long (or come with
    /// `images` already allocated by [`Dataset::alloc_images`]).
    fn gather(&self, indices: &[usize]) -> Self {
        let images = Vec::with_capacity(indices.len() * self.image_len());
        self.gather_into(images, indices)
    }

    fn gather_into(&self, mut images: Vec<f32>, indices: &[usize]) -> Self {
        let il = self.image_len();
        for &i in indices {
            images.extend_from_slice(&self.images[i * il..(i + 1) * il]);
        }
        Dataset {
            images,
            n: indices.len(),
            c: self.c,
            h: self.h,
            w: self.w,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// The first `min(n, len)` images.
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.n);
        let il = self.image_len();
        Dataset {
            images: self.images[..n * il].to_vec(),
            n,
            c: self.c,
            h: self.h,
            w: self.w,
            labels: self.labels[..n].to_vec(),
            class_names: self.class_names.clone(),
        }
    }

    /// Splits into the first `min(k, len)` images and the rest.
    pub fn split_at(&self, k: usize) -> (Self, Self) {
        let k = k.min(self.n);
        let rest: Vec<usize> = (k..self.n).collect();
        (self.take(k), self.gather(&rest))
    }

    /// Stratified subset: the first `n` images of every class (all of them
    /// for a class with fewer), keeping dataset order. Shuffle first for a
    /// random stratified sample.
    pub fn per_class(&self, n: usize) -> Self {
        let mut seen = vec![0usize; self.num_classes()];
        let keep: Vec<usize> = (0..self.n)
            .filter(|&i| {
                let s = &mut seen[self.labels[i]];
                *s += 1;
                *s <= n
            })
            .collect();
        self.gather(&keep)
    }

    /// The permutation [`Dataset::shuffle`] applies for `seed`:
    /// new image `j` is old image `perm[j]`.
    ///
    /// Deterministic across platforms and runs (ChaCha8 seeded with
    /// `seed_from_u64`, Fisher-Yates from `rand`).
    pub fn shuffle_permutation(&self, seed: u64) -> Vec<usize> {
        let mut perm: Vec<usize> = (0..self.n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        perm.shuffle(&mut rng);
        perm
    }

    /// Shuffles images (with their labels) in place, reproducibly for a
    /// given `seed`.
    pub fn shuffle(&mut self, seed: u64) {
        *self = self.shuffled(seed);
    }

    /// A shuffled copy, see [`Dataset::shuffle`].
    pub fn shuffled(&self, seed: u64) -> Self {
        self.gather(&self.shuffle_permutation(seed))
    }

    /// Iterates over consecutive batches of `batch_size` images in dataset
    /// order; a final smaller batch is kept or dropped according to `last`.
    ///
    /// Errors ([`DataError::InvalidArgument`]) if `batch_size == 0`.
    pub fn batches(&self, batch_size: usize, last: LastBatch) -> Result<Batches<'_>, DataError> {
        if batch_size == 0 {
            return Err(DataError::InvalidArgument(
                "batch size must be positive, got 0".into(),
            ));
        }
        let end = match last {
            LastBatch::Keep => self.n,
            LastBatch::Drop => self.n - self.n % batch_size,
        };
        Ok(Batches {
            data: self,
            batch_size,
            pos: 0,
            end,
        })
    }

    /// Bilinear resize of every image to `height x width`.
    ///
    /// Uses half-pixel centres with edge clamping (the convention of
    /// PyTorch's `interpolate(mode="bilinear", align_corners=False)` and of
    /// OpenCV), without anti-aliasing, so strong down-scaling may alias.
    /// Returns a copy when the size is unchanged. Errors on a zero size, or
    /// on a target too large to allocate.
    pub fn resize(&self, height: usize, width: usize) -> Result<Self, DataError> {
        if height == 0 || width == 0 {
            return Err(DataError::InvalidArgument(format!(
                "resize target must be positive, got {height}x{width}"
            )));
        }
        if (height, width) == (self.h, self.w) {
            return Ok(self.clone());
        }
        let too_big = || format!("resize of {} images to {height}x{width}", self.n);
        let overflow = || DataError::InvalidArgument(format!("{} overflows usize", too_big()));
        let dst_plane = height.checked_mul(width).ok_or_else(overflow)?;
        let total = (self.n * self.c)
            .checked_mul(dst_plane)
            .ok_or_else(overflow)?;
        let mut out = try_zeroed_f32(total, too_big)?;
        let xs = interp_weights(self.w, width, too_big)?;
        let ys = interp_weights(self.h, height, too_big)?;
        let (sh, sw) = (self.h, self.w);
        let src_plane = sh * sw;
        let src = &self.images;
        par_items(&mut out, dst_plane, 256, |p, dst| {
            let plane = &src[p * src_plane..(p + 1) * src_plane];
            for (row, &(y0, y1, fy)) in dst.chunks_mut(width).zip(&ys) {
                let r0 = &plane[y0 * sw..(y0 + 1) * sw];
                let r1 = &plane[y1 * sw..(y1 + 1) * sw];
                for (o, &(x0, x1, fx)) in row.iter_mut().zip(&xs) {
                    let top = r0[x0] + (r0[x1] - r0[x0]) * fx;
                    let bot = r1[x0] + (r1[x1] - r1[x0]) * fx;
                    *o = top + (bot - top) * fy;
                }
            }
            Ok::<(), ()>(())
        })
        .expect("infallible");
        Ok(Dataset {
            images: out,
            n: self.n,
            c: self.c,
            h: height,
            w: width,
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
        })
    }

    /// Per-channel mean and population standard deviation over all images
    /// (computed in `f64`). Errors on an empty dataset.
    pub fn channel_stats(&self) -> Result<ChannelStats, DataError> {
        if self.n == 0 {
            return Err(DataError::InvalidArgument(
                "channel stats of an empty dataset".into(),
            ));
        }
        let hw = self.h * self.w;
        let count = (self.n * hw) as f64;
        let mut sum = vec![0f64; self.c];
        for (i, plane) in self.images.chunks(hw).enumerate() {
            sum[i % self.c] += plane.iter().map(|&x| x as f64).sum::<f64>();
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let mut sq = vec![0f64; self.c];
        for (i, plane) in self.images.chunks(hw).enumerate() {
            let m = mean[i % self.c];
            sq[i % self.c] += plane
                .iter()
                .map(|&x| (x as f64 - m) * (x as f64 - m))
                .sum::<f64>();
        }
        Ok(ChannelStats {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: sq.iter().map(|&s| (s / count).sqrt() as f32).collect(),
        })
    }

    /// Normalises every channel in place with `stats` (see
    /// [`ChannelStats`]); values leave `[0, 1]` afterwards. Errors if the
    /// channel count differs or a std is not positive.
    pub fn normalize(&mut self, stats: &ChannelStats) -> Result<(), DataError> {
        self.check_stats(stats)?;
        stats.normalize_slice(&mut self.images, self.h * self.w)
    }

    /// Undoes [`Dataset::normalize`].
    pub fn denormalize(&mut self, stats: &ChannelStats) -> Result<(), DataError> {
        self.check_stats(stats)?;
        stats.denormalize_slice(&mut self.images, self.h * self.w)
    }

    fn check_stats(&self, stats: &ChannelStats) -> Result<(), DataError> {
        if stats.channels() != self.c {
            return Err(DataError::InvalidArgument(format!(
                "stats for {} channels applied to {}-channel images",
                stats.channels(),
                self.c
            )));
        }
        Ok(())
    }

    /// One-channel copy: a copy for `c == 1`; ITU-R BT.601 luma
    /// (`0.299 R + 0.587 G + 0.114 B`, as PIL and torchvision) for `c == 3`;
    /// the plain channel mean otherwise.
    pub fn to_grayscale(&self) -> Self {
        if self.c == 1 {
            return self.clone();
        }
        let hw = self.h * self.w;
        let weights: Vec<f32> = if self.c == 3 {
            vec![0.299, 0.587, 0.114]
        } else {
            vec![1.0 / self.c as f32; self.c]
        };
        let mut out = vec![0f32; self.n * hw];
        for (dst, img) in out.chunks_mut(hw).zip(self.images.chunks(self.image_len())) {
            for (plane, &wt) in img.chunks(hw).zip(&weights) {
                dst.iter_mut().zip(plane).for_each(|(o, &x)| *o += wt * x);
            }
        }
        Dataset {
            images: out,
            c: 1,
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
            ..*self
        }
    }

    /// Copy made of the listed channels, in that order; repeats are allowed,
    /// so `select_channels(&[0, 0, 0])` turns grayscale into 3-channel
    /// "RGB". Errors on an empty list or an out-of-range channel.
    pub fn select_channels(&self, channels: &[usize]) -> Result<Self, DataError> {
        if channels.is_empty() {
            return Err(DataError::InvalidArgument("no channel selected".into()));
        }
        if let Some(ch) = channels.iter().find(|&&ch| ch >= self.c) {
            return Err(DataError::InvalidArgument(format!(
                "channel {ch} out of range for {}-channel images",
                self.c
            )));
        }
        let hw = self.h * self.w;
        let mut out = Vec::with_capacity(self.n * channels.len() * hw);
        for img in self.images.chunks(self.image_len()) {
            for &ch in channels {
                out.extend_from_slice(&img[ch * hw..(ch + 1) * hw]);
            }
        }
        Ok(Dataset {
            images: out,
            c: channels.len(),
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
            ..*self
        })
    }
}

/// For each output coordinate: the two source coordinates and the weight
/// of the second, with half-pixel centres and edge clamping.
/// Errors instead of aborting if the table cannot be allocated.
fn interp_weights(
    src: usize,
    dst: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<(usize, usize, f32)>, DataError> {
    let scale = src as f64 / dst as f64;
    let mut table = try_with_capacity(dst, what)?;
    table.extend((0..dst).map(|o| {
        let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(src - 1);
        let i1 = (i0 + 1).min(src - 1);
        let f = if i1 == i0 {
            0.0
        } else {
            (s - i0 as f64) as f32
        };
        (i0, i1, f)
    }));
    Ok(table)
}

impl Dataset {
    /// All images as a validated [`advclust_core::ImageBatch`] in the unit box `[0, 1]`, the
    /// pixel space every attack works in (fails with [`DataError::Core`] if the dataset was
    /// normalised out of that box).
    pub fn to_image_batch(&self) -> Result<advclust_core::ImageBatch, DataError> {
        Ok(advclust_core::ImageBatch::unit(
            self.images().to_vec(),
            self.dims(),
        )?)
    }

    /// The images at `indices` as an [`advclust_core::ImageBatch`] in `[0, 1]`.
    pub fn image_batch(&self, indices: &[usize]) -> Result<advclust_core::ImageBatch, DataError> {
        let mut data = self.alloc_images(indices.len(), "image batch")?;
        for &i in indices {
            if i >= self.len() {
                return Err(DataError::InvalidArgument(format!(
                    "index {i} out of range for {} images",
                    self.len()
                )));
            }
            data.extend_from_slice(self.image(i));
        }
        let mut dims = self.dims();
        dims[0] = indices.len();
        Ok(advclust_core::ImageBatch::unit(data, dims)?)
    }
}
