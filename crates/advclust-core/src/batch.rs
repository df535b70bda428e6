//! Host-side image batches and their value box.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result, check_finite};

/// Largest channel count, height or width a saved model or attack may describe: descriptions
/// are checked against it before anything is built, so a hostile file cannot make a loader
/// allocate without bound. (The images of the field are at most a few hundred pixels a side.)
pub const MAX_IMAGE_SIDE: usize = 4_096;

/// The closed interval every pixel of a batch must lie in (usually `[0, 1]`).
///
/// Always finite with `min < max`, however it was made: deserializing checks it too.
///
/// ```
/// use advclust_core::ValueBox;
/// let b: ValueBox = serde_json::from_str(r#"{"min": 0.0, "max": 1.0}"#).unwrap();
/// assert_eq!(b, ValueBox::UNIT);
/// assert!(serde_json::from_str::<ValueBox>(r#"{"min": 1.0, "max": 0.0}"#).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ValueBoxFields")]
pub struct ValueBox {
    min: f32,
    max: f32,
}

impl ValueBox {
    /// The unit box `[0, 1]`, the pixel space every attack in advclust works in.
    pub const UNIT: ValueBox = ValueBox { min: 0.0, max: 1.0 };

    /// A box `[min, max]`; both finite and `min < max`.
    pub fn new(min: f32, max: f32) -> Result<Self> {
        if !(min.is_finite() && max.is_finite() && min < max) {
            return Err(CoreError::InvalidParameter {
                name: "value_box",
                reason: format!("need finite min < max, got [{min}, {max}]"),
            });
        }
        Ok(ValueBox { min, max })
    }

    /// Lower bound.
    pub fn min(&self) -> f32 {
        self.min
    }

    /// Upper bound.
    pub fn max(&self) -> f32 {
        self.max
    }

    /// Checks that every value is finite and inside the box.
    pub fn check(&self, what: &'static str, values: &[f32]) -> Result<()> {
        check_finite(what, values)?;
        match values.iter().position(|&v| v < self.min || v > self.max) {
            Some(index) => Err(CoreError::OutOfBox {
                index,
                value: values[index],
                min: self.min,
                max: self.max,
            }),
            None => Ok(()),
        }
    }
}

/// The fields of a [`ValueBox`] as they appear in a file, before they are checked.
#[derive(Deserialize)]
struct ValueBoxFields {
    min: f32,
    max: f32,
}

impl TryFrom<ValueBoxFields> for ValueBox {
    type Error = CoreError;

    fn try_from(f: ValueBoxFields) -> Result<Self> {
        ValueBox::new(f.min, f.max)
    }
}

impl Default for ValueBox {
    fn default() -> Self {
        ValueBox::UNIT
    }
}

/// A validated batch of images in NCHW layout, f32, on the host, with its value box.
///
/// Every constructor checks that the buffer length matches the shape, that no dimension is zero,
/// and that every pixel is finite and inside the box; a value of this type is therefore always
/// safe to hand to an oracle.
///
/// ```
/// use advclust_core::{ImageBatch, ValueBox};
/// let batch = ImageBatch::new(vec![0.5; 2 * 28 * 28], [2, 1, 28, 28], ValueBox::UNIT).unwrap();
/// assert_eq!(batch.len(), 2);
/// assert!(ImageBatch::new(vec![f32::NAN; 28 * 28], [1, 1, 28, 28], ValueBox::UNIT).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    data: Vec<f32>,
    dims: [usize; 4],
    value_box: ValueBox,
}

impl ImageBatch {
    /// Builds a batch from NCHW data, validating shape, finiteness and range.
    pub fn new(data: Vec<f32>, dims: [usize; 4], value_box: ValueBox) -> Result<Self> {
        let names = ["batch size", "channels", "height", "width"];
        for (d, name) in dims.iter().zip(names) {
            if *d == 0 {
                return Err(CoreError::EmptyDimension(name));
            }
        }
        let expected = checked_product(&dims).ok_or(CoreError::SizeOverflow {
            what: "ImageBatch",
            dims: dims.to_vec(),
        })?;
        if data.len() != expected {
            return Err(CoreError::ShapeMismatch {
                what: "ImageBatch",
                expected,
                actual: data.len(),
            });
        }
        value_box.check("ImageBatch", &data)?;
        Ok(ImageBatch {
            data,
            dims,
            value_box,
        })
    }

