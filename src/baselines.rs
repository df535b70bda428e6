//! The comparison the paper could not publish (its Appendix E): the GAN attack against
//! per-image score-based attacks on the same victim, the same threat model and the same query
//! ledger, as clustering scores of the whole evaluation set against the images each attack
//! sent to the victim.
//!
//! The GAN pays its queries once, on a training subset, then perturbs any number of new images
//! with no queries; a per-image attack pays for every image it attacks. So every point carries
//! both the total images queried to attack the whole evaluation set and the marginal images
//! per new image (0 for a trained generator). GAN points come from generator snapshots of one
//! training run, per-image points from snapshots of one run at the largest per-image budget;
//! both equal separate runs with the smaller budgets.

use std::time::Instant;

use advclust_core::{
    ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle, ParamGuard, ThreatModel,
};
use advclust_gan::{AdvLoss, AttackConfig, AttackTrainer, GradientSource, Stopping};
use advclust_metrics::{ClusteringScores, clustering_scores};
use advclust_models::Victim;
use advclust_perimage::{Goal, PerImageConfig, PerImageLoss, PerImageMethod, attack_images};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use advclust_plot::figures::{CurvePoint, CurveSeries};

use crate::Error;
use crate::pipeline::evaluate_clean;
use advclust_data::Dataset;

/// One GAN gradient source of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GanEntry {
    /// The gradient source.
    pub source: GradientSource,
    /// Training epochs.
    pub epochs: usize,
    /// What `L_adv` measures.
    pub loss: AdvLoss,
    /// Tile of the query-only directions (1: per pixel; serde default 1).
    #[serde(default = "one")]
    pub tile: usize,
    /// Time prior of the query-only estimates (0: none).
    #[serde(default)]
    pub momentum: f32,
}

fn one() -> usize {
    1
}

/// What the comparison runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSettings {
    /// L-inf radius of every attack.
    pub epsilon: f32,
    /// The GAN attacks (trained on the training subset, 256 images per batch and per call).
    pub gans: Vec<GanEntry>,
    /// Training batch calls at which each GAN's generator is evaluated.
    pub gan_snapshot_calls: Vec<u64>,
    /// The per-image attacks (margin loss, untargeted, stop at success).
    pub methods: Vec<PerImageMethod>,
    /// The per-image objective.
    pub per_image_loss: PerImageLoss,
    /// Per-image budgets evaluated (the largest is the run's budget).
    pub per_image_budgets: Vec<u64>,
    /// Seed of every attack.
    pub seed: u64,
    /// Steps of the white-box per-image PGD bound (log-margin objective, steps of eps / 10);
    /// `None`: not run.
    #[serde(default)]
    pub pgd_steps: Option<usize>,
}

/// One point of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselinePoint {
    /// Attack name (`gan-nes-1`, `square`, ...).
    pub attack: String,
    /// `gan` or `per-image`.
    pub family: String,
    /// The budget this point is at: training batch calls (GAN) or queries per image.
    pub budget: u64,
    /// Images sent to the victim to attack the whole evaluation set.
    pub images_queried: u64,
    /// Images sent per further new image (0 for a trained generator, the mean queries per
    /// image for a per-image attack).
    pub images_per_new_image: f64,
    /// Scores of the adversarial clustering against the ground truth.
    pub scores: ClusteringScores,
    /// Relative NMI drop from the clean clustering.
    pub nmi_drop: f64,
    /// Fraction of images whose cluster changed.
    pub changed: f64,
    /// How input-specific the perturbation is: the across-image standard deviation of
    /// `x_adv - x`, averaged over pixels, over eps (0 for one universal perturbation); known
    /// for generator snapshots and floors.
    #[serde(default)]
    pub delta_spread: Option<f64>,
}

/// Everything the comparison measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselinesReport {
    /// The settings.
    pub settings: BaselineSettings,
    /// Images the GANs were trained on.
    pub train_images: usize,
    /// Images evaluated.
    pub eval_images: usize,
    /// Clean scores of the victim on the evaluation images.
    pub clean: ClusteringScores,
    /// Every point, attack by attack, budgets ascending.
    pub points: Vec<BaselinePoint>,
    /// Wall time of each attack's run (training + snapshot evaluations), seconds.
    pub wall_times: Vec<(String, f64)>,
}

