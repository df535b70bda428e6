//! Where `L_adv` comes from: backpropagation through a differentiable victim, or gradient
//! estimates from queries only.

use super::checkpoint::ProviderState;
use super::*;
use crate::objective::{AdvLoss, log_margin_loss, soft_mi_loss};

/// Where one step's `L_adv` term comes from.
pub(crate) struct AdvTerm {
    /// Scalar whose gradient with respect to `x_adv` is `dL_adv / dx_adv`.
    pub(super) term: Tensor<1>,
    /// Value of `L_adv` (exact for backprop, estimated for query-only sources).
    pub(super) l_adv: f64,
    /// Adversarial cluster of each image of the batch.
    pub(super) adv_clusters: Vec<ClusterId>,
    /// Clean cluster of each image (untargeted attacks).
    pub(super) clean_clusters: Option<Vec<ClusterId>>,
    /// The weighted [`QueryPenalty`] term, when the run has one.
    pub(super) penalty: Option<PenaltyTerm>,
}

/// A query-only penalty's part of a step.
pub(crate) struct PenaltyTerm {
    /// Scalar whose gradient w.r.t. `x_adv` is the weighted penalty's estimated gradient.
    pub(super) term: Tensor<1>,
    /// The weighted penalty (estimated).
    pub(super) value: f64,
}

/// Position of a step, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepCtx {
    pub(super) epoch: usize,
    pub(super) step: u64,
}

impl StepCtx {
    pub(super) fn non_finite(self, what: &'static str) -> AttackError {
        AttackError::NonFinite {
            what,
            epoch: self.epoch,
            step: self.step,
        }
    }
}

/// Supplies the `L_adv` term of a step and counts victim queries.
pub(crate) trait AdvProvider {
    fn num_clusters(&self) -> usize;
    fn counts(&self) -> QueryCounts;
    /// Queries sent to a [`QueryPenalty`] (`None` without one).
    fn penalty_counts(&self) -> Option<QueryCounts> {
        None
    }
    /// The ledger the queries are charged to.
    fn ledger(&self) -> &QueryLedger;
    /// Images of each victim call the step on `indices` would make, in order (planned
    /// against the budget before the step starts).
    fn step_calls(&self, indices: &[usize]) -> Vec<usize>;
    /// What it carries between steps (for a checkpoint).
    fn state(&self) -> ProviderState;
    /// Continues from a checkpoint's state; an error message when it does not fit.
    fn restore(&mut self, state: ProviderState) -> std::result::Result<(), String>;
    fn adv_term(
        &mut self,
        indices: &[usize],
        x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm>;
}

/// Backprop through a frozen victim; every victim evaluation is charged to a ledger first.
pub(super) struct BackpropProvider<'a, M> {
    pub(super) victim: &'a FrozenVictim<M>,
    pub(super) ledger: QueryLedger,
    pub(super) k: usize,
    pub(super) distance: AdvDistance,
    pub(super) loss: AdvLoss,
    pub(super) target: Option<ClusterId>,
}

pub(super) fn check_output(t: &Tensor<2>, n: usize, k: usize) -> Result<()> {
    let dims = t.dims();
    if dims != [n, k] {
        return Err(AttackError::VictimOutputShape {
            expected: [n, k],
            actual: dims,
        });
    }
    Ok(())
}

/// A victim needs at least one cluster, and a target must be one of them.
pub(super) fn check_clusters(k: usize, target: Option<ClusterId>) -> Result<()> {
    if k == 0 {
        return Err(CoreError::EmptyDimension("number of clusters").into());
    }
    match target {
        Some(t) if t >= k => Err(AttackError::TargetOutOfRange { target: t, k }),
        _ => Ok(()),
    }
}

/// The argmax clusters of victim output `out` (`n x k`), read back to the host; non-finite
/// values are an error.
pub(super) fn host_clusters(
    out: &Tensor<2>,
    k: usize,
    ctx: StepCtx,
    what: &'static str,
) -> Result<Vec<ClusterId>> {
    let host = tensor_to_vec(out.clone().detach().into_data())?;
    if host.iter().any(|v| !v.is_finite()) {
        return Err(ctx.non_finite(what));
    }
    Ok(argmax_rows(&host, k))
}

pub(super) fn one_hot(n: usize, k: usize, t: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0.0f32; n * k];
    for row in v.chunks_mut(k) {
        row[t] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [n, k]), device)
}

