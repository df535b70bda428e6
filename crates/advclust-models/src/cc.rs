//! CC (Contrastive Clustering, Li et al., AAAI 2021): backbone, instance head, cluster head.

use std::path::{Path, PathBuf};

use advclust_core::{
    ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle, ParamGuard, argmax_rows,
};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::activation::softmax;
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::resnet::{MlpHead, ResNet, ResNetConfig};

/// File name of a saved model's weights (burnpack) inside its directory.
pub const WEIGHTS_FILE: &str = "model.bpk";
/// File name of a saved model's description (JSON) inside its directory.
pub const DESCRIPTION_FILE: &str = "model.json";
/// The `format` tag of a CC model description.
pub const DESCRIPTION_FORMAT: &str = "advclust-cc";
/// The current version of the CC model description.
pub const DESCRIPTION_VERSION: u32 = 1;

/// Everything needed to rebuild a [`CcModel`] (saved as JSON next to its weights).
///
/// The model works in `[0, 1]` pixel space: images are normalised with `mean` / `std`
/// (one value per channel) inside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcConfig {
    /// `[C, H, W]` of the images, in `[0, 1]`.
    pub input_shape: [usize; 3],
    /// Number of clusters `k` (output size of the cluster head).
    pub num_clusters: usize,
    /// The ResNet backbone.
    pub backbone: ResNetConfig,
    /// Hidden size of both MLP heads (CC uses the backbone's feature size).
    pub head_hidden: usize,
    /// Size of the L2-normalised instance embedding (128 in CC).
    pub instance_dim: usize,
    /// Per-channel mean subtracted inside the model.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by inside the model.
    pub std: Vec<f32>,
}

impl CcConfig {
    /// A CC model for `[C, H, W]` images and `k` clusters with a ResNet of stage widths
    /// `widths` (one BasicBlock per stage), heads of the backbone's feature size, a 128-d
    /// instance embedding, and no normalisation (mean 0, std 1).
    pub fn new(input_shape: [usize; 3], num_clusters: usize, widths: &[usize]) -> Self {
        let backbone = ResNetConfig::new(input_shape[0], widths, 1);
        CcConfig {
            input_shape,
            num_clusters,
            head_hidden: backbone.feature_dim(),
            backbone,
            instance_dim: 128,
            mean: vec![0.0; input_shape[0]],
            std: vec![1.0; input_shape[0]],
        }
    }

    /// Replaces the backbone (and sets the heads' hidden size to its feature size).
    pub fn with_backbone(mut self, backbone: ResNetConfig) -> Self {
        self.head_hidden = backbone.feature_dim();
        self.backbone = backbone;
        self
    }

    /// Sets the per-channel normalisation applied inside the model.
    pub fn with_normalization(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.mean = mean;
        self.std = std;
        self
    }

    fn validate(&self) -> Result<()> {
        let [c, h, w] = self.input_shape;
        if c == 0 || h == 0 || w == 0 {
            return Err(ModelError::invalid(
                "input_shape",
                format!(
                    "every dimension must be positive, got {:?}",
                    self.input_shape
                ),
            ));
        }
        if self.num_clusters < 2 {
            return Err(ModelError::invalid(
                "num_clusters",
                format!("need at least 2 clusters, got {}", self.num_clusters),
            ));
        }
        if self.head_hidden == 0 || self.instance_dim == 0 {
            return Err(ModelError::invalid(
                "head_hidden / instance_dim",
                "head sizes must be at least 1",
            ));
        }
        if self.mean.len() != c || self.std.len() != c {
            return Err(ModelError::invalid(
                "mean / std",
                format!(
                    "need one value per channel ({c}), got {} and {}",
                    self.mean.len(),
                    self.std.len()
                ),
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(ModelError::invalid(
                "mean / std",
                "means must be finite and standard deviations finite and positive",
            ));
        }
        self.backbone.validate(self.input_shape)
    }
}

impl ParamGuard for CcConfig {
    type Checked = CcConfig;
    type Error = ModelError;

    fn check_ref(&self) -> Result<&CcConfig> {
        self.validate()?;
        Ok(self)
    }

    fn check(self) -> Result<CcConfig> {
        self.validate()?;
        Ok(self)
    }
}

/// How a saved model was trained (stored in its JSON description; informative only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Name of the training set.
    pub dataset: String,
    /// Images in the training set.
    pub num_images: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Wall time of the training loop, seconds.
    pub train_seconds: f64,
    /// NMI / ARI / ACC of the final model on the training set, when labels were given.
    pub scores: Option<ClusteringScores>,
    /// The command that produced the model, if recorded.
    pub command: Option<String>,
}

/// The JSON description saved next to a model's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcDescription {
    /// Always [`DESCRIPTION_FORMAT`].
    pub format: String,
    /// [`DESCRIPTION_VERSION`] at the time of writing.
    pub version: u32,
    /// The architecture.
    pub config: CcConfig,
    /// Number of values in the weights file (parameters and BatchNorm running statistics).
    pub num_values: usize,
    /// How the model was trained, if known.
    pub training: Option<TrainingSummary>,
}

