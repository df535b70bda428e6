//! The defense crate's parser of untrusted bytes: a saved SSD detector (`SsdDetector::load`).

use advclust_core::ParamGuard;
use advclust_defense::{FeatureMatrix, SsdConfig, SsdDetector};

use super::data::{Seeds, seed_error};
use super::{Outcome, Setup, Target, TargetInfo};
use crate::Result;
use crate::mutator::Layout;

struct SsdTarget;

impl Target for SsdTarget {
    fn name(&self) -> &'static str {
        "ssd-detector"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        match SsdDetector::from_json(input, "fuzz input") {
            // An accepted detector must score a candidate of its dimension without panicking,
            // and refuse one of another dimension.
            Ok(d) => {
                let ok = FeatureMatrix::new(vec![0.5; d.dim], 1, d.dim)
                    .map_err(|e| e.to_string())
                    .and_then(|f| d.score(&f).map_err(|e| e.to_string()));
                let wrong = FeatureMatrix::new(vec![0.5; d.dim + 1], 1, d.dim + 1)
                    .map(|f| d.score(&f).is_err())
                    .unwrap_or(true);
                match (ok, wrong) {
                    (Ok(_), true) => Outcome::Accepted,
                    (Err(e), _) => Outcome::Rejected(e),
                    (Ok(_), false) => {
                        Outcome::Finding("a detector scored features of another dimension".into())
                    }
                }
            }
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// `SsdDetector::from_json`, then a score.
pub const SSD_DETECTOR: TargetInfo = TargetInfo {
    name: "ssd-detector",
    corpus: "ssd-detector",
    layout: Layout::Json,
    max_len: 1 << 16,
    ci_iterations: 120_000,
    about: "a saved SSD detector (JSON: standardisation, clusters, pseudo-inverse forms)",
    build: |_: &Setup| Ok(Box::new(SsdTarget)),
};

/// Saved detectors fitted on small seeded clouds: 1 and 3 clusters, a rank-deficient one.
pub fn ssd_seeds() -> Result<Seeds> {
    let cloud = |n: usize, d: usize| {
        let values = (0..n * d)
            .map(|k| ((k * 7919 % 97) as f64 / 97.0 - 0.5) * (1.0 + (k % d) as f64))
            .collect();
        FeatureMatrix::new(values, n, d).map_err(|e| seed_error("ssd", e))
    };
    let mut seeds: Seeds = Vec::new();
    for (name, n, d, k) in [
        ("one-cluster", 40, 3, 1),
        ("three-clusters", 60, 4, 3),
        ("rank-deficient", 3, 6, 1),
    ] {
        let settings = SsdConfig::new(k)
            .check()
            .map_err(|e| seed_error("ssd", e))?;
        let detector =
            SsdDetector::fit(&cloud(n, d)?, &settings).map_err(|e| seed_error("ssd", e))?;
        let json = serde_json::to_vec(&detector).map_err(|e| seed_error("ssd", e))?;
        seeds.push((format!("{name}.json"), json));
    }
    Ok(seeds)
}
