//! Per-channel statistics and (de)normalisation.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// Per-channel mean and standard deviation, for victims trained on
/// normalised inputs.
///
/// Attacks in this project work in `[0, 1]` pixel space (that is where
/// epsilon budgets such as 8/255 are defined and where clipping happens), so
/// keep the dataset in pixel space and normalise inside the victim's forward
/// pass, or normalise a copy with [`Dataset::normalize`](super::Dataset::normalize) only for training or
/// evaluating a victim that expects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStats {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Population standard deviation of each channel.
    pub std: Vec<f32>,
}

impl ChannelStats {
    /// Builds statistics from explicit values (e.g. published ones).
    ///
    /// Errors if the lengths differ, are zero, or a std is not a positive
    /// finite number.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, DataError> {
        let s = ChannelStats { mean, std };
        s.check()?;
        Ok(s)
    }

    /// Number of channels described.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    fn check(&self) -> Result<(), DataError> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(DataError::InvalidArgument(format!(
                "channel stats need as many means as stds (at least one), got {} and {}",
                self.mean.len(),
                self.std.len()
            )));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::InvalidArgument(format!(
                "channel std must be positive and finite, got {s}"
            )));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::InvalidArgument(format!(
                "channel mean must be finite, got {m}"
            )));
        }
        Ok(())
    }

    fn check_layout(&self, len: usize, hw: usize) -> Result<(), DataError> {
        self.check()?;
        let c = self.channels();
        let image_len = c.checked_mul(hw).unwrap_or(0);
        if image_len == 0 || !len.is_multiple_of(image_len) {
            return Err(DataError::InvalidArgument(format!(
                "a slice of {len} values is not a whole number of {c} x {hw} images"
            )));
        }
        Ok(())
    }

    /// Applies `(x - mean[ch]) / std[ch]` in place to NCHW data whose images
    /// have `self.channels()` channels of `hw = h * w` pixels each.
    pub fn normalize_slice(&self, nchw: &mut [f32], hw: usize) -> Result<(), DataError> {
        self.check_layout(nchw.len(), hw)?;
        let c = self.channels();
        for (i, plane) in nchw.chunks_mut(hw).enumerate() {
            let (m, s) = (self.mean[i % c], self.std[i % c]);
            plane.iter_mut().for_each(|x| *x = (*x - m) / s);
        }
        Ok(())
    }

    /// Inverse of [`ChannelStats::normalize_slice`]: `x * std[ch] + mean[ch]`.
    pub fn denormalize_slice(&self, nchw: &mut [f32], hw: usize) -> Result<(), DataError> {
        self.check_layout(nchw.len(), hw)?;
        let c = self.channels();
        for (i, plane) in nchw.chunks_mut(hw).enumerate() {
            let (m, s) = (self.mean[i % c], self.std[i % c]);
            plane.iter_mut().for_each(|x| *x = *x * s + m);
        }
        Ok(())
    }
}
