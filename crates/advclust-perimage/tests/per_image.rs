//! Budgets, reproducibility, batching, snapshots and errors of every per-image method, on a
//! seeded linear-softmax clustering oracle (no data needed).

use advclust_core::SeededRng;
use advclust_core::{
    Budgeted, ClusterOracle, CoreError, ImageBatch, Memberships, NormKind, ParamGuard, QueryBudget,
    ThreatModel, ValueBox, derive_seed, standard_normal,
};
use advclust_perimage::{
    Goal, PerImageConfig, PerImageError, PerImageLoss, PerImageMethod, PerImageSettings,
    attack_images,
};
use rand::SeedableRng;

const SHAPE: [usize; 3] = [1, 10, 10];
const K: usize = 3;

/// Softmax of `W (x - 0.5)`: `W` is smooth (a seeded mix of the lowest 2-D cosines, as the
/// sensitivity of image models is) and centred, so that clusters are balanced.
struct Linear {
    weights: Vec<f32>,
}

impl Linear {
    fn new(seed: u64) -> Self {
        let [_, h, w] = SHAPE;
        let coefficients = standard_normal(&mut SeededRng::seed_from_u64(seed), K * 9);
        let mut weights = Vec::with_capacity(K * h * w);
        for c in 0..K {
            for i in 0..h {
                for j in 0..w {
                    let mut v = 0.0;
                    for u in 0..3 {
                        for t in 0..3 {
                            let a = coefficients[c * 9 + u * 3 + t];
                            let ci = (std::f32::consts::PI * (2 * i + 1) as f32 * u as f32
                                / (2 * h) as f32)
                                .cos();
                            let cj = (std::f32::consts::PI * (2 * j + 1) as f32 * t as f32
                                / (2 * w) as f32)
                                .cos();
                            v += a * ci * cj;
                        }
                    }
                    weights.push(v);
                }
            }
        }
        Linear { weights }
    }
}

impl ClusterOracle for Linear {
    fn num_clusters(&self) -> usize {
        K
    }
    fn input_shape(&self) -> Option<[usize; 3]> {
        Some(SHAPE)
    }
    fn memberships(&mut self, batch: &ImageBatch) -> advclust_core::Result<Memberships> {
        let d = batch.image_len();
        let mut logits = Vec::with_capacity(batch.len() * K);
        for i in 0..batch.len() {
            let x = batch.image(i).unwrap();
            for c in 0..K {
                let w = &self.weights[c * d..(c + 1) * d];
                logits.push(w.iter().zip(x).map(|(a, b)| a * (b - 0.5)).sum::<f32>());
            }
        }
        Memberships::from_logits(&logits, batch.len(), K)
    }
}

impl Linear {
    /// Whether the optimal attack of radius `eps` (box ignored, so an upper bound on
    /// what any attack can do) moves `x` out of its cluster: some `j` whose logit gap to the
    /// clean cluster `c` closes, `(w_j - w_c) . (x - 0.5) + eps ||w_j - w_c||_1 > 0` under L-inf.
    /// The L2 bound is the same with the L2 norm of the gap (the dual norm).
    fn attackable_in(&self, x: &[f32], eps: f32, norm: advclust_core::NormKind) -> bool {
        let d = x.len();
        let logit = |c: usize| -> f32 {
            self.weights[c * d..(c + 1) * d]
                .iter()
                .zip(x)
                .map(|(a, b)| a * (b - 0.5))
                .sum()
        };
        let c = (0..K)
            .max_by(|&a, &b| logit(a).total_cmp(&logit(b)))
            .unwrap();
        (0..K).filter(|&j| j != c).any(|j| {
            let wj = &self.weights[j * d..(j + 1) * d];
            let wc = &self.weights[c * d..(c + 1) * d];
            let dual: f32 = match norm {
                NormKind::Linf => wj.iter().zip(wc).map(|(a, b)| (a - b).abs()).sum(),
                NormKind::L2 => wj
                    .iter()
                    .zip(wc)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f32>()
                    .sqrt(),
            };
            logit(j) - logit(c) + eps * dual > 0.0
        })
    }
}

impl Linear {
    /// `n` images with margins of every size: image `i` leans towards cluster `i % K` by a
    /// seeded amount in `[0, 0.2]` along `sign(w_c - mean_j w_j)`, plus noise; some are
    /// beyond any attack of radius 0.1, others easy.
    fn structured(&self, n: usize, seed: u64) -> ImageBatch {
        let d: usize = SHAPE.iter().product();
        let mut rng = SeededRng::seed_from_u64(derive_seed(seed, 98));
        let noise = standard_normal(&mut rng, n * d);
        let lean = standard_normal(&mut rng, n);
        let mut data = Vec::with_capacity(n * d);
        for i in 0..n {
            let c = i % K;
            let a = 0.1 + 0.05 * lean[i].clamp(-2.0, 2.0);
            for p in 0..d {
                let mean = (0..K).map(|j| self.weights[j * d + p]).sum::<f32>() / K as f32;
                let dir = (self.weights[c * d + p] - mean).signum();
                data.push((0.5 + a * dir + 0.05 * noise[i * d + p]).clamp(0.0, 1.0));
            }
        }
        ImageBatch::unit(data, [n, SHAPE[0], SHAPE[1], SHAPE[2]]).unwrap()
    }
}

