//! The shared contrastive pretext: a SimCLR backbone trained once per dataset, saved with the
//! nearest neighbours it mines, and reused by SCAN (and the victims and defenses that need
//! pretext features).
//!
//! SimCLR (Chen et al., 2020): two augmented views of every image, a ResNet backbone and an MLP
//! projection head whose L2-normalised outputs are contrasted with NT-Xent at temperature 0.1
//! (SCAN's pretext setting). After training, the projection of every un-augmented image is
//! computed and its `k` nearest neighbours by cosine similarity are mined exactly, in blocks
//! ([`neighbors`]).

pub mod neighbors;

use std::path::Path;

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, ParamGuard, ValueBox};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::artifact::{self, DESCRIPTION_FILE};
use crate::augment::AugmentConfig;
use crate::cc::loss::nt_xent;
use crate::error::{ModelError, Result};
use crate::norm::{
    add_layer, check_input_shape, check_normalization, l2_normalize_rows, normalize,
};
use crate::resnet::{MlpHead, ResNet, ResNetConfig};
use crate::runner::{
    Evaluation, RunConfig, RunReport, StepLoss, TrainingStep, run_training, two_views,
};
use crate::victim::TrainingSummary;

pub use neighbors::{NEIGHBORS_FILE, Neighbors, mine_neighbors};

/// The `format` tag of a saved pretext.
pub const PRETEXT_FORMAT: &str = "advclust-pretext";
/// The current version of the saved pretext.
pub const PRETEXT_VERSION: u32 = 1;

/// The SimCLR model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimClrConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// The ResNet backbone.
    pub backbone: ResNetConfig,
    /// Hidden size of the projection head (the backbone's feature size in SimCLR).
    pub head_hidden: usize,
    /// Size of the L2-normalised projection (128 in SCAN's pretext).
    pub embedding_dim: usize,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl SimClrConfig {
    /// A SimCLR model for `[C, H, W]` images on `backbone`, head `feature -> feature -> 128`,
    /// no normalisation.
    pub fn new(input_shape: [usize; 3], backbone: ResNetConfig) -> Self {
        SimClrConfig {
            input_shape,
            head_hidden: backbone.feature_dim(),
            backbone,
            embedding_dim: 128,
            mean: vec![0.0; input_shape[0]],
            std: vec![1.0; input_shape[0]],
        }
    }

    /// Validates the architecture and counts its parameters (weights and biases, BatchNorm
    /// statistics included), with checked arithmetic and every size bounded, before anything
    /// is allocated.
    pub fn parameter_count(&self) -> Result<u64> {
        check_input_shape(self.input_shape)?;
        if self.head_hidden == 0 || self.embedding_dim == 0 {
            return Err(ModelError::invalid(
                "head_hidden / embedding_dim",
                "must be at least 1",
            ));
        }
        check_normalization(&self.mean, &self.std, self.input_shape[0])?;
        let mut total = self.backbone.parameter_count()?;
        let f = self.backbone.feature_dim();
        add_layer(&mut total, "head_hidden", f, self.head_hidden)?;
        add_layer(
            &mut total,
            "embedding_dim",
            self.head_hidden,
            self.embedding_dim,
        )?;
        self.backbone.validate(self.input_shape)?;
        Ok(total)
    }
}

crate::error::validated_architecture!(SimClrConfig);

/// A SimCLR model: ResNet backbone and MLP projection head.
#[derive(Module, Debug)]
pub struct SimClrModel {
    backbone: ResNet,
    head: MlpHead,
    #[module(skip)]
    config: SimClrConfig,
}

