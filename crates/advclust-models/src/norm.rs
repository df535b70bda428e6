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

/// Checks that `[C, H, W]` has no zero dimension.
pub(crate) fn check_input_shape(input_shape: [usize; 3]) -> Result<()> {
    if input_shape.contains(&0) {
        return Err(ModelError::invalid(
            "input_shape",
            format!("every dimension must be positive, got {input_shape:?}"),
        ));
    }
    Ok(())
}

/// Checks that `k >= 2`.
pub(crate) fn check_num_clusters(k: usize) -> Result<()> {
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
pub(crate) fn l2_normalize_host_rows(values: &mut [f32], d: usize) {
    for row in values.chunks_mut(d.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
}