impl<M: DifferentiableClusterModel> AdvProvider for BackpropProvider<'_, M> {
    fn num_clusters(&self) -> usize {
        self.k
    }

    fn counts(&self) -> QueryCounts {
        self.ledger.counts()
    }

    fn ledger(&self) -> &QueryLedger {
        &self.ledger
    }

    fn step_calls(&self, indices: &[usize]) -> Vec<usize> {
        let n = indices.len();
        match self.target {
            None => vec![n, n],
            Some(_) => vec![n],
        }
    }

    fn state(&self) -> ProviderState {
        ProviderState {
            counts: self.ledger.counts(),
            ..ProviderState::default()
        }
    }

    fn restore(&mut self, state: ProviderState) -> std::result::Result<(), String> {
        if !(state.known.is_empty() && state.clean.is_empty() && state.prior.is_empty()) {
            return Err("it holds a query-only run's state; this run backpropagates".into());
        }
        self.ledger.resume_from(state.counts);
        Ok(())
    }

    fn adv_term(
        &mut self,
        _indices: &[usize],
        x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm> {
        let (n, k) = (x_adv_host.len(), self.k);
        let device = x_adv.device();
        let model = self.victim.model();
        // Clusters always come from the memberships; L_adv compares phi (the attack output,
        // which may be wider than k, e.g. every head's logits).
        let (reference, clean_clusters) = match self.target {
            None => {
                self.ledger.charge(n)?;
                let (m, phi) = model.memberships_and_attack_output(x.clone());
                check_output(&m, n, k)?;
                check_output(&phi, n, phi.dims()[1])?;
                let clusters = host_clusters(&m, k, ctx, "clean victim output")?;
                (phi.detach(), Some(clusters))
            }
            Some(t) => (one_hot(n, k, t, &device), None),
        };
        self.ledger.charge(n)?;
        let (m, out) = model.memberships_and_attack_output(x_adv.clone());
        check_output(&m, n, k)?;
        let adv_clusters = host_clusters(&m, k, ctx, "adversarial victim output")?;
        let term = match (self.target, self.loss, &clean_clusters) {
            (None, AdvLoss::SoftMutualInformation, Some(clean)) => soft_mi_loss(m, clean),
            (None, AdvLoss::LogMargin, Some(clean)) => log_margin_loss(m, clean),
            (None, _, _) => {
                check_output(&out, n, reference.dims()[1])?;
                distance_tensor(out, reference, self.distance)
            }
            (Some(_), _, _) => distance_tensor(m, reference, self.distance).mul_scalar(-1.0),
        };
        let l_adv = scalar(&term);
        Ok(AdvTerm {
            term,
            l_adv,
            adv_clusters,
            clean_clusters,
            penalty: None,
        })
    }
}

/// Zeroth-order estimates from oracle queries; clean memberships are queried once per training
/// image and cached.
pub(super) struct QueryProvider<'a> {
    pub(super) oracle: Budgeted<&'a mut dyn ClusterOracle>,
    pub(super) train: &'a ImageBatch,
    pub(super) clean: Vec<f32>,
    pub(super) known: Vec<bool>,
    pub(super) k: usize,
    pub(super) source: GradientSource,
    pub(super) distance: AdvDistance,
    pub(super) loss: AdvLoss,
    pub(super) target: Option<ClusterId>,
    pub(super) max_images_per_call: Option<usize>,
    pub(super) tile: usize,
    /// Weight of each training image's previous estimate (0: none).
    pub(super) momentum: f32,
    /// The previous estimate of every training image (`[n_train * d]`, zeros until visited);
    /// allocated on first use, only with a momentum.
    pub(super) prior: Vec<f32>,
    pub(super) rng: SeededRng,
    /// A penalty the attacker can only query, and the queries sent to it.
    pub(super) penalty: Option<(&'a dyn QueryPenalty, QueryLedger)>,
}

impl QueryProvider<'_> {
    fn estimator(&self) -> QueryEstimator {
        QueryEstimator {
            source: self.source,
            tile: self.tile,
            max_images_per_call: self.max_images_per_call,
        }
    }

    pub(super) fn ensure_clean(&mut self, indices: &[usize]) -> Result<()> {
        let missing: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| !self.known[i])
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let chunk = self.max_images_per_call.unwrap_or(missing.len());
        let k = self.k;
        let parts: Vec<&[usize]> = missing.chunks(chunk).collect();
        let calls = parts
            .iter()
            .map(|part| self.train.select(part))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Budgeted checks each answer has one row of k per image.
        let answers = answer_all(&mut self.oracle, &calls)?;
        for (m, part) in answers.iter().zip(parts) {
            for (values, &i) in m.data().chunks(k).zip(part) {
                self.clean[i * k..(i + 1) * k].copy_from_slice(values);
                self.known[i] = true;
            }
        }
        Ok(())
    }
}