fn images(n: usize, seed: u64) -> ImageBatch {
    let d: usize = SHAPE.iter().product();
    let mut rng = SeededRng::seed_from_u64(derive_seed(seed, 99));
    let data = standard_normal(&mut rng, n * d)
        .into_iter()
        .map(|v| (0.5 + 0.15 * v).clamp(0.0, 1.0))
        .collect();
    ImageBatch::unit(data, [n, SHAPE[0], SHAPE[1], SHAPE[2]]).unwrap()
}

fn methods() -> Vec<PerImageMethod> {
    vec![
        PerImageMethod::NES,
        PerImageMethod::SPSA,
        PerImageMethod::SIMBA_PIXEL,
        PerImageMethod::simba_dct(10),
        PerImageMethod::SQUARE,
    ]
}

fn linf() -> ThreatModel {
    ThreatModel::linf(0.1).check().unwrap()
}

fn settings(method: PerImageMethod, threat: ThreatModel, max_queries: u64) -> PerImageSettings {
    PerImageConfig::new(method, threat)
        .max_queries(max_queries)
        .max_images_per_call(64)
        .concurrent_images(16)
        .seed(7)
        .check()
        .unwrap()
}

/// Queries one proposal of `method` costs at most.
fn step_queries(method: PerImageMethod) -> u64 {
    match method {
        PerImageMethod::Nes { samples, .. } | PerImageMethod::Spsa { samples, .. } => {
            2 * samples as u64 + 1
        }
        _ => 1,
    }
}

#[test]
fn every_method_respects_its_budget_exactly_and_counts_every_query() {
    let clean = images(20, 0);
    for threat in [linf(), ThreatModel::l2(0.5).check().unwrap()] {
        for method in methods() {
            let max = 61;
            let cfg = PerImageConfig::new(method, threat)
                .max_queries(max)
                .stop_on_success(false)
                .max_images_per_call(50);
            let s = cfg.check().unwrap();
            let mut oracle = Budgeted::new(Linear::new(1), QueryBudget::UNLIMITED);
            let out = attack_images(&s, &mut oracle, &clean, &Goal::Untargeted).unwrap();
            let r = &out.report;
            let name = method.name();
            for &q in &r.queries {
                assert!(q <= max, "{name}: {q} queries > {max}");
                // Without early stopping an image stops only when the next step would not fit
                // (SimBA could also run out of directions, not within 61 queries here).
                assert!(
                    q + step_queries(method) > max,
                    "{name}: stopped early at {q}"
                );
            }
            assert_eq!(r.counts.images, r.queries.iter().sum::<u64>(), "{name}");
            assert_eq!(
                oracle.counts(),
                r.counts,
                "{name}: the oracle saw other traffic"
            );
            assert!(
                threat.contains(&clean, &out.adversarial).unwrap(),
                "{name}: outside the ball"
            );
        }
    }
}

/// Against a linear victim the optimal attack is known in closed form, so each method can be
/// held to a share of what is possible (and must never claim more).
#[test]
fn every_method_breaks_most_images_an_optimal_attack_could() {
    let victim = Linear::new(2);
    let clean = victim.structured(60, 1);
    let norms = [
        (linf(), NormKind::Linf, 0.1),
        (ThreatModel::l2(1.0).check().unwrap(), NormKind::L2, 1.0),
    ];
    for (threat, norm, eps) in norms {
        let bound = (0..clean.len())
            .filter(|&i| victim.attackable_in(clean.image(i).unwrap(), eps, norm))
            .count();
        assert!(
            bound > 30 && bound < clean.len(),
            "the images should mix easy and robust ones"
        );
        for method in methods() {
            let s = settings(method, threat, 1000);
            let out = attack_images(&s, &mut Linear::new(2), &clean, &Goal::Untargeted).unwrap();
            let r = &out.report;
            let name = method.name();
            let got = r.queries_to_success.iter().flatten().count();
            println!(
                "{norm:?} {name}: {got} of {} images (optimum {bound})",
                clean.len()
            );
            assert!(
                got <= bound,
                "{name}: more successes than the optimum allows"
            );
            assert!(
                3 * got >= 2 * bound,
                "{name} {norm:?}: {got} of a possible {bound}"
            );
            // Success is what the victim says about the returned image.
            let check = Linear::new(2)
                .memberships(&out.adversarial)
                .unwrap()
                .labels();
            assert_eq!(check, r.adversarial_labels, "{name}");
            for (i, q) in r.queries_to_success.iter().enumerate() {
                assert_eq!(q.is_some(), r.adversarial_labels[i] != r.clean_labels[i]);
                if let Some(q) = q {
                    // Stopped at the step that succeeded.
                    assert!(r.queries[i] >= *q && r.queries[i] < q + step_queries(method));
                }
            }
        }
    }
}

