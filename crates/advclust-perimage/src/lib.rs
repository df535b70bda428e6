//! # advclust-perimage
//!
//! Per-image score-based attacks on a clustering oracle: the baselines a query-only GAN has to
//! beat. Each image is attacked on its own, with its own query budget, through nothing but a
//! [`ClusterOracle`]: NES (antithetic Gaussian finite differences and projected signed
//! steps), SPSA (Rademacher differences and Adam), SimBA (greedy search along pixels or
//! low-frequency DCT directions) and the Square Attack (random search over square windows,
//! L-inf and L2, with the published schedule). Each maximises a clustering loss
//! ([`PerImageLoss`]: the membership margin of the clean cluster, or the paper's distance
//! between memberships), untargeted or targeted ([`Goal`]); success means the predicted
//! cluster changed (or reached the target). Every query is counted, per image and per call;
//! no image exceeds its budget; an image stops at its first success and returns its best
//! result so far otherwise. Images are attacked side by side so that their queries share
//! oracle calls, but each draws from its own random stream: the result of an image depends on
//! the seed and the image only, not on batching. Snapshots record the run at smaller budgets,
//! exactly as separate runs with those budgets would have ended.
//!
//! ```
//! use advclust_core::{ClusterOracle, ImageBatch, Memberships, ParamGuard, Result, ThreatModel};
//! use advclust_perimage::{Goal, PerImageConfig, PerImageMethod, attack_images};
//!
//! /// Memberships (1 - p, p) with p the mean brightness, sharpened.
//! struct Brightness;
//! impl ClusterOracle for Brightness {
//!     fn num_clusters(&self) -> usize { 2 }
//!     fn input_shape(&self) -> Option<[usize; 3]> { None }
//!     fn memberships(&mut self, batch: &ImageBatch) -> Result<Memberships> {
//!         let logits: Vec<f32> = (0..batch.len())
//!             .flat_map(|i| {
//!                 let img = batch.image(i).unwrap();
//!                 let p = img.iter().sum::<f32>() / img.len() as f32;
//!                 [0.0, 40.0 * (p - 0.5)]
//!             })
//!             .collect();
//!         Memberships::from_logits(&logits, batch.len(), 2)
//!     }
//! }
//! let clean = ImageBatch::unit(vec![0.45; 2 * 16], [2, 1, 4, 4]).unwrap();
//! let threat = ThreatModel::linf(0.1).check().unwrap();
//! let settings = PerImageConfig::new(PerImageMethod::SQUARE, threat)
//!     .max_queries(50)
//!     .check()
//!     .unwrap();
//! let out = attack_images(&settings, &mut Brightness, &clean, &Goal::Untargeted).unwrap();
//! assert_eq!(out.report.adversarial_labels, vec![1, 1]);
//! assert!(out.report.queries.iter().all(|&q| q <= 50));
//! assert_eq!(out.report.counts.images, out.report.queries.iter().sum::<u64>());
//! ```

mod config;
mod driver;
mod error;
mod methods;
mod report;

use advclust_core::{ClusterOracle, ImageBatch, ParamGuard};

pub use config::{
    Goal, PerImageConfig, PerImageLoss, PerImageMethod, PerImageSettings, SimbaBasis,
};
pub use error::{PerImageError, Result};
pub use report::{PerImageOutcome, PerImageReport, PerImageSnapshot};

use driver::run_search;
use methods::simba::Simba;
use methods::square::Square;
use methods::zeroth::{Update, ZerothOrder};

/// Attacks every image of `clean` through `oracle` with the method and budget of `settings`.
///
/// The oracle sees only images (the clean ones first, one query each, then the method's
/// proposals); wrap it in [`advclust_core::Budgeted`] to cap the whole run as well. Fails up
/// front for targets that do not fit, images the oracle refuses, or a threat model whose
/// value box differs from the images'; an oracle failure in the middle returns
/// [`PerImageError::Interrupted`] with every image's best result so far.
pub fn attack_images(
    settings: &PerImageSettings,
    oracle: &mut dyn ClusterOracle,
    clean: &ImageBatch,
    goal: &Goal,
) -> Result<PerImageOutcome> {
    // Settings can arrive deserialized, past `check`: validate (and sort the snapshots) again.
    let settings = &PerImageConfig::from_settings(settings.clone()).check()?;
    let eps = settings.threat.epsilon();
    match settings.method {
        PerImageMethod::Nes {
            samples,
            sigma,
            step_ratio,
            momentum,
        } => {
            let search = ZerothOrder {
                samples,
                h: sigma,
                rademacher: false,
                update: Update::Steepest {
                    step: step_ratio * eps,
                    momentum,
                },
            };
            run_search(&search, settings, oracle, clean, goal)
        }
        PerImageMethod::Spsa {
            samples,
            delta,
            lr_ratio,
        } => {
            let search = ZerothOrder {
                samples,
                h: delta,
                rademacher: true,
                update: Update::Adam { lr: lr_ratio * eps },
            };
            run_search(&search, settings, oracle, clean, goal)
        }
        PerImageMethod::Simba { basis, step } => {
            let search = Simba::new(basis, step, clean.image_shape());
            run_search(&search, settings, oracle, clean, goal)
        }
        PerImageMethod::Square {
            p_init,
            schedule_queries,
        } => {
            let search = Square {
                p_init,
                schedule_queries,
            };
            run_search(&search, settings, oracle, clean, goal)
        }
    }
}