impl SimClrModel {
    /// A freshly initialised model (weights from a `SeededRng` seeded with `seed`).
    pub fn new(config: &SimClrConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let mut rng = SeededRng::seed_from_u64(seed);
        let backbone = config.backbone.init(&mut rng, device);
        let head = MlpHead::new(
            config.backbone.feature_dim(),
            config.head_hidden,
            config.embedding_dim,
            &mut rng,
            device,
        );
        Ok(SimClrModel {
            backbone,
            head,
            config,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &SimClrConfig {
        &self.config
    }

    /// The trained backbone (SCAN starts from a copy of it).
    pub fn backbone(&self) -> &ResNet {
        &self.backbone
    }

    /// Backbone features `[N, feature_dim]` of `[0, 1]` images.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.backbone
            .forward(normalize(images, &self.config.mean, &self.config.std))
    }

    /// L2-normalised projections `[N, embedding_dim]` of `[0, 1]` images.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        l2_normalize_rows(self.head.forward(self.features(images)))
    }

    /// Projections of a host batch in evaluation mode, in chunks of 500; row-major `[N, D]`.
    pub fn embed_host(&self, images: &ImageBatch, device: &Device) -> Result<Vec<f32>> {
        check_images(images, self.config.input_shape)?;
        let device = device.clone().inner();
        let model = self.valid().to_device(&device);
        let mut out = Vec::with_capacity(images.len() * self.config.embedding_dim);
        for chunk in images.chunks(500) {
            let z = model.embed(chunk.to_tensor(&device));
            out.extend(advclust_core::tensor_to_vec(z.into_data())?);
        }
        Ok(out)
    }
}

/// The description saved next to a pretext's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretextDescription {
    /// Always [`PRETEXT_FORMAT`].
    pub format: String,
    /// [`PRETEXT_VERSION`].
    pub version: u32,
    /// The architecture.
    pub config: SimClrConfig,
    /// How it was trained.
    pub training: Option<TrainingSummary>,
    /// [`data_digest`] of the training set (absent in pretexts saved before it was recorded).
    #[serde(default)]
    pub data_digest: Option<String>,
}

/// A digest of a set of images (its dims and every value's bits, FNV-1a 64): a pretext records
/// its training set's, so that a victim is never trained on other images with its neighbours.
pub fn data_digest(images: &ImageBatch) -> String {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: [u8; 4]| {
        for b in bytes {
            h = (h ^ b as u64).wrapping_mul(PRIME);
        }
    };
    for d in images.dims() {
        eat((d as u32).to_le_bytes());
    }
    for v in images.data() {
        eat(v.to_bits().to_le_bytes());
    }
    format!("fnv1a64:{h:016x}")
}

/// A trained pretext: the SimCLR model and the neighbours it mined on its training set.
#[derive(Debug, Clone)]
pub struct Pretext {
    /// The model.
    pub model: SimClrModel,
    /// The mined neighbours (indices into the training set, in dataset order).
    pub neighbors: Neighbors,
    /// How it was trained.
    pub training: Option<TrainingSummary>,
    /// [`data_digest`] of the training set, when recorded.
    pub data_digest: Option<String>,
}

