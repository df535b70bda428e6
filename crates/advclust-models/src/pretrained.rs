//! The embedded victims: models trained by this project on the MNIST test split, compiled into
//! the crate with `include_bytes!` so that they need no file and no download.
//!
//! Each asset folder (`assets/<name>/`) has a README with the exact training command and the
//! scores; [`EMBEDDED`] is the registry (`advclust victims` prints it).

use burn::tensor::Device;

use crate::artifact::parse_json;
use crate::cc::CcModel;
use crate::error::{ModelError, Result};
use crate::victim::{Victim, VictimDescription, VictimKind, VictimModel};

/// One embedded victim: its name (`pretrained-<kind>-<dataset>`), description and weights.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedVictim {
    /// The name `--victim` takes, e.g. `pretrained-cc-mnist`.
    pub name: &'static str,
    /// Its kind.
    pub kind: VictimKind,
    /// The dataset it was trained (and is evaluated) on.
    pub dataset: &'static str,
    /// Its JSON description.
    pub description: &'static str,
    /// Its burnpack weights.
    pub weights: &'static [u8],
}

impl EmbeddedVictim {
    /// Loads it onto `device`.
    pub fn load(&self, device: &Device) -> Result<Victim> {
        Victim::from_bytes(self.description, self.weights, device)
    }

    /// Its parsed description (kind, config, training summary with the recorded scores).
    pub fn parsed_description(&self) -> Result<VictimDescription> {
        parse_json(self.description.as_bytes(), self.name)
    }
}

/// Every embedded victim.
pub const EMBEDDED: &[EmbeddedVictim] = &[
    EmbeddedVictim {
        name: "pretrained-cc-mnist",
        kind: VictimKind::Cc,
        dataset: "mnist",
        description: include_str!("../assets/cc-mnist/model.json"),
        weights: include_bytes!("../assets/cc-mnist/model.bpk"),
    },
    EmbeddedVictim {
        name: "pretrained-scan-mnist",
        kind: VictimKind::Scan,
        dataset: "mnist",
        description: include_str!("../assets/scan-mnist/model.json"),
        weights: include_bytes!("../assets/scan-mnist/model.bpk"),
    },
    EmbeddedVictim {
        name: "pretrained-nnm-mnist",
        kind: VictimKind::Nnm,
        dataset: "mnist",
        description: include_str!("../assets/nnm-mnist/model.json"),
        weights: include_bytes!("../assets/nnm-mnist/model.bpk"),
    },
    EmbeddedVictim {
        name: "pretrained-spice-mnist",
        kind: VictimKind::Spice,
        dataset: "mnist",
        description: include_str!("../assets/spice-mnist/model.json"),
        weights: include_bytes!("../assets/spice-mnist/model.bpk"),
    },
    EmbeddedVictim {
        name: "pretrained-mice-mnist",
        kind: VictimKind::Mice,
        dataset: "mnist",
        description: include_str!("../assets/mice-mnist/model.json"),
        weights: include_bytes!("../assets/mice-mnist/model.bpk"),
    },
    EmbeddedVictim {
        name: "pretrained-ruc-mnist",
        kind: VictimKind::Ruc,
        dataset: "mnist",
        description: include_str!("../assets/ruc-mnist/model.json"),
        weights: include_bytes!("../assets/ruc-mnist/model.bpk"),
    },
];

/// Burnpack weights of the embedded CC MNIST model.
pub const CC_MNIST_WEIGHTS: &[u8] = EMBEDDED[0].weights;
/// JSON description of the embedded CC MNIST model.
pub const CC_MNIST_DESCRIPTION: &str = EMBEDDED[0].description;

/// The embedded victim called `name` (`pretrained-<kind>-<dataset>`).
pub fn embedded(name: &str) -> Result<&'static EmbeddedVictim> {
    EMBEDDED.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<&str> = EMBEDDED.iter().map(|e| e.name).collect();
        ModelError::invalid(
            "victim",
            format!(
                "no embedded victim {name:?} (embedded: {})",
                names.join(", ")
            ),
        )
    })
}

/// Loads the embedded CC model trained on the MNIST test split (k = 10, `[1, 28, 28]` images
/// in `[0, 1]`) onto `device`.
///
/// ```
/// use advclust_core::DifferentiableClusterModel;
/// let model = advclust_models::pretrained_cc_mnist(&burn::tensor::Device::flex())?;
/// assert_eq!((model.num_clusters(), model.input_shape()), (10, [1, 28, 28]));
/// # Ok::<(), advclust_models::ModelError>(())
/// ```
pub fn pretrained_cc_mnist(device: &Device) -> Result<CcModel> {
    CcModel::from_bytes(CC_MNIST_DESCRIPTION, CC_MNIST_WEIGHTS, device)
}