#[test]
fn the_distance_loss_and_targeted_goals_work_too() {
    let clean = images(30, 2);
    let mut oracle = Linear::new(3);
    let s = PerImageConfig::new(PerImageMethod::SQUARE, linf())
        .loss(PerImageLoss::Distance)
        .max_queries(400)
        .check()
        .unwrap();
    let out = attack_images(&s, &mut oracle, &clean, &Goal::Untargeted).unwrap();
    // Saturated memberships make the distance flat for the most confident images (the margin
    // in log space is not): it breaks fewer, but it moves every image's memberships.
    assert!(
        out.report.success_rate() >= 0.15,
        "distance: {}",
        out.report.success_rate()
    );
    let before = oracle.memberships(&clean).unwrap();
    let after = oracle.memberships(&out.adversarial).unwrap();
    let moved = (0..clean.len())
        .filter(|&i| before.row(i).unwrap() != after.row(i).unwrap())
        .count();
    assert_eq!(moved, clean.len());
    for loss in [
        PerImageLoss::Margin,
        PerImageLoss::CleanMembership,
        PerImageLoss::Distance,
    ] {
        let s = PerImageConfig::new(PerImageMethod::SQUARE, linf())
            .loss(loss)
            .max_queries(400)
            .check()
            .unwrap();
        let goal = Goal::targeted_all(2, clean.len());
        let out = attack_images(&s, &mut oracle, &clean, &goal).unwrap();
        let r = &out.report;
        assert!(r.targeted);
        let hit = r.adversarial_labels.iter().filter(|&&l| l == 2).count();
        assert_eq!(hit, r.queries_to_success.iter().flatten().count());
        assert!(
            hit as f64 >= 0.6 * clean.len() as f64,
            "{}: {hit} reached the target",
            loss.name()
        );
        // Images already in the target cost their clean query only.
        for (i, &c) in r.clean_labels.iter().enumerate() {
            if c == 2 {
                assert_eq!(r.queries[i], 1);
            }
        }
    }
}

#[test]
fn same_seed_same_result_different_seed_different_result() {
    let clean = images(12, 3);
    for method in methods() {
        let s = settings(method, linf(), 120);
        let a = attack_images(&s, &mut Linear::new(4), &clean, &Goal::Untargeted).unwrap();
        let b = attack_images(&s, &mut Linear::new(4), &clean, &Goal::Untargeted).unwrap();
        assert_eq!(
            a.report.without_timings(),
            b.report.without_timings(),
            "{}",
            method.name()
        );
        assert_eq!(a.adversarial, b.adversarial);
        let other = PerImageConfig::new(method, linf())
            .max_queries(120)
            .seed(8)
            .check()
            .unwrap();
        let c = attack_images(&other, &mut Linear::new(4), &clean, &Goal::Untargeted).unwrap();
        assert_ne!(
            a.adversarial,
            c.adversarial,
            "{}: the seed is ignored",
            method.name()
        );
    }
}

#[test]
fn batching_changes_calls_but_not_results() {
    let clean = images(25, 4);
    for method in methods() {
        let small = PerImageConfig::new(method, linf())
            .max_queries(90)
            .max_images_per_call(7)
            .concurrent_images(3)
            .check()
            .unwrap();
        let large = PerImageConfig::new(method, linf())
            .max_queries(90)
            .max_images_per_call(1000)
            .concurrent_images(25)
            .check()
            .unwrap();
        let a = attack_images(&small, &mut Linear::new(5), &clean, &Goal::Untargeted).unwrap();
        let b = attack_images(&large, &mut Linear::new(5), &clean, &Goal::Untargeted).unwrap();
        assert_eq!(a.adversarial, b.adversarial, "{}", method.name());
        assert_eq!(a.report.queries, b.report.queries);
        assert_eq!(a.report.counts.images, b.report.counts.images);
        assert!(a.report.counts.batch_calls > b.report.counts.batch_calls);
    }
}

