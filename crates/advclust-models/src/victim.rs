//! The victim family: one [`Victim`] type over every concrete model, one saved format that
//! records its [`VictimKind`], one load path that dispatches on it, and conveniences
//! ([`ClusterModelExt`]) that every [`DifferentiableClusterModel`] gets for free.
//!
//! Adding a victim is its module (config, model, [`VictimModel`] impl, training step) plus
//! one line in the `victim_family!` invocation at the bottom of this file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use advclust_core::{
    ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle, argmax_rows,
};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::artifact::{self, DESCRIPTION_FILE};
use crate::cc::CcModel;
use crate::error::{ModelError, Result};
use crate::mice::MiceModel;
use crate::mixture::MixtureModel;
use crate::nnm::NnmModel;
use crate::ruc::RucModel;
use crate::scan::ScanModel;
use crate::spice::SpiceModel;

/// The `format` tag of a victim description.
pub const VICTIM_FORMAT: &str = "advclust-victim";
/// The format tag written by advclust 0.1's CC-only saver, still read (as kind `cc`).
pub const LEGACY_CC_FORMAT: &str = "advclust-cc";
/// The current version of the victim description.
pub const VICTIM_FORMAT_VERSION: u32 = 1;

/// How a saved model was trained (stored in its JSON description; informative only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Name of the training set.
    pub dataset: String,
    /// Images in the training set.
    pub num_images: usize,
    /// Epochs trained (all stages together for multi-stage victims).
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

impl TrainingSummary {
    /// The summary of a run of `run` on `num_images` images of `dataset` (no command recorded).
    pub fn of_run(
        dataset: &str,
        num_images: usize,
        run: &crate::runner::RunConfig,
        train_seconds: f64,
        scores: Option<ClusteringScores>,
    ) -> Self {
        TrainingSummary {
            dataset: dataset.to_string(),
            num_images,
            epochs: run.epochs,
            batch_size: run.batch_size,
            seed: run.seed,
            train_seconds,
            scores,
            command: None,
        }
    }
}

/// The JSON description saved next to a victim's weights ([`DESCRIPTION_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VictimDescription {
    /// [`VICTIM_FORMAT`] (or [`LEGACY_CC_FORMAT`] for files of advclust 0.1).
    pub format: String,
    /// [`VICTIM_FORMAT_VERSION`] at the time of writing.
    pub version: u32,
    /// Which victim; absent only in legacy CC files.
    #[serde(default)]
    pub kind: Option<VictimKind>,
    /// The architecture, in the kind's own config type.
    pub config: serde_json::Value,
    /// Number of values in the weights file (parameters and BatchNorm running statistics).
    pub num_values: usize,
    /// How the model was trained, if known.
    pub training: Option<TrainingSummary>,
}

impl VictimDescription {
    /// The kind this description names, after checking its format tag and version.
    pub fn checked_kind(&self, origin: &str) -> Result<VictimKind> {
        let bad = |message: String| ModelError::BadDescription {
            origin: origin.to_string(),
            message,
        };
        if self.version != VICTIM_FORMAT_VERSION {
            return Err(bad(format!(
                "version {} (this build reads version {VICTIM_FORMAT_VERSION})",
                self.version
            )));
        }
        match (self.format.as_str(), self.kind) {
            (VICTIM_FORMAT, Some(kind)) => Ok(kind),
            (VICTIM_FORMAT, None) => Err(bad("no `kind` field".into())),
            (LEGACY_CC_FORMAT, None | Some(VictimKind::Cc)) => Ok(VictimKind::Cc),
            (other, _) => Err(bad(format!(
                "format {other:?} (expected {VICTIM_FORMAT:?})"
            ))),
        }
    }
}

/// A concrete victim model: what the shared save / load path needs to know about it.
pub trait VictimModel: DifferentiableClusterModel + Sized {
    /// Its tag in saved descriptions.
    const KIND: VictimKind;
    /// Its architecture (hyperparameters only), saved as the description's `config`.
    type Config: Serialize + DeserializeOwned + Clone + fmt::Debug + crate::norm::Architecture;

    /// The architecture.
    fn victim_config(&self) -> &Self::Config;
    /// A model of this architecture with fresh weights (the loader then fills them in).
    fn from_config(config: &Self::Config, device: &Device) -> Result<Self>;
    /// How it was trained, if known.
    fn training(&self) -> Option<&TrainingSummary>;
    /// Replaces the training summary.
    fn with_training(self, training: Option<TrainingSummary>) -> Self;