/// Name of a GAN entry (`gan-backprop`, `gan-nes-1`, `gan-spsa-10-tile4`, `gan-nes-1-mi`).
pub fn gan_name(entry: &GanEntry) -> String {
    let loss = match entry.loss {
        AdvLoss::OutputDistance => "",
        AdvLoss::SoftMutualInformation => "-mi",
        AdvLoss::LogMargin => "-margin",
    };
    let mut tile = match entry.tile {
        1 => String::new(),
        t => format!("-tile{t}"),
    };
    if entry.momentum > 0.0 {
        tile += &format!("-m{}", entry.momentum);
    }
    match entry.source {
        GradientSource::Backprop => format!("gan-backprop{loss}"),
        GradientSource::Nes { samples, .. } => format!("gan-nes-{samples}{tile}{loss}"),
        GradientSource::Spsa { samples, .. } => format!("gan-spsa-{samples}{tile}{loss}"),
    }
}

/// The clean evaluation every point is measured against.
struct CleanReference<'a> {
    images: &'a ImageBatch,
    labels: &'a [usize],
    clusters: &'a [usize],
    scores: ClusteringScores,
    epsilon: f32,
}

impl CleanReference<'_> {
    /// A point from the victim's clusters of the adversarial images.
    fn point(
        &self,
        attack: String,
        family: &str,
        budget: u64,
        images_queried: u64,
        images_per_new_image: f64,
        adversarial: &[usize],
    ) -> Result<BaselinePoint, Error> {
        let scores = clustering_scores(self.labels, adversarial)?;
        let changed = self
            .clusters
            .iter()
            .zip(adversarial)
            .filter(|(a, b)| a != b)
            .count() as f64
            / adversarial.len().max(1) as f64;
        Ok(BaselinePoint {
            attack,
            family: family.into(),
            budget,
            images_queried,
            images_per_new_image,
            nmi_drop: 1.0 - scores.nmi / self.scores.nmi.max(f64::MIN_POSITIVE),
            scores,
            changed,
            delta_spread: None,
        })
    }

    /// A point for adversarial images that cost nothing per new image (a generator, a floor, a
    /// white-box bound): queries their clusters (evaluation traffic) and measures the spread.
    fn perturbed_point(
        &self,
        oracle: &mut dyn ClusterOracle,
        attack: String,
        family: &str,
        budget: u64,
        images_queried: u64,
        adversarial: &ImageBatch,
    ) -> Result<BaselinePoint, Error> {
        let scored = evaluate_clean(oracle, adversarial, self.labels)?;
        let mut p = self.point(
            attack,
            family,
            budget,
            images_queried,
            0.0,
            &scored.clusters,
        )?;
        p.delta_spread = Some(delta_spread(self.images, adversarial, self.epsilon));
        Ok(p)
    }
}

/// [`BaselinePoint::delta_spread`] of `adversarial` against `clean`.
fn delta_spread(clean: &ImageBatch, adversarial: &ImageBatch, epsilon: f32) -> f64 {
    let (n, d) = (clean.len(), clean.image_len());
    if n == 0 || d == 0 {
        return 0.0;
    }
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for (x, xa) in clean.data().chunks(d).zip(adversarial.data().chunks(d)) {
        for (p, (a, b)) in x.iter().zip(xa).enumerate() {
            let delta = (b - a) as f64;
            sum[p] += delta;
            sq[p] += delta * delta;
        }
    }
    let nf = n as f64;
    let mean_std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| (q / nf - (s / nf).powi(2)).max(0.0).sqrt())
        .sum::<f64>()
        / d as f64;
    mean_std / epsilon as f64
}