#[test]
fn a_snapshot_equals_a_run_with_that_budget() {
    let clean = images(20, 5);
    for method in methods() {
        let budgets = vec![1, 5, 22, 23, 60];
        let full = PerImageConfig::new(method, linf())
            .max_queries(150)
            .snapshots(budgets.clone())
            .seed(3)
            .check()
            .unwrap();
        let out = attack_images(&full, &mut Linear::new(6), &clean, &Goal::Untargeted).unwrap();
        assert_eq!(out.report.snapshots.len(), budgets.len());
        for (snap, &b) in out.report.snapshots.iter().zip(&budgets) {
            let short = PerImageConfig::new(method, linf())
                .max_queries(b)
                .seed(3)
                .check()
                .unwrap();
            let r = attack_images(&short, &mut Linear::new(6), &clean, &Goal::Untargeted)
                .unwrap()
                .report;
            let name = method.name();
            assert_eq!(snap.per_image_budget, b);
            assert_eq!(snap.labels, r.adversarial_labels, "{name} at {b}");
            assert_eq!(snap.images_queried, r.counts.images, "{name} at {b}");
            assert_eq!(
                snap.successes,
                r.queries_to_success.iter().flatten().count(),
                "{name} at {b}"
            );
        }
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let clean = images(4, 6);
    let s = settings(PerImageMethod::SQUARE, linf(), 20);
    let mut oracle = Linear::new(7);
    let short = Goal::Targeted(vec![0; 3]);
    assert!(matches!(
        attack_images(&s, &mut oracle, &clean, &short),
        Err(PerImageError::InvalidTargets(_))
    ));
    let out_of_range = Goal::targeted_all(K, 4);
    assert!(matches!(
        attack_images(&s, &mut oracle, &clean, &out_of_range),
        Err(PerImageError::InvalidTargets(_))
    ));
    let wide = ImageBatch::unit(vec![0.5; 2 * 49], [2, 1, 7, 7]).unwrap();
    assert!(matches!(
        attack_images(&s, &mut oracle, &wide, &Goal::Untargeted),
        Err(PerImageError::Core(CoreError::ImageShapeMismatch { .. }))
    ));
    let other_box = ThreatModel::linf(0.1)
        .value_box(ValueBox::new(-1.0, 1.0).unwrap())
        .check()
        .unwrap();
    let s2 = settings(PerImageMethod::SQUARE, other_box, 20);
    assert!(matches!(
        attack_images(&s2, &mut oracle, &clean, &Goal::Untargeted),
        Err(PerImageError::InvalidParameter { name: "threat", .. })
    ));
    // Settings that skipped `check` (e.g. deserialized) are validated by the attack too.
    let mut unchecked = settings(PerImageMethod::SQUARE, linf(), 20);
    unchecked.max_queries = 0;
    assert!(matches!(
        attack_images(&unchecked, &mut oracle, &clean, &Goal::Untargeted),
        Err(PerImageError::InvalidParameter {
            name: "max_queries",
            ..
        })
    ));
    for bad in [
        PerImageConfig::new(PerImageMethod::SQUARE, linf()).snapshots(vec![0]),
        PerImageConfig::new(PerImageMethod::SQUARE, linf())
            .max_queries(10)
            .snapshots(vec![11]),
        PerImageConfig::new(PerImageMethod::SQUARE, linf()).max_images_per_call(0),
        PerImageConfig::new(
            PerImageMethod::Nes {
                samples: 0,
                sigma: 0.01,
                step_ratio: 0.25,
                momentum: 0.9,
            },
            linf(),
        ),
        PerImageConfig::new(
            PerImageMethod::Square {
                p_init: 1.5,
                schedule_queries: 10,
            },
            linf(),
        ),
        PerImageConfig::new(
            PerImageMethod::SQUARE,
            ThreatModel::linf(0.0).check().unwrap(),
        ),
    ] {
        assert!(matches!(
            bad.check(),
            Err(PerImageError::InvalidParameter { .. })
        ));
    }
}

#[test]
fn an_outer_budget_interrupts_with_every_image_s_best_so_far() {
    let clean = images(10, 7);
    let s = PerImageConfig::new(PerImageMethod::SQUARE, linf())
        .max_queries(200)
        .max_images_per_call(10)
        .stop_on_success(false)
        .check()
        .unwrap();
    let mut oracle = Budgeted::new(Linear::new(8), QueryBudget::images(10 + 10 * 30));
    let err = attack_images(&s, &mut oracle, &clean, &Goal::Untargeted).unwrap_err();
    assert!(err.core().is_some_and(CoreError::is_budget_exhausted));
    let partial = err.into_partial().expect("partial results");
    assert_eq!(partial.report.queries, vec![31; 10]);
    assert!(linf().contains(&clean, &partial.adversarial).unwrap());
    let labels = Linear::new(8)
        .memberships(&partial.adversarial)
        .unwrap()
        .labels();
    assert_eq!(labels, partial.report.adversarial_labels);
}
