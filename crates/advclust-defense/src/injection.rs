//! The injection protocol of the paper's authors (their SSD notebooks): the clean test set is
//! walked in batches of 256; each batch is replaced by its adversarial version with probability
//! 0.5; a candidate is flagged when its score reaches the 95th percentile of the clean test
//! scores (so about 5 % of clean inputs are flagged by construction); over 100 seeded trials,
//! the number injected and the number of those flagged ("detected") are reported as mean and
//! sample standard deviation. Per-sample injection (each image on its own, probability 0.5) is
//! the other [`InjectionUnit`].
//!
//! Because a generator is deterministic, the scores of every clean and every adversarial test
//! image are computed once; a trial only draws which of them are injected.

use advclust_core::{ParamGuard, SeededRng};
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{DefenseError, Result};
use crate::metrics::{DetectionMetrics, percentile};

/// What one injection draw replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InjectionUnit {
    /// A whole batch of `batch_size` consecutive images (the authors' protocol).
    Batch,
    /// One image.
    Sample,
}

/// The checked parameters of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionSettings {
    /// Batch or per-sample injection.
    pub unit: InjectionUnit,
    /// Images per batch (256 in the protocol).
    pub batch_size: usize,
    /// Probability that a unit is replaced by its adversarial version (0.5).
    pub probability: f64,
    /// Seeded trials (100).
    pub trials: usize,
    /// Percentile of the clean test scores that flags a candidate (95).
    pub percentile: f64,
    /// Seed of the draws.
    pub seed: u64,
}

/// Parameters of the protocol, unchecked; [`ParamGuard::check`] validates them.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectionConfig(InjectionSettings);

impl InjectionConfig {
    /// The authors' protocol: batches of 256, probability 0.5, 100 trials, 95th percentile.
    pub fn new(unit: InjectionUnit) -> Self {
        InjectionConfig(InjectionSettings {
            unit,
            batch_size: 256,
            probability: 0.5,
            trials: 100,
            percentile: 95.0,
            seed: 0,
        })
    }

    /// Sets the number of trials.
    pub fn trials(mut self, trials: usize) -> Self {
        self.0.trials = trials;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Sets the batch size of batch injection.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.0.batch_size = batch_size;
        self
    }
}

impl ParamGuard for InjectionConfig {
    type Checked = InjectionSettings;
    type Error = DefenseError;

    fn check_ref(&self) -> Result<&InjectionSettings> {
        let s = &self.0;
        if s.batch_size == 0 {
            return Err(DefenseError::invalid("batch_size", "must be at least 1"));
        }
        if s.trials == 0 {
            return Err(DefenseError::invalid("trials", "must be at least 1"));
        }
        if !(s.probability > 0.0 && s.probability <= 1.0) {
            return Err(DefenseError::invalid(
                "probability",
                format!("{} is not in (0, 1]", s.probability),
            ));
        }
        if !(0.0..=100.0).contains(&s.percentile) {
            return Err(DefenseError::invalid(
                "percentile",
                format!("{} is not in [0, 100]", s.percentile),
            ));
        }
        Ok(s)
    }

    fn check(self) -> Result<InjectionSettings> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// Mean and sample standard deviation (Python's `statistics.mean` / `stdev`; 0 for one value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (`n - 1`).
    pub std: f64,
}

impl MeanStd {
    /// Of `values` (at least one).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        MeanStd { mean, std }
    }
}

/// What the protocol measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionReport {
    /// The settings.
    pub settings: InjectionSettings,
    /// Clean test images (candidates per trial).
    pub images: usize,
    /// The flagging threshold: the settings' percentile of the clean test scores.
    pub threshold: f64,
    /// Adversarial images injected per trial.
    pub injected: MeanStd,
    /// Injected images flagged per trial.
    pub detected: MeanStd,
    /// `detected / injected` per trial (trials with nothing injected left out).
    pub detection_rate: MeanStd,
    /// Clean images flagged per trial, over the clean images of the candidate set.
    pub clean_flag_rate: MeanStd,
    /// Fraction of all adversarial test images flagged (the detection rate with everything
    /// injected).
    pub all_adversarial_flag_rate: f64,
    /// FPR at 95 % TPR, AUROC and AUPR of every adversarial against every clean test image.
    pub metrics: DetectionMetrics,
}

