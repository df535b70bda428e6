//! The defense experiments of the paper's Section 6.2 on saved attacks: SSD detection with the
//! authors' injection protocol (Fig. 5a) and the PCA view (Fig. 5b), as library calls that the
//! CLI's `advclust defend` wraps.
//!
//! SSD needs clean training features and a clean test set the detector never saw: the images
//! are split by a seeded permutation into a fit half and a test half (the test half keeps
//! dataset order, walked in batches of 256 as the authors' unshuffled loader did).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use std::time::Instant;

use advclust_core::{ImageBatch, ModelOracle, ParamGuard, QueryCounts, SeededRng};
use advclust_defense::metrics::percentile;
use advclust_defense::{
    FeatureExtractor, FeatureMatrix, InjectionConfig, InjectionReport, InjectionUnit, SsdConfig,
    SsdDetector, SsdPenalty, SsdQueryPenalty, extract, run_injection,
};
use advclust_gan::{AttackTrainer, TrainedAttack};
use advclust_metrics::ClusteringScores;
use advclust_models::Victim;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::pipeline::VictimSpec;

/// One attacked victim of a defense run: `<victim>=<saved attack directory>`.
#[derive(Debug, Clone, PartialEq)]
pub struct DefenseEntry {
    /// The victim the attack was trained against.
    pub victim: VictimSpec,
    /// The saved attack (`advclust attack`'s `attack/` directory or the run directory).
    pub attack: PathBuf,
}

impl FromStr for DefenseEntry {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (victim, attack) = s.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!("defense entry {s:?}: write <victim>=<attack dir>"))
        })?;
        Ok(DefenseEntry {
            victim: victim.parse()?,
            attack: PathBuf::from(attack),
        })
    }
}

impl fmt::Display for DefenseEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.victim, self.attack.display())
    }
}

/// The fit and test halves of `n` images: a seeded permutation split in two, each half in
/// dataset order.
pub fn fit_test_split(n: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>), Error> {
    if n < 4 {
        return Err(Error::InvalidArgument(format!(
            "SSD needs at least 4 images to split into fit and test halves, got {n}"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut SeededRng::seed_from_u64(seed));
    let (fit, test) = order.split_at(n / 2);
    let (mut fit, mut test) = (fit.to_vec(), test.to_vec());
    fit.sort_unstable();
    test.sort_unstable();
    Ok((fit, test))
}

/// SSD against one attack at one cluster count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdResult {
    /// Clusters of the detector.
    pub clusters: usize,
    /// Clusters dropped for holding fewer than two training features.
    pub dropped_clusters: usize,
    /// The authors' batch-injection protocol.
    pub batch: InjectionReport,
    /// Per-sample injection.
    pub sample: InjectionReport,
}

/// SSD against every cluster count for one attacked victim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdVictimResult {
    /// The entry (`victim=attack`).
    pub entry: String,
    /// The feature extractor.
    pub features: String,
    /// Feature dimension.
    pub feature_dim: usize,
    /// Mean L-inf norm of the perturbation on the test half (pixels).
    pub mean_linf: f64,
    /// One result per cluster count.
    pub results: Vec<SsdResult>,
}

/// Settings of an SSD experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsdExperiment {
    /// Cluster counts of the detectors (1 is SSD's and the paper's).
    pub clusters: Vec<usize>,
    /// Trials of each injection protocol.
    pub trials: usize,
    /// Seed of the split, the k-means and the injection draws.
    pub seed: u64,
}

/// Scores SSD detectors fitted on `fit` features of `extractor` against the adversarial
/// versions of `test` made by `attack`.
pub fn ssd_against_attack(
    extractor: &dyn FeatureExtractor,
    fit: &ImageBatch,
    test: &ImageBatch,
    attack: &TrainedAttack,
    entry: &str,
    experiment: &SsdExperiment,
) -> Result<SsdVictimResult, Error> {
    if attack.image_shape() != test.image_shape() {
        return Err(Error::InvalidArgument(format!(
            "the attack {entry} perturbs {:?} images, the data is {:?}",
            attack.image_shape(),
            test.image_shape()
        )));
    }
    let adversarial = attack.perturb(test)?;
    let mean_linf = test
        .data()
        .chunks_exact(test.image_len())
        .zip(adversarial.data().chunks_exact(test.image_len()))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        })
        .map(f64::from)
        .sum::<f64>()
        / test.len() as f64;
    let fit_features = extract(extractor, fit)?;
    let clean_features = extract(extractor, test)?;
    let adversarial_features = extract(extractor, &adversarial)?;
    let results = experiment
        .clusters
        .iter()
        .map(|&k| {
            ssd_result(
                &fit_features,
                &clean_features,
                &adversarial_features,
                k,
                experiment,
            )
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(SsdVictimResult {
        entry: entry.to_string(),
        features: extractor.name(),
        feature_dim: fit_features.dim,
        mean_linf,
        results,
    })
}

fn ssd_result(
    fit: &FeatureMatrix,
    clean: &FeatureMatrix,
    adversarial: &FeatureMatrix,
    clusters: usize,
    experiment: &SsdExperiment,
) -> Result<SsdResult, Error> {
    let settings = SsdConfig::new(clusters).seed(experiment.seed).check()?;
    let detector = SsdDetector::fit(fit, &settings)?;
    let clean_scores = detector.score(clean)?;
    let adversarial_scores = detector.score(adversarial)?;
    let protocol = |unit| -> Result<InjectionReport, Error> {
        let settings = InjectionConfig::new(unit)
            .trials(experiment.trials)
            .seed(experiment.seed)
            .check()?;
        Ok(run_injection(
            &clean_scores,
            &adversarial_scores,
            &settings,
        )?)
    };
    Ok(SsdResult {
        clusters,
        dropped_clusters: detector.dropped_clusters,
        batch: protocol(InjectionUnit::Batch)?,
        sample: protocol(InjectionUnit::Sample)?,
    })
}

/// One attack seen by the victim and by SSD on the test half.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackUnderSsd {
    /// Clean scores of the victim.
    pub clean: ClusteringScores,
    /// Scores on the adversarial images.
    pub adversarial: ClusteringScores,
    /// `1 - adversarial NMI / clean NMI`.
    pub relative_nmi_drop: f64,
    /// SSD with the authors' batch protocol.
    pub batch: InjectionReport,
}