/// The outputs of one CC forward pass.
#[derive(Debug, Clone)]
pub struct CcOutput {
    /// L2-normalised instance embeddings `[N, instance_dim]`.
    pub instance: Tensor<2>,
    /// Soft cluster assignments `[N, k]` (softmax of the cluster head).
    pub clusters: Tensor<2>,
}

/// A Contrastive Clustering model: ResNet backbone, instance head and cluster head.
///
/// Images go in as `[N, C, H, W]` in `[0, 1]`; the per-channel normalisation of the
/// [`CcConfig`] is applied inside. The cluster head's softmax is the soft membership, and its
/// argmax the predicted cluster. Implements [`DifferentiableClusterModel`], so
/// [`advclust_core::ModelOracle`] makes it a black-box oracle.
#[derive(Module, Debug)]
pub struct CcModel {
    backbone: ResNet,
    instance_head: MlpHead,
    cluster_head: MlpHead,
    #[module(skip)]
    config: CcConfig,
    #[module(skip)]
    training: Option<TrainingSummary>,
}

impl CcModel {
    /// A freshly initialised model (weights drawn from a `StdRng` seeded with `seed`, so the
    /// same seed gives the same model on every backend).
    pub fn new(config: &CcConfig, seed: u64, device: &Device) -> Result<Self> {
        let config = config.check_ref()?.clone();
        let mut rng = StdRng::seed_from_u64(seed);
        let feat = config.backbone.feature_dim();
        let backbone = config.backbone.init(&mut rng, device);
        let instance_head = MlpHead::new(
            feat,
            config.head_hidden,
            config.instance_dim,
            &mut rng,
            device,
        );
        let cluster_head = MlpHead::new(
            feat,
            config.head_hidden,
            config.num_clusters,
            &mut rng,
            device,
        );
        Ok(CcModel {
            backbone,
            instance_head,
            cluster_head,
            config,
            training: None,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &CcConfig {
        &self.config
    }

    /// How the model was trained, if known.
    pub fn training_summary(&self) -> Option<&TrainingSummary> {
        self.training.as_ref()
    }

    /// Attaches a training summary (saved with the model).
    pub fn with_training_summary(mut self, summary: TrainingSummary) -> Self {
        self.training = Some(summary);
        self
    }

    /// Checks that `[N, C, H, W]` images fit the model.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<()> {
        let actual = [dims[1], dims[2], dims[3]];
        if actual != self.config.input_shape {
            return Err(ModelError::InputShape {
                expected: self.config.input_shape,
                actual,
            });
        }
        Ok(())
    }

    fn normalize(&self, images: Tensor<4>) -> Tensor<4> {
        let c = self.config.input_shape[0];
        let device = images.device();
        let mean = Tensor::<4>::from_data(
            TensorData::new(self.config.mean.clone(), [1, c, 1, 1]),
            &device,
        );
        let inv_std: Vec<f32> = self.config.std.iter().map(|s| 1.0 / s).collect();
        let inv_std = Tensor::<4>::from_data(TensorData::new(inv_std, [1, c, 1, 1]), &device);
        (images - mean) * inv_std
    }

    /// Backbone features `[N, feature_dim]` of `[0, 1]` images.
    ///
    /// Panics on a wrong input shape (use [`CcModel::check_input`] first).
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let dims = images.dims();
        assert!(
            self.check_input(dims).is_ok(),
            "CcModel takes [N, {:?}] images, got {dims:?}",
            self.config.input_shape
        );
        self.backbone.forward(self.normalize(images))
    }

    /// Both heads: L2-normalised instance embeddings and soft cluster assignments.
    ///
    /// Panics on a wrong input shape (use [`CcModel::try_forward`] for a typed error).
    pub fn forward(&self, images: Tensor<4>) -> CcOutput {
        let h = self.features(images);
        let z = self.instance_head.forward(h.clone());
        let norm = z.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
        CcOutput {
            instance: z / norm,
            clusters: softmax(self.cluster_head.forward(h), 1),
        }
    }

    /// [`CcModel::forward`] with a typed error for a wrong input shape.
    pub fn try_forward(&self, images: Tensor<4>) -> Result<CcOutput> {
        self.check_input(images.dims())?;
        Ok(self.forward(images))
    }

    /// Raw cluster-head logits `[N, k]`.
    pub fn cluster_logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.cluster_head.forward(self.features(images))
    }

