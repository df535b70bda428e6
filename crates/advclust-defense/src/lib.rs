//! # advclust-defense
//!
//! Can the attack be caught, or trained away? This crate holds the defenses of the paper's
//! Section 6.2, rebuilt so that each number can be checked. [`SsdDetector`] is SSD (Sehwag et
//! al., ICLR 2021): a squared Mahalanobis distance (pseudo-inverse of the biased covariance) to
//! the clean training features of any [`FeatureExtractor`] (a SimCLR pretext backbone by
//! default, a victim's own backbone otherwise), with one or `k` clusters. [`run_injection`] is
//! the authors' evaluation protocol (batches of 256 replaced by their adversarial versions with
//! probability 0.5, a threshold at the 95th percentile of clean scores, 100 seeded trials), and
//! [`metrics`] gives FPR at 95 % TPR, ROC AUC and average precision exactly as scikit-learn and
//! SSD's code compute them. [`pca_view()`] is Fig. 5b done right: clean and adversarial images
//! projected onto the same three principal components of the clean set (faer's randomised or
//! exact SVD). Every input is checked: NaN features, fewer samples than dimensions (handled by
//! the pseudo-inverse), `k` above the sample count, mismatched shapes and empty sets are typed
//! [`DefenseError`]s, never panics.
//!
//! ```
//! use advclust_core::ParamGuard;
//! use advclust_defense::{FeatureMatrix, InjectionConfig, InjectionUnit, SsdConfig, SsdDetector};
//! use advclust_defense::run_injection;
//! let clean: Vec<f64> = (0..600).map(|i| ((i * 37 % 600) as f64 / 600.0).sin()).collect();
//! let features = FeatureMatrix::new(clean.clone(), 300, 2).unwrap();
//! let ssd = SsdDetector::fit(&features, &SsdConfig::new(1).check().unwrap()).unwrap();
//! let clean_scores = ssd.score(&features).unwrap();
//! let shifted: Vec<f64> = clean.iter().enumerate().map(|(k, v)| if k % 2 == 0 { v + 3.0 } else { *v }).collect();
//! let adv_scores = ssd.score(&FeatureMatrix::new(shifted, 300, 2).unwrap()).unwrap();
//! let settings = InjectionConfig::new(InjectionUnit::Batch).trials(10).check().unwrap();
//! let report = run_injection(&clean_scores, &adv_scores, &settings).unwrap();
//! assert!(report.detection_rate.mean >= report.clean_flag_rate.mean);
//! ```

pub mod error;
pub mod features;
pub mod injection;
pub mod linalg;
pub mod metrics;
pub mod pca_view;
pub mod penalty;
pub mod ssd;

pub use error::{DefenseError, Result};
pub use features::{FeatureExtractor, FeatureMatrix, PretextFeatures, VictimFeatures, extract};
pub use injection::{
    InjectionConfig, InjectionReport, InjectionSettings, InjectionUnit, MeanStd, run_injection,
};
pub use linalg::{PcaFit, PcaSolver, PinvForm};
pub use metrics::DetectionMetrics;
pub use pca_view::{PcaView, PcaViewReport, pca_view};
pub use penalty::{SsdPenalty, SsdQueryPenalty};
pub use ssd::{SsdConfig, SsdDetector, SsdSettings};