    /// Per-channel standard deviation of the normalisation inside the model (1 for none): an
    /// eps `e` in the victim's normalised space is `e * std_c` in `[0, 1]` pixels.
    fn channel_std(&self) -> &[f32];

    /// The JSON description of this model.
    fn description(&self) -> Result<VictimDescription> {
        Ok(VictimDescription {
            format: VICTIM_FORMAT.to_string(),
            version: VICTIM_FORMAT_VERSION,
            kind: Some(Self::KIND),
            config: serde_json::to_value(self.victim_config())
                .map_err(|e| ModelError::Save(e.to_string()))?,
            num_values: self.num_params(),
            training: self.training().cloned(),
        })
    }

    /// Saves the model into directory `dir` (created if needed): description and weights,
    /// each written atomically.
    fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        artifact::save_model_dir(dir.as_ref(), &self.description()?, self)
    }

    /// Rebuilds a model of this kind from a parsed description and its weights.
    fn from_description(
        description: VictimDescription,
        weights: Vec<u8>,
        device: &Device,
        origin: &str,
    ) -> Result<Self> {
        let kind = description.checked_kind(origin)?;
        if kind != Self::KIND {
            return Err(ModelError::WrongKind {
                origin: origin.to_string(),
                expected: Self::KIND,
                actual: kind,
            });
        }
        let config: Self::Config =
            serde_json::from_value(description.config).map_err(|e| ModelError::BadDescription {
                origin: origin.to_string(),
                message: format!("config of a {} victim: {e}", Self::KIND),
            })?;
        crate::norm::check_weights_hold(&config, weights.len(), origin)?;
        let model = Self::from_config(&config, device)?;
        let model = artifact::load_weights(model, weights, origin)?;
        Ok(model.with_training(description.training))
    }

    /// Loads a model of this kind saved with [`VictimModel::save`] (a directory of another kind
    /// is [`ModelError::WrongKind`]; use [`Victim::load`] for any kind).
    fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (json, weights) = artifact::read_model_dir(dir)?;
        let origin = dir.join(DESCRIPTION_FILE).display().to_string();
        let description = artifact::parse_json(&json, &origin)?;
        Self::from_description(description, weights, device, &dir.display().to_string())
    }

    /// Like [`VictimModel::load`], but fails with [`ModelError::ClusterCountMismatch`] unless the
    /// saved model has `expected_k` clusters.
    fn load_expecting(dir: impl AsRef<Path>, expected_k: usize, device: &Device) -> Result<Self> {
        let model = Self::load(dir, device)?;
        if model.num_clusters() != expected_k {
            return Err(ModelError::ClusterCountMismatch {
                expected: expected_k,
                actual: model.num_clusters(),
            });
        }
        Ok(model)
    }

    /// Loads a model of this kind from its description and weights held in memory.
    fn from_bytes(description_json: &str, weights: &[u8], device: &Device) -> Result<Self> {
        let description = artifact::parse_json(description_json.as_bytes(), "<bytes>")?;
        Self::from_description(description, weights.to_vec(), device, "<bytes>")
    }
}

/// Conveniences every [`DifferentiableClusterModel`] gets: host memberships, predictions and
/// scores, computed in evaluation mode (no autodiff, BatchNorm running statistics).
pub trait ClusterModelExt: DifferentiableClusterModel + Sized {
    /// Checks that `[N, C, H, W]` images fit the model.
    fn check_input(&self, dims: [usize; 4]) -> Result<()> {
        let actual = [dims[1], dims[2], dims[3]];
        let expected = self.input_shape();
        if actual != expected {
            return Err(ModelError::InputShape { expected, actual });
        }
        Ok(())
    }

    /// Soft memberships of a host batch in chunks of `chunk` images; row-major `[N, k]`.
    fn memberships_host(
        &self,
        images: &ImageBatch,
        chunk: usize,
        device: &Device,
    ) -> Result<Vec<f32>> {
        self.check_input(images.dims())?;
        let mut oracle = ModelOracle::new(self, device).with_max_batch(chunk);
        Ok(oracle.memberships(images)?.data().to_vec())
    }

    /// Hard cluster assignments (argmax of the memberships).
    fn predict(&self, images: &ImageBatch, device: &Device) -> Result<Vec<usize>> {
        let m = self.memberships_host(images, 256, device)?;
        Ok(argmax_rows(&m, self.num_clusters()))
    }