impl Pretext {
    /// Saves into `dir`: `model.json`, `model.bpk` and `neighbors.json`, each atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let description = PretextDescription {
            format: PRETEXT_FORMAT.into(),
            version: PRETEXT_VERSION,
            config: self.model.config.clone(),
            training: self.training.clone(),
            data_digest: self.data_digest.clone(),
        };
        artifact::save_model_dir(dir, &description, &self.model)?;
        artifact::write_json(&dir.join(NEIGHBORS_FILE), &self.neighbors)
    }

    /// Loads a pretext saved with [`Pretext::save`] onto `device`; the neighbours are checked
    /// (every index in range, one row per image).
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (json, weights) = artifact::read_model_dir(dir)?;
        let origin = dir.join(DESCRIPTION_FILE).display().to_string();
        let description: PretextDescription = artifact::parse_json(&json, &origin)?;
        if description.format != PRETEXT_FORMAT || description.version != PRETEXT_VERSION {
            return Err(ModelError::BadDescription {
                origin,
                message: format!(
                    "format {:?} version {} (expected {PRETEXT_FORMAT:?} version {PRETEXT_VERSION})",
                    description.format, description.version
                ),
            });
        }
        let origin = dir.display().to_string();
        crate::norm::check_weights_hold(&description.config, weights.len(), &origin)?;
        let model = SimClrModel::new(&description.config, 0, device)?;
        let model = artifact::load_weights(model, weights, &origin)?;
        let path = dir.join(NEIGHBORS_FILE);
        let neighbors: Neighbors = artifact::read_json(&path)?;
        neighbors.validate(&path.display().to_string())?;
        Ok(Pretext {
            model,
            neighbors,
            training: description.training,
            data_digest: description.data_digest,
        })
    }

    /// Checks that this pretext was trained on `images`: same `[C, H, W]`, one neighbour row
    /// per image, and (when the pretext recorded it) the same [`data_digest`].
    pub fn check_fits(&self, images: &ImageBatch) -> Result<()> {
        let [n, c, h, w] = images.dims();
        if [c, h, w] != self.model.config.input_shape {
            return Err(ModelError::PretextMismatch(format!(
                "the pretext was trained on {:?} images, the data is {:?}",
                self.model.config.input_shape,
                [c, h, w]
            )));
        }
        if self.neighbors.n != n {
            return Err(ModelError::PretextMismatch(format!(
                "the pretext's neighbours cover {} images, the data has {n}",
                self.neighbors.n
            )));
        }
        if let Some(recorded) = &self.data_digest {
            let actual = data_digest(images);
            if *recorded != actual {
                return Err(ModelError::PretextMismatch(format!(
                    "the pretext was trained on other images (data digest {recorded}, these are {actual})"
                )));
            }
        }
        Ok(())
    }
}

/// Everything a pretext run needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretextTrainConfig {
    /// The model (its `mean` / `std` are set from the data when `normalize_from_data`).
    pub model: SimClrConfig,
    /// Name of the training set.
    pub dataset: String,
    /// NT-Xent temperature (0.1 in SCAN's SimCLR).
    pub temperature: f64,
    /// The augmentations producing the two views.
    pub augment: AugmentConfig,
    /// Neighbours mined per image (20 in SCAN), the image itself not counted.
    pub num_neighbors: usize,
    /// Replace `mean` / `std` by the data's per-channel statistics.
    pub normalize_from_data: bool,
    /// Epochs, batch, optimiser, seed, checkpoints.
    pub run: RunConfig,
}

impl PretextTrainConfig {
    /// SCAN's pretext settings where they fit a CPU: temperature 0.1, 20 neighbours, batch
    /// 256, Adam 1e-3, 40 epochs, augmentations for the channel count.
    pub fn new(model: SimClrConfig) -> Self {
        let augment = AugmentConfig::for_channels(model.input_shape[0]);
        PretextTrainConfig {
            model,
            dataset: "unnamed".into(),
            temperature: 0.1,
            augment,
            num_neighbors: 20,
            normalize_from_data: true,
            run: RunConfig::new(40, 256, 1e-3),
        }
    }

    fn validate(&self) -> Result<()> {
        self.model.check_ref()?;
        self.augment.validate()?;
        self.run.validate()?;
        if !(self.temperature.is_finite() && self.temperature >= 0.05) {
            return Err(ModelError::invalid(
                "temperature",
                "must be finite and at least 0.05 (lower overflows the exponentials)",
            ));
        }
        if self.num_neighbors == 0 {
            return Err(ModelError::invalid("num_neighbors", "must be at least 1"));
        }
        Ok(())
    }
}

/// The result of a pretext run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretextReport {
    /// The configuration used (with the normalisation applied).
    pub config: PretextTrainConfig,
    /// The SimCLR stage.
    pub run: RunReport,
    /// Seconds spent mining neighbours.
    pub mining_seconds: f64,
    /// Fraction of mined neighbours sharing their anchor's label, when labels were given.
    pub neighbor_agreement: Option<f64>,
}