/// White-box per-image PGD with the log-membership margin of the clean cluster: `steps` signed
/// gradient steps of `epsilon / 10` through the differentiable victim, projected onto the L-inf
/// ball and the box, every image for the whole budget (the best iterate is not tracked, so
/// this is a lower bound on what a white-box attacker reaches). The reference point that tells a
/// victim robust at this radius from a weak attack.
pub fn white_box_pgd<M: DifferentiableClusterModel>(
    victim: &M,
    clean: &ImageBatch,
    clean_clusters: &[usize],
    epsilon: f32,
    steps: usize,
    device: &Device,
) -> Result<ImageBatch, Error> {
    use burn::tensor::{Tensor, TensorData};
    let frozen = advclust_gan::FrozenVictim::new(victim, device);
    let ad = device.clone().autodiff();
    let step = epsilon / 10.0;
    let (lo, hi) = (clean.value_box().min(), clean.value_box().max());
    let mut out = Vec::with_capacity(clean.data().len());
    let mut offset = 0;
    for chunk in clean.chunks(256) {
        let n = chunk.len();
        let dims = chunk.dims();
        let chunk_clusters = &clean_clusters[offset..offset + n];
        offset += n;
        let x = chunk.data();
        let mut adv = x.to_vec();
        for _ in 0..steps {
            let xa = Tensor::<4>::from_data(TensorData::new(adv.clone(), dims), &ad).require_grad();
            let m = frozen.model().memberships(xa.clone());
            let grads = advclust_gan::log_margin_loss(m, chunk_clusters).backward();
            let g = xa
                .grad(&grads)
                .ok_or_else(|| Error::InvalidArgument("no input gradient".into()))?;
            let g = advclust_core::tensor_to_vec(g.into_data())?;
            for ((a, &x0), gv) in adv.iter_mut().zip(x).zip(g) {
                let moved = *a + step * gv.signum() * f32::from(gv != 0.0);
                *a = moved.clamp(x0 - epsilon, x0 + epsilon).clamp(lo, hi);
            }
        }
        out.extend(adv);
    }
    Ok(ImageBatch::new(out, clean.dims(), clean.value_box())?)
}

/// The query-free floors at radius `epsilon`: every pixel shifted by `+epsilon` (a constant
/// brightness shift, clipped to the box) and independent random signs `+-epsilon` (seeded).
fn floor_images(
    clean: &ImageBatch,
    epsilon: f32,
    seed: u64,
) -> Result<[(String, ImageBatch); 2], Error> {
    use rand::{RngExt, SeedableRng};
    let (lo, hi) = (clean.value_box().min(), clean.value_box().max());
    let shift: Vec<f32> = clean
        .data()
        .iter()
        .map(|&v| (v + epsilon).clamp(lo, hi))
        .collect();
    let mut rng = advclust_core::SeededRng::seed_from_u64(advclust_core::derive_seed(seed, 0xF100));
    let signs: Vec<f32> = clean
        .data()
        .iter()
        .map(|&v| {
            let s = if rng.random::<bool>() {
                epsilon
            } else {
                -epsilon
            };
            (v + s).clamp(lo, hi)
        })
        .collect();
    Ok([
        (
            "floor-shift".into(),
            ImageBatch::new(shift, clean.dims(), clean.value_box())?,
        ),
        (
            "floor-signs".into(),
            ImageBatch::new(signs, clean.dims(), clean.value_box())?,
        ),
    ])
}