    /// NMI / ARI / ACC of the predicted clusters against `labels`.
    fn evaluate(
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
}

impl<M: DifferentiableClusterModel> ClusterModelExt for M {}

macro_rules! victim_family {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $model:ty ),+ $(,)?) => {
        /// Which victim a saved model is (its `kind` tag).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum VictimKind {
            $( $(#[$doc])* $variant, )+
        }

        impl VictimKind {
            /// Every kind, in the order of the family.
            pub const ALL: &'static [VictimKind] = &[$(VictimKind::$variant),+];

            /// The tag (`cc`, `scan`, ...).
            pub fn name(self) -> &'static str {
                match self { $(VictimKind::$variant => $name),+ }
            }
        }

        /// Any victim of the family: what the pipeline, the CLI, benches and tests hold.
        ///
        /// A burn module (an enum of the concrete models); implements
        /// [`DifferentiableClusterModel`] by dispatch, so [`ModelOracle`] and the attack take it.
        // A victim is held once per process (loaded, then borrowed by the attack), so the
        // size difference of the variants costs nothing worth a `Box` inside a burn module.
        #[allow(clippy::large_enum_variant)]
        #[derive(Module, Debug)]
        pub enum Victim {
            $( $(#[$doc])* $variant($model), )+
        }

        $(
            impl From<$model> for Victim {
                fn from(model: $model) -> Self {
                    Victim::$variant(model)
                }
            }
        )+

        impl Victim {
            /// Per-channel standard deviation of the victim's internal normalisation.
            pub fn channel_std(&self) -> &[f32] {
                match self { $(Victim::$variant(m) => VictimModel::channel_std(m)),+ }
            }

            /// Which victim this is.
            pub fn kind(&self) -> VictimKind {
                match self { $(Victim::$variant(_) => VictimKind::$variant),+ }
            }

            /// How it was trained, if known.
            pub fn training(&self) -> Option<&TrainingSummary> {
                match self { $(Victim::$variant(m) => VictimModel::training(m)),+ }
            }

            /// The JSON description (kind, config, size, training summary).
            pub fn description(&self) -> Result<VictimDescription> {
                match self { $(Victim::$variant(m) => VictimModel::description(m)),+ }
            }

            /// Saves into directory `dir` (description and weights, atomically).
            pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
                match self { $(Victim::$variant(m) => VictimModel::save(m, dir)),+ }
            }

            /// Rebuilds the victim a description names from its weights, dispatching on `kind`.
            pub fn from_description(
                description: VictimDescription,
                weights: Vec<u8>,
                device: &Device,
                origin: &str,
            ) -> Result<Self> {
                match description.checked_kind(origin)? {
                    $(VictimKind::$variant => Ok(Victim::$variant(
                        <$model as VictimModel>::from_description(description, weights, device, origin)?,
                    ))),+
                }
            }

            fn dispatch_memberships(&self, images: Tensor<4>) -> Tensor<2> {
                match self { $(Victim::$variant(m) => m.memberships(images)),+ }
            }

            fn dispatch_attack_output(&self, images: Tensor<4>) -> Tensor<2> {
                match self { $(Victim::$variant(m) => m.attack_output(images)),+ }
            }

            fn dispatch_both(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
                match self { $(Victim::$variant(m) => m.memberships_and_attack_output(images)),+ }
            }

            fn dispatch_shape(&self) -> (usize, [usize; 3]) {
                match self { $(Victim::$variant(m) => (m.num_clusters(), m.input_shape())),+ }
            }
        }
    };
}

victim_family! {
    /// CC, Contrastive Clustering (Li et al., AAAI 2021).
    Cc = "cc" => CcModel,
    /// SCAN (Van Gansbeke et al., ECCV 2020) on a SimCLR pretext, with self-labelling.
    Scan = "scan" => ScanModel,
    /// NNM (Dang et al., CVPR 2021): SCAN's architecture with three heads, trained with mined,
    /// in-batch and global nearest neighbours.
    Nnm = "nnm" => NnmModel,
    /// SPICE (Niu et al., 2021): prototype pseudo-labels on a frozen backbone (SPICE-Self), then
    /// FixMatch on the reliable images (SPICE-Semi).
    Spice = "spice" => SpiceModel,
    /// A classical soft clustering on PCA scores: a diagonal Gaussian mixture or soft k-means
    /// (`advclust_models::mixture`).
    Mixture = "mixture" => MixtureModel,
    /// MiCE (Tsai et al., ICLR 2021): a mixture of contrastive experts under a gating prior,
    /// trained by EM on the ELBO.
    Mice = "mice" => MiceModel,
    /// RUC (Park et al., CVPR 2021): two networks co-trained on a SCAN model's clean and noisy
    /// pseudo-labels; the prediction sums their logits.
    Ruc = "ruc" => RucModel,
}

