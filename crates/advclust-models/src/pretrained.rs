//! The embedded pretrained victim: CC trained on the MNIST test split.
//!
//! The weights (burnpack, about 390 kB) and the JSON description are compiled into the crate
//! with `include_bytes!`, so the default victim of the quickstart needs no file and no
//! download. `assets/cc-mnist/README.md` gives the exact training command and the scores.

use burn::tensor::Device;

use crate::cc::CcModel;
use crate::error::Result;

/// Burnpack weights of the embedded MNIST model.
pub const CC_MNIST_WEIGHTS: &[u8] = include_bytes!("../assets/cc-mnist/model.bpk");
/// JSON description of the embedded MNIST model.
pub const CC_MNIST_DESCRIPTION: &str = include_str!("../assets/cc-mnist/model.json");

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