/// Runs every attack of `settings` against `victim`: the GANs trained on `train`, everything
/// evaluated on `eval`.
pub fn run_baselines(
    settings: &BaselineSettings,
    victim: &Victim,
    train: &Dataset,
    eval: &Dataset,
    device: &Device,
) -> Result<BaselinesReport, Error> {
    let clean_images = eval.to_image_batch()?;
    let mut oracle = ModelOracle::new(victim, device).with_max_batch(256);
    let clean_eval = evaluate_clean(&mut oracle, &clean_images, eval.labels())?;
    let clean = CleanReference {
        images: &clean_images,
        labels: eval.labels(),
        clusters: &clean_eval.clusters,
        scores: clean_eval.scores,
        epsilon: settings.epsilon,
    };
    let mut points = Vec::new();
    let mut wall_times = Vec::new();
    if let Some(steps) = settings.pgd_steps {
        let started = Instant::now();
        let adversarial = white_box_pgd(
            victim,
            &clean_images,
            clean.clusters,
            settings.epsilon,
            steps,
            device,
        )?;
        let name = format!("pgd-white-box-{steps}");
        let p = clean.perturbed_point(
            &mut oracle,
            name.clone(),
            "bound",
            steps as u64,
            0,
            &adversarial,
        )?;
        points.push(p);
        wall_times.push((name, started.elapsed().as_secs_f64()));
    }
    for (name, adversarial) in floor_images(&clean_images, settings.epsilon, settings.seed)? {
        points.push(clean.perturbed_point(&mut oracle, name, "floor", 0, 0, &adversarial)?);
    }
    let train_images = train.to_image_batch()?;
    for entry in &settings.gans {
        let started = Instant::now();
        let name = gan_name(entry);
        let config = AttackConfig::new()
            .with_epsilon(settings.epsilon)
            .with_gradient_source(entry.source)
            .with_loss(entry.loss)
            .with_stopping(Stopping::Epochs {
                epochs: entry.epochs,
            })
            .with_max_images_per_call(Some(256))
            .with_direction_tile(entry.tile)
            .with_estimate_momentum(entry.momentum)
            .with_seed(settings.seed)
            .with_progress(false)
            .with_snapshot_calls(settings.gan_snapshot_calls.clone())
            .check()?;
        let attack = AttackTrainer::new(&config, device)
            .with_labels(train.labels())
            .fit_model(victim, &train_images)?;
        for (i, snap) in attack.snapshots().iter().enumerate() {
            let adversarial = attack
                .perturb_snapshot(i, &clean_images)
                .ok_or_else(|| Error::InvalidArgument(format!("snapshot {i} missing")))??;
            points.push(clean.perturbed_point(
                &mut oracle,
                name.clone(),
                "gan",
                snap.queries.batch_calls,
                snap.queries.images,
                &adversarial,
            )?);
        }
        // Snapshots past the end of training repeat the final generator: keep one.
        points.dedup_by(|a, b| a.attack == b.attack && a.images_queried == b.images_queried);
        wall_times.push((name, started.elapsed().as_secs_f64()));
    }
    let max_budget = settings
        .per_image_budgets
        .iter()
        .copied()
        .max()
        .unwrap_or(1);
    let threat = ThreatModel::linf(settings.epsilon).check()?;
    for &method in &settings.methods {
        let started = Instant::now();
        let run = PerImageConfig::new(method, threat)
            .loss(settings.per_image_loss)
            .max_queries(max_budget)
            .snapshots(settings.per_image_budgets.clone())
            .seed(settings.seed)
            .check()?;
        let out = attack_images(&run, &mut oracle, &clean_images, &Goal::Untargeted)?;
        let n = clean_images.len().max(1) as f64;
        for snap in &out.report.snapshots {
            points.push(clean.point(
                method.name().into(),
                "per-image",
                snap.per_image_budget,
                snap.images_queried,
                snap.images_queried as f64 / n,
                &snap.labels,
            )?);
        }
        wall_times.push((method.name().into(), started.elapsed().as_secs_f64()));
    }
    Ok(BaselinesReport {
        settings: settings.clone(),
        train_images: train.len(),
        eval_images: eval.len(),
        clean: clean.scores,
        points,
        wall_times,
    })
}

/// One line per attack: NMI against images queried for the whole evaluation set (points that
/// queried nothing, an untrained generator, have no place on a log axis and are left out).
pub fn curve_series(report: &BaselinesReport) -> Vec<CurveSeries> {
    let mut series: Vec<CurveSeries> = Vec::new();
    for p in report.points.iter().filter(|p| p.images_queried > 0) {
        let point = CurvePoint {
            x: p.images_queried as f64,
            y: p.scores.nmi,
        };
        match series.iter_mut().find(|s| s.name == p.attack) {
            Some(s) => s.points.push(point),
            None => series.push(CurveSeries {
                name: p.attack.clone(),
                points: vec![point],
            }),
        }
    }
    series
}