/// How the adaptive attacker reaches the detector.
pub enum DetectorAccess {
    /// SSD's score as tensor operations on this differentiable (frozen) copy of the extractor
    /// ([`SsdPenalty`]); any gradient source.
    WhiteBox(Box<dyn FeatureExtractor>),
    /// Scores only ([`SsdQueryPenalty`]: the detector answers per image, the GAN estimates the
    /// penalty's gradient from the same perturbed copies it sends to the victim); the saved
    /// attack must be query-only (NES or SPSA).
    QueryOnly,
}

impl DetectorAccess {
    /// `white-box` or `query-only`.
    pub fn name(&self) -> &'static str {
        match self {
            DetectorAccess::WhiteBox(_) => "white-box",
            DetectorAccess::QueryOnly => "query-only",
        }
    }
}

impl fmt::Debug for DetectorAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The adaptive attack against SSD next to the attack that ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveResult {
    /// The entry (`victim=attack`).
    pub entry: String,
    /// The features SSD scores.
    pub features: String,
    /// Clusters of the detector.
    pub clusters: usize,
    /// Weight of the SSD penalty in the generator loss.
    pub weight: f32,
    /// How the attacker reached the detector: `white-box` or `query-only`.
    #[serde(default = "white_box")]
    pub access: String,
    /// Victim queries of the adaptive training.
    #[serde(default)]
    pub victim_queries: QueryCounts,
    /// Detector queries of the adaptive training (query-only access).
    #[serde(default)]
    pub detector_queries: Option<QueryCounts>,
    /// The detector's threshold (95th percentile of the clean test scores), known to the
    /// attacker.
    pub threshold: f64,
    /// Images the adaptive generator was trained on (from the fit half).
    pub train_images: usize,
    /// Wall time of the adaptive training, seconds.
    pub training_seconds: f64,
    /// The saved attack, which does not know the detector.
    pub plain: AttackUnderSsd,
    /// A fresh generator trained with the same configuration plus the SSD penalty.
    pub adaptive: AttackUnderSsd,
}

fn white_box() -> String {
    "white-box".into()
}