    /// Soft memberships `[N, k]` with a typed error for a wrong input shape.
    pub fn try_memberships(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        self.check_input(images.dims())?;
        Ok(softmax(self.cluster_logits(images), 1))
    }

    /// Soft memberships of a host batch, computed in evaluation mode (no autodiff, BatchNorm
    /// running statistics) in chunks of `chunk` images; row-major `[N, k]`.
    pub fn memberships_host(
        &self,
        images: &ImageBatch,
        chunk: usize,
        device: &Device,
    ) -> Result<Vec<f32>> {
        self.check_input(images.dims())?;
        let mut oracle = ModelOracle::new(self, device).with_max_batch(chunk);
        Ok(oracle.memberships(images)?.data().to_vec())
    }

    /// Hard cluster assignments (argmax of the memberships), in evaluation mode.
    pub fn predict(&self, images: &ImageBatch, device: &Device) -> Result<Vec<usize>> {
        let m = self.memberships_host(images, 256, device)?;
        Ok(argmax_rows(&m, self.config.num_clusters))
    }

    /// NMI / ARI / ACC of the predicted clusters against `labels`.
    pub fn evaluate(
        &self,
        images: &ImageBatch,
        labels: &[usize],
        device: &Device,
    ) -> Result<ClusteringScores> {
        if labels.len() != images.len() {
            return Err(ModelError::LabelCount {
                images: images.len(),
                labels: labels.len(),
            });
        }
        let pred = self.predict(images, device)?;
        Ok(advclust_metrics::clustering_scores(labels, &pred)?)
    }

    /// The JSON description of this model.
    pub fn description(&self) -> CcDescription {
        CcDescription {
            format: DESCRIPTION_FORMAT.to_string(),
            version: DESCRIPTION_VERSION,
            config: self.config.clone(),
            num_values: self.num_params(),
            training: self.training.clone(),
        }
    }