    /// Builds a batch in the unit box `[0, 1]`.
    pub fn unit(data: Vec<f32>, dims: [usize; 4]) -> Result<Self> {
        Self::new(data, dims, ValueBox::UNIT)
    }

    /// Reads a rank-4 tensor back to the host and validates it against `value_box`.
    pub fn from_tensor(tensor: Tensor<4>, value_box: ValueBox) -> Result<Self> {
        let dims = tensor.dims();
        let data = crate::tensor_to_vec(tensor.into_data())?;
        Self::new(data, dims, value_box)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.dims[0]
    }

    /// Always false: a batch holds at least one image.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `[N, C, H, W]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// `[C, H, W]` of one image.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.dims[1], self.dims[2], self.dims[3]]
    }

    /// Values per image (`C * H * W`).
    pub fn image_len(&self) -> usize {
        self.dims[1] * self.dims[2] * self.dims[3]
    }

    /// The value box.
    pub fn value_box(&self) -> ValueBox {
        self.value_box
    }

    /// All pixels, NCHW.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Gives the pixel buffer back.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// The pixels of image `i` (`None` past the end).
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let len = self.image_len();
        self.data.get(i * len..(i + 1) * len)
    }

    /// Checks that the images are `[C, H, W] = expected`.
    pub fn expect_image_shape(&self, expected: [usize; 3]) -> Result<()> {
        if self.image_shape() != expected {
            return Err(CoreError::ImageShapeMismatch {
                expected,
                actual: self.image_shape(),
            });
        }
        Ok(())
    }

    /// Checks that `other` has the same dims and value box (a clean / adversarial pair).
    pub fn expect_same_layout(&self, other: &ImageBatch) -> Result<()> {
        if self.len() != other.len() {
            return Err(CoreError::SampleCountMismatch {
                expected: self.len(),
                actual: other.len(),
            });
        }
        other.expect_image_shape(self.image_shape())?;
        if self.value_box != other.value_box {
            return Err(CoreError::ValueBoxMismatch {
                a_min: self.value_box.min,
                a_max: self.value_box.max,
                b_min: other.value_box.min,
                b_max: other.value_box.max,
            });
        }
        Ok(())
    }

    /// A new batch of the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if indices.is_empty() {
            return Err(CoreError::EmptyDimension("batch size"));
        }
        let len = self.image_len();
        let mut data = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            let image = self.image(i).ok_or(CoreError::InvalidParameter {
                name: "indices",
                reason: format!("index {i} out of range for {} images", self.len()),
            })?;
            data.extend_from_slice(image);
        }
        let mut dims = self.dims;
        dims[0] = indices.len();
        Ok(ImageBatch {
            data,
            dims,
            value_box: self.value_box,
        })
    }

    /// Splits into consecutive batches of at most `batch_size` images (the last may be smaller).
    pub fn chunks(&self, batch_size: usize) -> impl Iterator<Item = ImageBatch> + '_ {
        // A batch size past the data is one chunk (saturating, never a wrapped product).
        let step = batch_size.max(1).saturating_mul(self.image_len());
        self.data.chunks(step).map(move |chunk| {
            let mut dims = self.dims;
            dims[0] = chunk.len() / self.image_len();
            ImageBatch {
                data: chunk.to_vec(),
                dims,
                value_box: self.value_box,
            }
        })
    }

    /// Concatenates batches of equal image shape and value box along the batch axis.
    pub fn concat(batches: &[ImageBatch]) -> Result<Self> {
        let first = batches
            .first()
            .ok_or(CoreError::EmptyDimension("batch size"))?;
        let mut data = Vec::with_capacity(batches.iter().map(|b| b.data.len()).sum());
        for b in batches {
            b.expect_image_shape(first.image_shape())?;
            if b.value_box != first.value_box {
                return Err(CoreError::ValueBoxMismatch {
                    a_min: first.value_box.min,
                    a_max: first.value_box.max,
                    b_min: b.value_box.min,
                    b_max: b.value_box.max,
                });
            }
            data.extend_from_slice(&b.data);
        }
        let mut dims = first.dims;
        dims[0] = batches.iter().map(|b| b.len()).sum();
        Ok(ImageBatch {
            data,
            dims,
            value_box: first.value_box,
        })
    }

    /// Uploads the batch as a `[N, C, H, W]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.dims), device)
    }
}

/// The product of `dims`, or `None` if it overflows `usize`.
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