/// Runs the protocol on index-aligned scores: `clean[i]` and `adversarial[i]` are the scores
/// of test image `i` and of its adversarial version.
pub fn run_injection(
    clean: &[f64],
    adversarial: &[f64],
    settings: &InjectionSettings,
) -> Result<InjectionReport> {
    if clean.len() != adversarial.len() {
        return Err(DefenseError::ShapeMismatch(format!(
            "{} clean scores for {} adversarial ones",
            clean.len(),
            adversarial.len()
        )));
    }
    if clean.is_empty() {
        return Err(DefenseError::Empty("the candidate set"));
    }
    crate::error::check_finite("the adversarial scores", adversarial)?;
    let threshold = percentile(clean, settings.percentile)?;
    let n = clean.len();
    let unit = match settings.unit {
        InjectionUnit::Batch => settings.batch_size,
        InjectionUnit::Sample => 1,
    };
    let mut rng = SeededRng::seed_from_u64(settings.seed);
    let (mut injected, mut detected, mut rates, mut clean_flags) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..settings.trials {
        let (mut inj, mut det, mut kept, mut kept_flagged) = (0usize, 0usize, 0usize, 0usize);
        for start in (0..n).step_by(unit) {
            let range = start..(start + unit).min(n);
            if rng.random::<f64>() < settings.probability {
                inj += range.len();
                det += adversarial[range]
                    .iter()
                    .filter(|&&s| s >= threshold)
                    .count();
            } else {
                kept += range.len();
                kept_flagged += clean[range].iter().filter(|&&s| s >= threshold).count();
            }
        }
        injected.push(inj as f64);
        detected.push(det as f64);
        if inj > 0 {
            rates.push(det as f64 / inj as f64);
        }
        if kept > 0 {
            clean_flags.push(kept_flagged as f64 / kept as f64);
        }
    }
    let or_zero = |v: &[f64]| {
        if v.is_empty() {
            MeanStd {
                mean: 0.0,
                std: 0.0,
            }
        } else {
            MeanStd::of(v)
        }
    };
    Ok(InjectionReport {
        settings: settings.clone(),
        images: n,
        threshold,
        injected: MeanStd::of(&injected),
        detected: MeanStd::of(&detected),
        detection_rate: or_zero(&rates),
        clean_flag_rate: or_zero(&clean_flags),
        all_adversarial_flag_rate: adversarial.iter().filter(|&&s| s >= threshold).count() as f64
            / n as f64,
        metrics: DetectionMetrics::of(clean, adversarial)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_injected_whole_and_a_separable_attack_is_always_detected() {
        let clean: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let adversarial: Vec<f64> = clean.iter().map(|s| s + 10.0).collect();
        let settings = InjectionConfig::new(InjectionUnit::Batch).check().unwrap();
        let r = run_injection(&clean, &adversarial, &settings).unwrap();
        assert_eq!(r.detection_rate.mean, 1.0);
        assert_eq!(r.injected.mean, r.detected.mean);
        // 1000 images: batches of 256, 256, 256, 232.
        assert!(r.injected.mean > 0.0 && r.injected.mean < 1000.0);
        assert_eq!(r.metrics.auroc, 1.0);
        assert_eq!(r.metrics.fpr95, 0.0);
        // Same seed, same draws.
        assert_eq!(run_injection(&clean, &adversarial, &settings).unwrap(), r);
    }

    #[test]
    fn an_attack_the_detector_cannot_see_is_flagged_at_the_clean_rate() {
        let clean: Vec<f64> = (0..2000).map(|i| ((i * 7919) % 2000) as f64).collect();
        let settings = InjectionConfig::new(InjectionUnit::Sample).check().unwrap();
        let r = run_injection(&clean, &clean, &settings).unwrap();
        assert!((r.detection_rate.mean - 0.05).abs() < 0.01);
        assert!((r.clean_flag_rate.mean - 0.05).abs() < 0.01);
        assert!((r.metrics.auroc - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_input_is_typed() {
        let s = InjectionConfig::new(InjectionUnit::Batch).check().unwrap();
        assert!(run_injection(&[], &[], &s).is_err());
        assert!(run_injection(&[1.0], &[1.0, 2.0], &s).is_err());
        assert!(
            InjectionConfig::new(InjectionUnit::Batch)
                .trials(0)
                .check()
                .is_err()
        );
        assert!(
            InjectionConfig::new(InjectionUnit::Batch)
                .batch_size(0)
                .check()
                .is_err()
        );
    }
}
