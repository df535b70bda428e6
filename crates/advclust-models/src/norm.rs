//! Per-channel normalisation applied inside every victim, so that victims take `[0, 1]` pixels.

use burn::tensor::{Tensor, TensorData};

use crate::error::{ModelError, Result};

/// Checks `mean` / `std` for `channels` channels (finite means, finite positive stds).
pub(crate) fn check_normalization(mean: &[f32], std: &[f32], channels: usize) -> Result<()> {
    if mean.len() != channels || std.len() != channels {
        return Err(ModelError::invalid(
            "mean / std",
            format!(
                "need one value per channel ({channels}), got {} and {}",
                mean.len(),
                std.len()
            ),
        ));
    }
    if mean.iter().any(|m| !m.is_finite()) || std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(ModelError::invalid(
            "mean / std",
            "means must be finite and standard deviations finite and positive",
        ));
    }
    Ok(())
}

/// `(images - mean) / std` with one value per channel.
pub(crate) fn normalize(images: Tensor<4>, mean: &[f32], std: &[f32]) -> Tensor<4> {
    let c = mean.len();
    let device = images.device();
    let mean = Tensor::<4>::from_data(TensorData::new(mean.to_vec(), [1, c, 1, 1]), &device);
    let inv_std: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
    let inv_std = Tensor::<4>::from_data(TensorData::new(inv_std, [1, c, 1, 1]), &device);
    (images - mean) * inv_std
}

/// Largest layer width (channels, hidden units, embedding size) a model description may ask
/// for. The victims of this project are at most 512 wide; the bound stops a hostile
/// `model.json` from making the loader allocate terabytes.
pub const MAX_WIDTH: usize = 16_384;
/// Largest number of clusters a model description may ask for.
pub const MAX_CLUSTERS: usize = 65_536;
/// Largest image side (height or width) and channel count a model description may ask for
/// (the workspace's one limit, from `advclust-core`).
pub use advclust_core::MAX_IMAGE_SIDE;
/// Largest number of BasicBlocks in one ResNet stage, and of stages.
pub const MAX_BLOCKS: usize = 64;
/// Largest number of parameters a model description may ask for (2^28: 1 GiB of f32).
pub const MAX_PARAMETERS: u64 = 1 << 28;

/// A model architecture read from a description: it can say how many parameters it would
/// have before anything is built, so that a loader can compare the claim with the size of the
/// weights it was given and refuse a small file that describes a huge model.
pub trait Architecture {
    /// Validates the architecture and counts its parameters (an estimate within a few percent
    /// of the weights' element count, never more than 2x above it), with checked arithmetic
    /// and every size bounded by this crate's limits.
    fn parameter_count(&self) -> Result<u64>;
}

/// Checks, before a model of `architecture` is built, that `weights_len` bytes of weights can
/// hold it (at least one byte per described parameter: records hold f32 or f16 values, four
/// or two bytes each), so that a description cannot make the loader allocate far more than
/// the file it came with.
pub(crate) fn check_weights_hold(
    architecture: &impl Architecture,
    weights_len: usize,
    origin: &str,
) -> Result<()> {
    let parameters = architecture.parameter_count()?;
    if (weights_len as u64) < parameters {
        return Err(ModelError::CorruptCheckpoint {
            origin: origin.to_string(),
            message: format!(
                "the description asks for {parameters} parameters but the weights hold only \
                 {weights_len} bytes"
            ),
        });
    }
    Ok(())
}

/// Checks that `value <= max` for a size read from a description.
pub(crate) fn check_at_most(name: &'static str, value: usize, max: usize) -> Result<()> {
    if value > max {
        return Err(ModelError::invalid(
            name,
            format!("{value} is more than the limit of {max}"),
        ));
    }
    Ok(())
}

/// Adds `fan_in x fan_out` weights (plus `fan_out` biases) to a running parameter count,
/// checking each width against [`MAX_WIDTH`] and the total against [`MAX_PARAMETERS`], with
/// checked arithmetic. `fan_in` may be a kernel-area multiple of channels.
pub(crate) fn add_layer(
    total: &mut u64,
    name: &'static str,
    fan_in: usize,
    fan_out: usize,
) -> Result<()> {
    check_at_most(name, fan_out, MAX_WIDTH)?;
    let layer = (fan_in as u64)
        .checked_mul(fan_out as u64)
        .and_then(|w| w.checked_add(fan_out as u64));
    match layer.and_then(|l| total.checked_add(l)) {
        Some(t) if t <= MAX_PARAMETERS => {
            *total = t;
            Ok(())
        }
        _ => Err(ModelError::invalid(
            name,
            format!("the model would have more than the limit of {MAX_PARAMETERS} parameters"),
        )),
    }
}

/// Checks that `[C, H, W]` has no zero dimension and none above [`MAX_IMAGE_SIDE`].
pub(crate) fn check_input_shape(input_shape: [usize; 3]) -> Result<()> {
    for d in input_shape {
        check_at_most("input_shape", d, MAX_IMAGE_SIDE)?;
    }
    if input_shape.contains(&0) {
        return Err(ModelError::invalid(
            "input_shape",
            format!("every dimension must be positive, got {input_shape:?}"),
        ));
    }
    Ok(())
}

/// Checks that `2 <= k <=` [`MAX_CLUSTERS`].
pub(crate) fn check_num_clusters(k: usize) -> Result<()> {
    check_at_most("num_clusters", k, MAX_CLUSTERS)?;
    if k < 2 {
        return Err(ModelError::invalid(
            "num_clusters",
            format!("need at least 2 clusters, got {k}"),
        ));
    }
    Ok(())
}

/// Rows of `x` scaled to unit L2 norm (rows of norm below 1e-12 are divided by 1e-12).
pub fn l2_normalize_rows(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// L2-normalises each `d`-value row of a host buffer in place (norms floored at 1e-12).
pub fn l2_normalize_host_rows(values: &mut [f32], d: usize) {
    for row in values.chunks_mut(d.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
}