    /// Saves the model into directory `dir` (created if needed) as [`WEIGHTS_FILE`] (burnpack)
    /// and [`DESCRIPTION_FILE`] (JSON); [`CcModel::load`] needs nothing else.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let json = serde_json::to_string_pretty(&self.description())
            .map_err(|e| ModelError::Save(e.to_string()))?;
        let json_path = dir.join(DESCRIPTION_FILE);
        std::fs::write(&json_path, json + "\n").map_err(|e| ModelError::io(&json_path, e))?;
        let weights = self
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| ModelError::Save(e.to_string()))?;
        let path = dir.join(WEIGHTS_FILE);
        std::fs::write(&path, &weights[..]).map_err(|e| ModelError::io(&path, e))?;
        Ok(())
    }

    /// Loads a model saved with [`CcModel::save`] from directory `dir` onto `device`.
    ///
    /// Errors (never panics): [`ModelError::MissingCheckpoint`], [`ModelError::BadDescription`],
    /// [`ModelError::CorruptCheckpoint`] for a truncated or foreign weights file, and
    /// [`ModelError::ArchitectureMismatch`] when the weights do not fit the description.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let json = read_file(&dir.join(DESCRIPTION_FILE))?;
        let weights = read_file(&dir.join(WEIGHTS_FILE))?;
        let json = String::from_utf8(json).map_err(|e| ModelError::BadDescription {
            origin: dir.join(DESCRIPTION_FILE).display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_parts(&json, weights, device, &dir.display().to_string())
    }

    /// Like [`CcModel::load`], but fails with [`ModelError::ClusterCountMismatch`] unless the
    /// saved model has `expected_k` clusters.
    pub fn load_expecting(
        dir: impl AsRef<Path>,
        expected_k: usize,
        device: &Device,
    ) -> Result<Self> {
        let model = Self::load(dir, device)?;
        if model.config.num_clusters != expected_k {
            return Err(ModelError::ClusterCountMismatch {
                expected: expected_k,
                actual: model.config.num_clusters,
            });
        }
        Ok(model)
    }

    /// Loads a model from its JSON description and burnpack weights held in memory.
    pub fn from_bytes(description_json: &str, weights: &[u8], device: &Device) -> Result<Self> {
        Self::from_parts(description_json, weights.to_vec(), device, "<bytes>")
    }

    fn from_parts(json: &str, weights: Vec<u8>, device: &Device, origin: &str) -> Result<Self> {
        let desc: CcDescription =
            serde_json::from_str(json).map_err(|e| ModelError::BadDescription {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        if desc.format != DESCRIPTION_FORMAT || desc.version != DESCRIPTION_VERSION {
            return Err(ModelError::BadDescription {
                origin: origin.to_string(),
                message: format!(
                    "format {:?} version {} (expected {DESCRIPTION_FORMAT:?} version {DESCRIPTION_VERSION})",
                    desc.format, desc.version
                ),
            });
        }
        let model = CcModel::new(&desc.config, 0, device)?;
        let model = load_weights(model, weights, origin)?;
        Ok(CcModel {
            training: desc.training,
            ..model
        })
    }

    /// Loads burnpack weights (as written by [`CcModel::save`]) into this model's architecture.
    pub fn load_weights_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        load_weights(self, bytes, &path.display().to_string())
    }
}

pub(crate) fn load_weights<M: Module>(model: M, weights: Vec<u8>, origin: &str) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights)).map_err(|e| {
        ModelError::CorruptCheckpoint {
            origin: origin.to_string(),
            message: record_message(e),
        }
    })?;
    model.try_load_record(record).map_err(|e| match e {
        RecordError::Validation(message) => ModelError::ArchitectureMismatch {
            origin: origin.to_string(),
            message,
        },
        RecordError::Io(message) => ModelError::CorruptCheckpoint {
            origin: origin.to_string(),
            message,
        },
    })
}

fn record_message(e: RecordError) -> String {
    match e {
        RecordError::Io(m) | RecordError::Validation(m) => m,
    }
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ModelError::MissingCheckpoint {
            path: PathBuf::from(path),
        }),
        Err(e) => Err(ModelError::io(path, e)),
    }
}

impl DifferentiableClusterModel for CcModel {
    fn num_clusters(&self) -> usize {
        self.config.num_clusters
    }

    fn input_shape(&self) -> [usize; 3] {
        self.config.input_shape
    }

    /// Softmax of the cluster head. Panics on a wrong input shape (the oracle checks first).
    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        softmax(self.cluster_logits(images), 1)
    }
}