/// Checks `[0, 1]` images of shape `shape`, at least one of them.
pub(crate) fn check_images(images: &ImageBatch, shape: [usize; 3]) -> Result<()> {
    if images.is_empty() {
        return Err(ModelError::TooFewImages {
            available: 0,
            batch_size: 1,
        });
    }
    if images.value_box() != ValueBox::UNIT {
        return Err(ModelError::invalid(
            "images",
            "victims train on images in [0, 1]",
        ));
    }
    let [_, c, h, w] = images.dims();
    if [c, h, w] != shape {
        return Err(ModelError::InputShape {
            expected: shape,
            actual: [c, h, w],
        });
    }
    Ok(())
}

struct SimClrStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    augment: &'a AugmentConfig,
    temperature: f64,
    num_neighbors: usize,
}

impl TrainingStep<SimClrModel> for SimClrStep<'_> {
    fn loss(
        &mut self,
        model: &SimClrModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let b = batch.len();
        let x = two_views(self.images, batch, self.augment, rng, device)?;
        let z = model.embed(x);
        let total = nt_xent(
            z.clone().narrow(0, 0, b),
            z.narrow(0, b, b),
            self.temperature,
        );
        Ok(StepLoss {
            total,
            parts: Vec::new(),
        })
    }

    fn evaluate(&mut self, model: &SimClrModel, device: &Device) -> Result<Option<Evaluation>> {
        let Some(labels) = self.labels else {
            return Ok(None);
        };
        let z = model.embed_host(self.images, device)?;
        let nb = mine_neighbors(&z, self.images.len(), self.num_neighbors, device)?;
        let agreement = nb.label_agreement(labels)?;
        Ok(Some(Evaluation {
            metrics: vec![("neighbour agreement".into(), agreement)],
            ..Evaluation::default()
        }))
    }
}

/// Trains a SimCLR pretext on `images` (values in `[0, 1]`) and mines its neighbours; `labels`
/// (optional) only measure the neighbours' label agreement.
pub fn train_pretext(
    config: &PretextTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(Pretext, PretextReport)> {
    let mut config = config.clone();
    config.validate()?;
    check_images(images, config.model.input_shape)?;
    let n = images.len();
    if let Some(l) = labels
        && l.len() != n
    {
        return Err(ModelError::LabelCount {
            images: n,
            labels: l.len(),
        });
    }
    if config.num_neighbors >= n {
        return Err(ModelError::invalid(
            "num_neighbors",
            format!(
                "{} neighbours need more than {n} images",
                config.num_neighbors
            ),
        ));
    }
    if config.normalize_from_data {
        let (mean, std) = crate::cc::train::channel_stats(images);
        config.model.mean = mean;
        config.model.std = std;
        config.model.check_ref()?;
    }
    let train_device = config.run.training_device(device);
    let model = SimClrModel::new(&config.model, config.run.seed, &train_device)?;
    let mut step = SimClrStep {
        images,
        labels,
        augment: &config.augment,
        temperature: config.temperature,
        num_neighbors: config.num_neighbors,
    };
    let fingerprint = serde_json::json!({
        "model": config.model, "augment": config.augment, "temperature": config.temperature,
    });
    let (model, run) = run_training(
        "simclr",
        model,
        n,
        &config.run,
        fingerprint,
        &mut step,
        &train_device,
        &mut |_| {},
    )?;
    let mine_start = std::time::Instant::now();
    let z = model.embed_host(images, device)?;
    let neighbors = mine_neighbors(&z, n, config.num_neighbors, device)?;
    let neighbor_agreement = labels.map(|l| neighbors.label_agreement(l)).transpose()?;
    let mining_seconds = mine_start.elapsed().as_secs_f64();
    let model = model.valid();
    let training =
        TrainingSummary::of_run(&config.dataset, n, &config.run, run.train_seconds, None);
    let report = PretextReport {
        config,
        run,
        mining_seconds,
        neighbor_agreement,
    };
    Ok((
        Pretext {
            model,
            neighbors,
            training: Some(training),
            data_digest: Some(data_digest(images)),
        },
        report,
    ))
}