impl AdvProvider for QueryProvider<'_> {
    fn num_clusters(&self) -> usize {
        self.k
    }

    fn counts(&self) -> QueryCounts {
        self.oracle.counts()
    }

    fn penalty_counts(&self) -> Option<QueryCounts> {
        self.penalty.as_ref().map(|(_, ledger)| ledger.counts())
    }

    fn ledger(&self) -> &QueryLedger {
        self.oracle.ledger()
    }

    fn step_calls(&self, indices: &[usize]) -> Vec<usize> {
        let mut sizes = match self.target {
            None => {
                let missing = indices.iter().filter(|&&i| !self.known[i]).count();
                crate::estimate::chunk_sizes(missing, self.max_images_per_call)
            }
            Some(_) => Vec::new(),
        };
        sizes.extend(self.estimator().call_sizes(indices.len()));
        sizes
    }

    fn state(&self) -> ProviderState {
        ProviderState {
            counts: self.oracle.counts(),
            known: self.known.clone(),
            rng: Some(advclust_core::RngState::of(&self.rng)),
            clean: self.clean.clone(),
            prior: self.prior.clone(),
            penalty_counts: self.penalty_counts(),
        }
    }

    fn restore(&mut self, state: ProviderState) -> std::result::Result<(), String> {
        let (n, k, d) = (self.train.len(), self.k, self.train.image_len());
        let Some(rng) = state.rng else {
            return Err("it holds a backprop run's state; this run is query-only".into());
        };
        if state.known.len() != n
            || state.clean.len() != n * k
            || !(state.prior.is_empty() || state.prior.len() == n * d)
        {
            return Err(format!(
                "its query caches do not fit {n} training images of {d} values and {k} clusters"
            ));
        }
        if let Some((_, ledger)) = self.penalty.as_mut() {
            ledger.resume_from(state.penalty_counts.unwrap_or_default());
        }
        self.oracle.resume_from(state.counts);
        self.known = state.known;
        self.clean = state.clean;
        self.prior = state.prior;
        self.rng = rng.restore();
        Ok(())
    }

    fn adv_term(
        &mut self,
        indices: &[usize],
        _x: &Tensor<4>,
        x_adv: &Tensor<4>,
        x_adv_host: &ImageBatch,
        ctx: StepCtx,
    ) -> Result<AdvTerm> {
        let k = self.k;
        let (rows, clean_clusters) = match self.target {
            None => {
                self.ensure_clean(indices)?;
                let mut rows = Vec::with_capacity(indices.len() * k);
                for &i in indices {
                    rows.extend_from_slice(&self.clean[i * k..(i + 1) * k]);
                }
                let clusters = argmax_rows(&rows, k);
                (rows, Some(clusters))
            }
            Some(_) => (Vec::new(), None),
        };
        let objective = match (self.target, self.loss, &clean_clusters) {
            (None, AdvLoss::SoftMutualInformation, Some(clean)) => AdvObjective::SoftMi(clean),
            (None, AdvLoss::LogMargin, Some(clean)) => AdvObjective::LogMargin(clean),
            (None, _, _) => AdvObjective::Away(&rows),
            (Some(t), _, _) => AdvObjective::Toward(t),
        };
        let estimator = self.estimator();
        let penalty = self.penalty.as_ref().map(|(p, _)| *p);
        let (est, penalty_est) = estimate_with_penalty(
            &mut self.oracle,
            penalty,
            x_adv_host,
            objective,
            self.distance,
            &estimator,
            &mut self.rng,
        )?;
        if let Some((_, ledger)) = self.penalty.as_mut() {
            for size in estimator.call_sizes(x_adv_host.len()) {
                ledger.charge(size)?;
            }
        }
        if est.gradient.iter().any(|v| !v.is_finite()) {
            return Err(ctx.non_finite("estimated gradient"));
        }
        let l_adv = est.l_adv();
        let adv_clusters = est.clusters();
        let mut gradient = est.gradient;
        if self.momentum > 0.0 {
            let d = x_adv_host.image_len();
            if self.prior.is_empty() {
                self.prior = vec![0.0; self.train.len() * d];
            }
            let m = self.momentum;
            for (row, &i) in gradient.chunks_mut(d).zip(indices) {
                let prior = &mut self.prior[i * d..(i + 1) * d];
                for (g, p) in row.iter_mut().zip(prior.iter_mut()) {
                    *g = m * *p + (1.0 - m) * *g;
                    *p = *g;
                }
            }
        }
        let g = Tensor::<4>::from_data(
            TensorData::new(gradient, x_adv_host.dims()),
            &x_adv.device(),
        );
        // d/dx_adv of sum(x_adv * g) is exactly g.
        let term = (x_adv.clone() * g).sum();
        let penalty = match (penalty, penalty_est) {
            (Some(p), Some(e)) => {
                if e.gradient.iter().any(|v| !v.is_finite()) {
                    return Err(ctx.non_finite("estimated penalty gradient"));
                }
                let w = p.weight();
                let g = Tensor::<4>::from_data(
                    TensorData::new(e.gradient, x_adv_host.dims()),
                    &x_adv.device(),
                );
                Some(PenaltyTerm {
                    term: (x_adv.clone() * g).sum().mul_scalar(w),
                    value: f64::from(w) * e.value,
                })
            }
            _ => None,
        };
        Ok(AdvTerm {
            term,
            l_adv,
            adv_clusters,
            clean_clusters,
            penalty,
        })
    }
}
