//! Feature extractors: what a detector scores. SSD scores the backbone features of a
//! self-supervised (SimCLR) model ([`PretextFeatures`], the default); a victim's own backbone
//! ([`VictimFeatures`]) is the other choice. Both are [`FeatureExtractor`]s, an object-safe
//! trait, so a detector can hold any of them as `Box<dyn FeatureExtractor>`.

use advclust_core::ImageBatch;
use advclust_models::{SimClrModel, Victim};
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{DefenseError, Result};

/// Largest chunk of images sent through an extractor at once.
pub const FEATURE_CHUNK: usize = 256;

/// A map from `[0, 1]` images to feature vectors, differentiable with respect to the images.
pub trait FeatureExtractor {
    /// A short name for reports, e.g. `pretext` or `victim backbone (cc)`.
    fn name(&self) -> String;
    /// The `[C, H, W]` it takes.
    fn input_shape(&self) -> [usize; 3];
    /// The device its weights live on (the images must be on it too).
    fn device(&self) -> &Device;
    /// Features `[N, D]` of `[N, C, H, W]` images in `[0, 1]` (panics on another shape; use
    /// [`extract`] for a checked call).
    fn features(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Features of a host batch, row-major `[N, D]`, in chunks of [`FEATURE_CHUNK`].
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    /// Rows `N`.
    pub rows: usize,
    /// Dimension `D`.
    pub dim: usize,
    /// `N * D` values.
    pub values: Vec<f64>,
}

impl FeatureMatrix {
    /// A matrix of `rows` rows of `dim` values, checked for size and finiteness.
    pub fn new(values: Vec<f64>, rows: usize, dim: usize) -> Result<Self> {
        if dim == 0 || rows.checked_mul(dim) != Some(values.len()) {
            return Err(DefenseError::ShapeMismatch(format!(
                "{} values are not {rows} rows of {dim}",
                values.len()
            )));
        }
        crate::error::check_finite("the features", &values)?;
        Ok(FeatureMatrix { rows, dim, values })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows at `indices` (each `< rows`).
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        let mut values = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            if i >= self.rows {
                return Err(DefenseError::ShapeMismatch(format!(
                    "row {i} of a {}-row feature matrix",
                    self.rows
                )));
            }
            values.extend_from_slice(self.row(i));
        }
        Ok(FeatureMatrix {
            rows: indices.len(),
            dim: self.dim,
            values,
        })
    }
}

/// Features of every image of `images`, after checking their shape (a batch of another shape
/// is [`DefenseError::ShapeMismatch`], naming both shapes).
pub fn extract(extractor: &dyn FeatureExtractor, images: &ImageBatch) -> Result<FeatureMatrix> {
    if images.is_empty() {
        return Err(DefenseError::Empty("the images to extract features of"));
    }
    if images.image_shape() != extractor.input_shape() {
        return Err(DefenseError::ShapeMismatch(format!(
            "the feature extractor {} takes {:?} images, these are {:?}",
            extractor.name(),
            extractor.input_shape(),
            images.image_shape()
        )));
    }
    let mut values = Vec::new();
    let mut dim = 0;
    for chunk in images.chunks(FEATURE_CHUNK) {
        let f = extractor.features(chunk.to_tensor(extractor.device()));
        dim = f.dims()[1];
        values.extend(
            advclust_core::tensor_to_vec(f.into_data())?
                .into_iter()
                .map(f64::from),
        );
    }
    FeatureMatrix::new(values, images.len(), dim)
}

/// The backbone features of a SimCLR pretext model (before its projection head, as SSD).
#[derive(Debug, Clone)]
pub struct PretextFeatures {
    model: SimClrModel,
    device: Device,
}

impl PretextFeatures {
    /// For scoring: the model in evaluation mode, without autodiff, on `device`.
    pub fn new(model: &SimClrModel, device: &Device) -> Self {
        let device = device.clone().inner();
        PretextFeatures {
            model: model.valid().to_device(&device),
            device,
        }
    }

    /// For an adaptive attack: a frozen copy (inference-mode BatchNorm, no weight gradients)
    /// on the autodiff version of `device`, so gradients flow to the images.
    pub fn frozen(model: &SimClrModel, device: &Device) -> Self {
        let device = device.clone().autodiff();
        PretextFeatures {
            model: model.clone().to_device(&device).freeze(),
            device,
        }
    }
}

impl FeatureExtractor for PretextFeatures {
    fn name(&self) -> String {
        "pretext backbone (SimCLR)".into()
    }
    fn input_shape(&self) -> [usize; 3] {
        self.model.config().input_shape
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.model.features(images)
    }
}

/// A victim's own representation ([`Victim::features`]).
#[derive(Debug, Clone)]
pub struct VictimFeatures {
    victim: Victim,
    device: Device,
}

impl VictimFeatures {
    /// For scoring: the victim in evaluation mode, without autodiff, on `device`.
    pub fn new(victim: &Victim, device: &Device) -> Self {
        let device = device.clone().inner();
        VictimFeatures {
            victim: victim.valid().to_device(&device),
            device,
        }
    }

    /// For an adaptive attack: a frozen copy on the autodiff version of `device`.
    pub fn frozen(victim: &Victim, device: &Device) -> Self {
        let device = device.clone().autodiff();
        VictimFeatures {
            victim: victim.clone().to_device(&device).freeze(),
            device,
        }
    }
}

impl FeatureExtractor for VictimFeatures {
    fn name(&self) -> String {
        format!("victim backbone ({})", self.victim.kind())
    }
    fn input_shape(&self) -> [usize; 3] {
        advclust_core::DifferentiableClusterModel::input_shape(&self.victim)
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.victim.features(images)
    }
}