/// The smallest images queried at which each attack reaches `drop` (relative NMI drop), with
/// its budget, or `None`.
pub fn images_to_drop<'a>(
    report: &'a BaselinesReport,
    attack: &str,
    drop: f64,
) -> Option<&'a BaselinePoint> {
    report
        .points
        .iter()
        .filter(|p| p.attack == attack && p.nmi_drop >= drop)
        .min_by_key(|p| p.images_queried)
}

/// The report as Markdown: the full table, then images to reach given NMI drops.
pub fn baselines_markdown(report: &BaselinesReport) -> String {
    let mut md = format!(
        "Clean NMI / ARI / ACC on {} images: {:.4} / {:.4} / {:.4}; GANs trained on {} images.\n\n",
        report.eval_images,
        report.clean.nmi,
        report.clean.ari,
        report.clean.acc,
        report.train_images
    );
    md += "| attack | budget | images queried (all images) | per new image | NMI | ARI | ACC | NMI drop | changed | delta spread |\n";
    md += "|---|---|---|---|---|---|---|---|---|---|\n";
    for p in &report.points {
        let budget = match p.family.as_str() {
            "gan" => format!("{} calls", p.budget),
            "floor" => "none".into(),
            "bound" => format!("{} gradient steps", p.budget),
            _ => format!("{} / image", p.budget),
        };
        let spread = p
            .delta_spread
            .map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        md += &format!(
            "| {} | {} | {} | {:.1} | {:.4} | {:.4} | {:.4} | {:.1} % | {:.1} % | {spread} |\n",
            p.attack,
            budget,
            p.images_queried,
            p.images_per_new_image,
            p.scores.nmi,
            p.scores.ari,
            p.scores.acc,
            100.0 * p.nmi_drop,
            100.0 * p.changed
        );
    }
    let mut names: Vec<&str> = Vec::new();
    for p in &report.points {
        if !names.contains(&p.attack.as_str()) {
            names.push(&p.attack);
        }
    }
    let drops = [0.4, 0.6, 0.8, 0.9];
    md += "\nFewest images queried (whole evaluation set) to reach a relative NMI drop:\n\n| attack |";
    for d in drops {
        md += &format!(" {:.0} % |", 100.0 * d);
    }
    md += "\n|---|";
    md += &"---|".repeat(drops.len());
    md += "\n";
    for name in names {
        md += &format!("| {name} |");
        for d in drops {
            md += &match images_to_drop(report, name, d) {
                Some(p) => format!(" {} |", p.images_queried),
                None => " not reached |".into(),
            };
        }
        md += "\n";
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(attack: &str, images: u64, nmi: f64) -> BaselinePoint {
        BaselinePoint {
            attack: attack.into(),
            family: "per-image".into(),
            budget: images,
            images_queried: images,
            images_per_new_image: 1.0,
            scores: ClusteringScores {
                nmi,
                ari: 0.0,
                acc: 0.0,
            },
            nmi_drop: 1.0 - nmi / 0.9,
            changed: 0.0,
            delta_spread: None,
        }
    }

    #[test]
    fn images_to_a_drop_take_the_cheapest_point_that_reaches_it() {
        let report = BaselinesReport {
            settings: BaselineSettings {
                epsilon: 0.1,
                gans: Vec::new(),
                gan_snapshot_calls: Vec::new(),
                methods: Vec::new(),
                per_image_loss: PerImageLoss::Margin,
                per_image_budgets: Vec::new(),
                seed: 0,
                pgd_steps: None,
            },
            train_images: 0,
            eval_images: 10,
            clean: ClusteringScores {
                nmi: 0.9,
                ari: 0.9,
                acc: 0.9,
            },
            points: vec![
                p("a", 10, 0.8),
                p("a", 100, 0.1),
                p("a", 1000, 0.05),
                p("b", 50, 0.5),
            ],
            wall_times: Vec::new(),
        };
        assert_eq!(
            images_to_drop(&report, "a", 0.8).unwrap().images_queried,
            100
        );
        assert!(images_to_drop(&report, "b", 0.8).is_none());
        let md = baselines_markdown(&report);
        assert!(md.contains("| b | 50 | not reached |"), "{md}");
        assert_eq!(md.matches("\n| a | 10 / image |").count(), 1);
    }
}