/// Trains an adaptive attack against an SSD detector (fitted on `fit` features, `clusters`
/// clusters) with the configuration of `attack` plus an SSD penalty of `weight` (reached as
/// `access` says), and measures both attacks' NMI drop and detection on `test`. `plain`
/// scores features for the detector.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_ssd(
    victim: &Victim,
    plain: &dyn FeatureExtractor,
    access: DetectorAccess,
    (fit, test, test_labels): (&ImageBatch, &ImageBatch, &[usize]),
    attack: &TrainedAttack,
    clusters: usize,
    weight: f32,
    experiment: &SsdExperiment,
    device: &Device,
) -> Result<(AdaptiveResult, TrainedAttack), Error> {
    let settings = SsdConfig::new(clusters).seed(experiment.seed).check()?;
    let detector = SsdDetector::fit(&extract(plain, fit)?, &settings)?;
    let clean_scores = detector.score(&extract(plain, test)?)?;
    let threshold = percentile(&clean_scores, 95.0)?;
    let features = plain.name();
    let access_name = access.name().to_string();
    let train_images = attack.report().train_images.min(fit.len());
    let train = fit.select(&(0..train_images).collect::<Vec<_>>())?;
    let started = Instant::now();
    let trainer = AttackTrainer::new(attack.config(), device);
    let adaptive = match access {
        DetectorAccess::WhiteBox(frozen) => {
            let penalty = SsdPenalty::new(&detector, frozen, threshold, weight)?;
            trainer.with_penalty(&penalty).fit_model(victim, &train)?
        }
        DetectorAccess::QueryOnly => {
            let penalty = SsdQueryPenalty::new(&detector, plain, threshold, weight)?;
            trainer
                .with_query_penalty(&penalty)
                .fit_model(victim, &train)?
        }
    };
    let training_seconds = started.elapsed().as_secs_f64();
    let victim_queries = adaptive.report().training_queries;
    let detector_queries = adaptive.report().penalty_queries;
    let injection = InjectionConfig::new(InjectionUnit::Batch)
        .trials(experiment.trials)
        .seed(experiment.seed)
        .check()?;
    let under = |mut a: TrainedAttack| -> Result<(AttackUnderSsd, TrainedAttack), Error> {
        let adversarial = a.perturb(test)?;
        let scores = detector.score(&extract(plain, &adversarial)?)?;
        let mut oracle = ModelOracle::new(victim, device);
        let e = a.evaluate_perturbed(&mut oracle, test, &adversarial, test_labels)?;
        let under = AttackUnderSsd {
            relative_nmi_drop: if e.clean.nmi > 0.0 {
                1.0 - e.adversarial.nmi / e.clean.nmi
            } else {
                0.0
            },
            clean: e.clean,
            adversarial: e.adversarial,
            batch: run_injection(&clean_scores, &scores, &injection)?,
        };
        Ok((under, a))
    };
    let (plain_result, _) = under(attack.clone())?;
    let (adaptive_result, adaptive) = under(adaptive)?;
    Ok((
        AdaptiveResult {
            entry: String::new(),
            features,
            clusters,
            weight,
            access: access_name,
            victim_queries,
            detector_queries,
            threshold,
            train_images,
            training_seconds,
            plain: plain_result,
            adaptive: adaptive_result,
        },
        adaptive,
    ))
}

/// The Markdown table of adaptive-attack results: two rows (plain, adaptive) per entry.
pub fn adaptive_markdown(results: &[AdaptiveResult]) -> String {
    let mut md = String::from(
        "| victim = attack | features | k | attack | clean NMI | adversarial NMI | NMI drop | \
         detected % (batch) | clean flagged % | AUROC |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        for (name, u) in [
            ("ignores SSD".to_string(), &r.plain),
            (
                format!(
                    "adaptive ({}, weight {}, {} victim / {} detector images)",
                    r.access,
                    r.weight,
                    r.victim_queries.images,
                    r.detector_queries.map_or(0, |c| c.images)
                ),
                &r.adaptive,
            ),
        ] {
            md += &format!(
                "| {} | {} | {} | {name} | {:.4} | {:.4} | {:.1} % | {:.2} | {:.2} | {:.4} |\n",
                r.entry,
                r.features,
                r.clusters,
                u.clean.nmi,
                u.adversarial.nmi,
                100.0 * u.relative_nmi_drop,
                100.0 * u.batch.detection_rate.mean,
                100.0 * u.batch.clean_flag_rate.mean,
                u.batch.metrics.auroc,
            );
        }
    }
    md
}

/// The Markdown table of an SSD experiment: one row per victim and cluster count.
pub fn ssd_markdown(results: &[SsdVictimResult]) -> String {
    let mut md = String::from(
        "| victim = attack | features | k | injected (batch, mean +- std) | detected (batch) | \
         detected % (batch) | detected % (per sample) | clean flagged % | FPR95 | AUROC | AUPR |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for v in results {
        for r in &v.results {
            md += &format!(
                "| {} | {} ({}) | {} | {:.1} +- {:.1} | {:.1} +- {:.1} | {:.2} | {:.2} | {:.2} | {:.4} | {:.4} | {:.4} |\n",
                v.entry,
                v.features,
                v.feature_dim,
                r.clusters,
                r.batch.injected.mean,
                r.batch.injected.std,
                r.batch.detected.mean,
                r.batch.detected.std,
                100.0 * r.batch.detection_rate.mean,
                100.0 * r.sample.detection_rate.mean,
                100.0 * r.batch.clean_flag_rate.mean,
                r.batch.metrics.fpr95,
                r.batch.metrics.auroc,
                r.batch.metrics.aupr,
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_seeded_disjoint_and_covers_everything() {
        let (fit, test) = fit_test_split(11, 3).unwrap();
        assert_eq!((fit.len(), test.len()), (5, 6));
        let mut all: Vec<usize> = fit.iter().chain(&test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        assert_eq!(fit_test_split(11, 3).unwrap(), (fit, test));
        assert!(fit_test_split(3, 0).is_err());
    }

    #[test]
    fn entries_parse() {
        let e: DefenseEntry = "pretrained-cc-mnist=runs/a".parse().unwrap();
        assert_eq!(e.attack, PathBuf::from("runs/a"));
        assert!("no-separator".parse::<DefenseEntry>().is_err());
    }
}