impl Victim {
    /// Loads any saved victim directory, dispatching on the kind its description records.
    ///
    /// Errors (never panics): a missing file ([`ModelError::MissingCheckpoint`]), an unknown
    /// kind or unreadable description ([`ModelError::BadDescription`]), a truncated or foreign
    /// weights file ([`ModelError::CorruptCheckpoint`]), weights that do not fit the config
    /// ([`ModelError::ArchitectureMismatch`]); each names the file.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let (json, weights) = artifact::read_model_dir(dir)?;
        let origin = dir.join(DESCRIPTION_FILE).display().to_string();
        let description = artifact::parse_json(&json, &origin)?;
        Self::from_description(description, weights, device, &dir.display().to_string())
    }

    /// The victim's own representation of `[0, 1]` images, `[N, D]`, differentiable: the
    /// backbone features before the heads for the deep victims, the PCA projection for the
    /// mixture victims (what a defense such as SSD can score when no pretext is at hand).
    ///
    /// Panics on a wrong input shape (use [`ClusterModelExt::check_input`] first).
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Victim::Cc(m) => m.features(images),
            Victim::Scan(m) => m.features(images),
            Victim::Nnm(m) => m.heads().features(images),
            Victim::Spice(m) => m.features(images),
            Victim::Mixture(m) => m.project(images),
            Victim::Mice(m) => m.features(images),
            Victim::Ruc(m) => m.features(images),
        }
    }

    /// Loads a victim from its description and weights held in memory.
    pub fn from_bytes(description_json: &str, weights: &[u8], device: &Device) -> Result<Self> {
        let description = artifact::parse_json(description_json.as_bytes(), "<bytes>")?;
        Self::from_description(description, weights.to_vec(), device, "<bytes>")
    }
}

impl DifferentiableClusterModel for Victim {
    fn num_clusters(&self) -> usize {
        self.dispatch_shape().0
    }

    fn input_shape(&self) -> [usize; 3] {
        self.dispatch_shape().1
    }

    fn memberships(&self, images: Tensor<4>) -> Tensor<2> {
        self.dispatch_memberships(images)
    }

    fn attack_output(&self, images: Tensor<4>) -> Tensor<2> {
        self.dispatch_attack_output(images)
    }

    fn memberships_and_attack_output(&self, images: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        self.dispatch_both(images)
    }
}

/// The space a reference attack's eps is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpsilonSpace {
    /// `[0, 1]` pixels (CC has no normalisation).
    Pixel,
    /// The victim's normalised input (`(x - mean) / std`), as the authors' notebooks perturb.
    Normalized,
}

impl VictimKind {
    /// The L-inf eps the paper authors' notebooks train the generator with for this victim
    /// (`attack-spec.md`, `victims-spec.md` section 0), and the space it is given in.
    pub fn reference_epsilon(self) -> (f32, EpsilonSpace) {
        match self {
            VictimKind::Cc => (0.07, EpsilonSpace::Pixel),
            VictimKind::Scan => (0.1, EpsilonSpace::Normalized),
            VictimKind::Nnm => (0.15, EpsilonSpace::Normalized),
            VictimKind::Spice => (0.15, EpsilonSpace::Normalized),
            // No reference notebook attacks it; the project's default eps, in pixels.
            VictimKind::Mixture => (0.1, EpsilonSpace::Pixel),
            VictimKind::Mice => (0.05, EpsilonSpace::Normalized),
            VictimKind::Ruc => (0.25, EpsilonSpace::Normalized),
        }
    }
}

impl Victim {
    /// [`VictimKind::reference_epsilon`] converted to `[0, 1]` pixels with this victim's
    /// normalisation (`eps_pixel = eps_norm * std`, the mean over channels for colour images).
    pub fn reference_pixel_epsilon(&self) -> f32 {
        match self.kind().reference_epsilon() {
            (eps, EpsilonSpace::Pixel) => eps,
            (eps, EpsilonSpace::Normalized) => {
                let std = self.channel_std();
                eps * std.iter().sum::<f32>() / std.len().max(1) as f32
            }
        }
    }
}

impl fmt::Display for VictimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for VictimKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        VictimKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = VictimKind::ALL.iter().map(|k| k.name()).collect();
                ModelError::invalid(
                    "victim kind",
                    format!("unknown victim {s:?} (known: {})", names.join(", ")),
                )
            })
    }
}
