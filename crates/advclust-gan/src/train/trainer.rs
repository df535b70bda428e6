//! The epoch loop: batches, evaluation curves, convergence stopping, budgets, checkpoints.

use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::checkpoint::{Progress, Training, fingerprint};
use super::*;
use crate::report::StopReason;

/// Trains attacks: holds the configuration, the device and optional ground-truth labels (for
/// the per-epoch NMI curve).
#[derive(Debug, Clone)]
pub struct AttackTrainer<'a> {
    config: &'a CheckedAttackConfig,
    device: Device,
    labels: Option<&'a [usize]>,
    checkpoints: Option<CheckpointPolicy>,
    penalty: Option<&'a dyn GeneratorPenalty>,
    query_penalty: Option<&'a dyn QueryPenalty>,
}

/// Running sums of an epoch: the steps' stats added up (`max_linf` is the maximum).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct EpochAcc {
    steps: usize,
    sum: StepStats,
}

impl EpochAcc {
    fn add(&mut self, s: &StepStats) {
        self.steps += 1;
        let t = &mut self.sum;
        t.images += s.images;
        t.d_loss += s.d_loss;
        t.g_loss += s.g_loss;
        t.gan_loss += s.gan_loss;
        t.l_adv += s.l_adv;
        t.l_pert += s.l_pert;
        t.l_constraint += s.l_constraint;
        t.l_penalty += s.l_penalty;
        t.sum_l2 += s.sum_l2;
        t.max_linf = t.max_linf.max(s.max_linf);
        t.successes += s.successes;
    }
}

/// The generator copies still to take and those taken.
pub(crate) struct Snapshots {
    /// Requested call counts, descending (the next one last), not yet taken.
    pub(super) pending: Vec<u64>,
    pub(super) taken: Vec<GeneratorSnapshot>,
}

impl Snapshots {
    fn new(calls: &[u64]) -> Self {
        let mut pending = calls.to_vec();
        pending.sort_unstable();
        pending.dedup();
        pending.reverse();
        Snapshots {
            pending,
            taken: Vec::new(),
        }
    }

    fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes `generator` (the state at `counts`, after `steps` steps) for every requested
    /// count below `calls_after`: the calls the next step ended at.
    fn take_remaining(
        &mut self,
        calls_after: u64,
        counts: QueryCounts,
        steps: u64,
        generator: &Generator,
        device: &Device,
    ) {
        while let Some(&c) = self.pending.last() {
            if c >= calls_after {
                break;
            }
            self.pending.pop();
            self.taken
                .push(GeneratorSnapshot::new(c, counts, steps, generator, device));
        }
    }
}

/// Plateau detector of [`Stopping::Convergence`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Plateau {
    best: Option<f64>,
    stalled: usize,
}

impl Plateau {
    /// Feeds an epoch's mean generator loss; true when converged.
    fn update(&mut self, loss: f64, epoch: usize, rule: Stopping) -> bool {
        let Stopping::Convergence {
            min_epochs,
            tolerance,
            patience,
            ..
        } = rule
        else {
            return false;
        };
        match self.best {
            Some(best) if (best - loss) / best.abs().max(1e-12) > tolerance => {
                self.best = Some(loss);
                self.stalled = 0;
            }
            Some(best) => {
                self.stalled += 1;
                self.best = Some(best.min(loss));
            }
            None => self.best = Some(loss),
        }
        self.stalled >= patience && epoch >= min_epochs
    }
}

impl<'a> AttackTrainer<'a> {
    /// A trainer for `config` on `device` (training runs on its autodiff version).
    pub fn new(config: &'a CheckedAttackConfig, device: &Device) -> Self {
        AttackTrainer {
            config,
            device: device.clone(),
            labels: None,
            checkpoints: None,
            penalty: None,
            query_penalty: None,
        }
    }

    /// Checkpoints training (and, with [`CheckpointPolicy::resume`], continues from the last
    /// checkpoint): a run killed at any point and resumed with the same inputs ends with the
    /// same generator and report (wall times aside) as one never stopped.
    pub fn with_checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoints = Some(policy);
        self
    }

    /// Adds `penalty` to the generator loss (an adaptive attack against a known defense).
    pub fn with_penalty(mut self, penalty: &'a dyn GeneratorPenalty) -> Self {
        self.penalty = Some(penalty);
        self
    }

    /// Adds `penalty`, which the attacker can only query, to the generator loss: its gradient is
    /// estimated from the same perturbed copies as `L_adv` (query-only gradient sources only;
    /// a backprop run is an [`AttackError::InvalidConfig`]).
    pub fn with_query_penalty(mut self, penalty: &'a dyn QueryPenalty) -> Self {
        self.query_penalty = Some(penalty);
        self
    }

    /// Ground-truth labels of the training images, for the per-epoch NMI curve (no queries).
    pub fn with_labels(mut self, labels: &'a [usize]) -> Self {
        self.labels = Some(labels);
        self
    }

    /// Trains against a differentiable victim. With [`GradientSource::Backprop`] the attack
    /// gradient is backpropagated through the frozen model; with a query-only source the model
    /// is only queried (through a [`ModelOracle`]), exactly as [`Self::fit_oracle`] would.
    pub fn fit_model<M: DifferentiableClusterModel>(
        &self,
        model: &M,
        train: &ImageBatch,
    ) -> Result<TrainedAttack> {
        train.expect_image_shape(model.input_shape())?;
        if self.config.gradient_source.is_query_only() {
            let mut oracle = ModelOracle::new(model, &self.device);
            return self.fit_oracle(&mut oracle, train);
        }
        if self.query_penalty.is_some() {
            return Err(AttackError::invalid(
                "gradient_source",
                "a query-only penalty is estimated from the queries of a query-only source: \
                 choose Nes or Spsa (or give the penalty as a differentiable GeneratorPenalty)",
            ));
        }
        let victim = FrozenVictim::new(model, &self.device);
        let provider = BackpropProvider {
            victim: &victim,
            ledger: QueryLedger::new(self.config.budget),
            k: model.num_clusters(),
            distance: self.config.distance,
            loss: self.config.loss,
            target: self.config.target,
        };
        self.run(provider, train)
    }

    /// Trains from oracle queries only (the configuration's source must be query-only).
    pub fn fit_oracle(
        &self,
        oracle: &mut dyn ClusterOracle,
        train: &ImageBatch,
    ) -> Result<TrainedAttack> {
        if !self.config.gradient_source.is_query_only() {
            return Err(AttackError::invalid(
                "gradient_source",
                "Backprop needs a differentiable model (use fit_model / train_backprop); \
                 choose Nes or Spsa for an oracle",
            ));
        }
        if let Some(shape) = oracle.input_shape() {
            train.expect_image_shape(shape)?;
        }
        let k = oracle.num_clusters();
        let provider = QueryProvider {
            oracle: Budgeted::new(oracle, self.config.budget),
            train,
            clean: vec![0.0; train.len() * k],
            known: vec![false; train.len()],
            k,
            source: self.config.gradient_source,
            distance: self.config.distance,
            loss: self.config.loss,
            target: self.config.target,
            max_images_per_call: self.config.max_images_per_call,
            tile: self.config.direction_tile,
            momentum: self.config.estimate_momentum,
            prior: Vec::new(),
            rng: SeededRng::seed_from_u64(derive_seed(self.config.seed, STREAM_ESTIMATOR)),
            penalty: self
                .query_penalty
                .map(|p| (p, QueryLedger::new(QueryBudget::UNLIMITED))),
        };
        self.run(provider, train)
    }

    fn run<P: AdvProvider>(&self, mut provider: P, train: &ImageBatch) -> Result<TrainedAttack> {
        let cfg = self.config;
        let shape = train.image_shape();
        check_image_shape(shape)?;
        let k = provider.num_clusters();
        check_clusters(k, cfg.target)?;
        if let Some(labels) = self.labels
            && labels.len() != train.len()
        {
            return Err(CoreError::SampleCountMismatch {
                expected: train.len(),
                actual: labels.len(),
            }
            .into());
        }
        let threat = cfg.threat_model(train.value_box())?;
        let mut gan = AttackGan::new(cfg, shape, train.value_box(), &self.device)?;
        let mut report = AttackReport {
            gradient_source: cfg.gradient_source,
            threat_model: threat,
            bound: cfg.bound_description(),
            image_shape: shape,
            num_clusters: k,
            train_images: train.len(),
            epochs: 0,
            steps: 0,
            training_queries: QueryCounts::default(),
            penalty_queries: None,
            converged: None,
            stopped: StopReason::default(),
            interrupted: None,
            training_wall_time_s: 0.0,
            curves: Vec::new(),
            clean_scores: None,
            adversarial_scores: None,
            changed_fraction: None,
            delta_norms: None,
            evaluated_images: 0,
            evaluation_queries: QueryCounts::default(),
            evaluation_wall_time_s: 0.0,
        };
        let mut snapshots = Snapshots::new(&cfg.snapshot_calls);
        let mut progress = Progress::new(train.len(), cfg.seed);
        let mut fingerprint = fingerprint(cfg.settings(), train, self.labels, k)?;
        if let Some(p) = self.penalty {
            fingerprint["penalty"] = serde_json::json!({"name": p.name(), "weight": p.weight()});
        }
        if let Some(p) = self.query_penalty {
            fingerprint["query_penalty"] =
                serde_json::json!({"name": p.name(), "weight": p.weight()});
        }
        let mut training = Training {
            gan: &mut gan,
            provider: &mut provider,
            report: &mut report,
            snapshots: &mut snapshots,
            progress: &mut progress,
        };
        if let Some(policy) = self.checkpoints.as_ref().filter(|p| p.resume) {
            training.restore(&policy.dir, &fingerprint, &self.device)?;
        }
        // Wall time goes on from what the checkpoint's run had spent.
        let started = Instant::now()
            .checked_sub(std::time::Duration::from_secs_f64(
                training.report.training_wall_time_s.max(0.0),
            ))
            .unwrap_or_else(Instant::now);
        let result = self.epochs(&mut training, train, started, &fingerprint);
        // The calls not reached: the final generator is what those budgets return.
        snapshots.take_remaining(
            u64::MAX,
            provider.counts(),
            report.steps,
            gan.generator(),
            &self.device,
        );
        report.training_queries = provider.counts();
        report.penalty_queries = provider.penalty_counts();
        report.training_wall_time_s = started.elapsed().as_secs_f64();
        let failure = result.err();
        if let Some(e) = &failure {
            report.interrupted = Some(e.to_string());
        }
        let attack = TrainedAttack::new(
            gan.into_generator(),
            cfg.clone(),
            report,
            shape,
            threat,
            &self.device,
        )
        .with_snapshots(snapshots.taken);
        let save_result = cfg
            .output_dir
            .as_ref()
            .map(|dir| attack.save(dir).map(|()| dir.clone()));
        match (failure, save_result) {
            (None, None | Some(Ok(_))) => Ok(attack),
            (None, Some(Err(save_err))) => Err(AttackError::Interrupted {
                source: Box::new(save_err),
                partial: Box::new(attack),
                saved_to: None,
            }),
            (Some(e), saved) => Err(AttackError::Interrupted {
                source: Box::new(e),
                partial: Box::new(attack),
                saved_to: saved.and_then(|r| r.ok()),
            }),
        }
    }

    fn epochs(
        &self,
        t: &mut Training<'_>,
        train: &ImageBatch,
        started: Instant,
        fingerprint: &serde_json::Value,
    ) -> Result<()> {
        let cfg = self.config;
        let n = train.len();
        let bs = cfg.batch_size.min(n);
        let steps_per_epoch = n.div_ceil(bs);
        let max_epochs = cfg.stopping.max_epochs();
        let bar = progress_bar(
            (max_epochs * steps_per_epoch) as u64,
            cfg.progress,
            "attack",
        );
        bar.set_position(t.report.steps);
        if t.progress.begun {
            t.gan.continue_epoch(t.progress.epoch);
        }
        while !t.progress.finished {
            let epoch = t.progress.epoch;
            let p = &mut *t.progress;
            if !p.begun {
                t.gan.begin_epoch(epoch);
                if cfg.shuffle {
                    p.order.shuffle(&mut p.shuffle_rng);
                }
                p.begun = true;
                p.next = 0;
                p.acc = EpochAcc::default();
            }
            let mut stop = None;
            while t.progress.next < steps_per_epoch {
                let p = &*t.progress;
                let indices = p.order[p.next * bs..((p.next + 1) * bs).min(n)].to_vec();
                let calls = t.provider.step_calls(&indices);
                if t.provider.ledger().calls_that_fit(calls.iter().copied()) < calls.len() {
                    stop = Some(StopReason::Budget {
                        next_step_calls: calls.len() as u64,
                        next_step_images: calls.iter().map(|&c| c as u64).sum(),
                    });
                    break;
                }
                let ctx = StepCtx {
                    epoch,
                    step: t.report.steps + 1,
                };
                // A copy that owns its BatchNorm running statistics (a clone would share them
                // with the live generator, and see the step's forward pass update them).
                let before = t
                    .snapshots
                    .pending()
                    .then(|| (t.gan.generator().valid(), t.provider.counts()));
                let batch = train.select(&indices)?;
                let (stats, clusters) =
                    match t.gan.step(&batch, &indices, t.provider, self.penalty, ctx) {
                        Ok(done) => done,
                        // The oracle's own quota: the step made no update; the run ends here.
                        Err(e) if e.is_budget_exhausted() => {
                            stop = Some(StopReason::OracleBudget {
                                message: e.to_string(),
                            });
                            break;
                        }
                        Err(e) => return Err(e),
                    };
                if let Some((generator, counts)) = before {
                    let calls = t.provider.counts().batch_calls;
                    t.snapshots.take_remaining(
                        calls,
                        counts,
                        t.report.steps,
                        &generator,
                        &self.device,
                    );
                }
                t.report.steps += 1;
                let p = &mut *t.progress;
                p.acc.add(&stats);
                for (&i, c) in indices.iter().zip(clusters) {
                    p.adv_clusters[i] = c;
                }
                p.next += 1;
                bar.inc(1);
                if let Some(policy) = &self.checkpoints
                    && t.report.steps.is_multiple_of(policy.every_steps)
                {
                    t.report.training_wall_time_s = started.elapsed().as_secs_f64();
                    t.save(&policy.dir, fingerprint)?;
                }
            }
            let partial = stop.is_some();
            if !partial || t.progress.acc.steps > 0 {
                let stats = self.epoch_stats(t, epoch, partial, started)?;
                bar.set_message(format!(
                    "epoch {epoch}: D {:.4} G {:.4} L_adv {:.4} success {:.3}",
                    stats.d_loss, stats.g_loss, stats.l_adv, stats.success_rate
                ));
                let g_loss = stats.g_loss;
                t.report.curves.push(stats);
                if !partial {
                    t.report.epochs = epoch;
                    if t.progress.plateau.update(g_loss, epoch, cfg.stopping) {
                        t.report.converged = Some(ConvergenceInfo {
                            epoch,
                            steps: t.report.steps,
                            queries: t.provider.counts(),
                        });
                        stop = Some(StopReason::Converged);
                    } else if epoch == max_epochs {
                        stop = Some(StopReason::Epochs);
                    }
                }
            }
            let p = &mut *t.progress;
            p.epoch += 1;
            p.begun = false;
            if let Some(reason) = stop {
                t.report.stopped = reason;
                p.finished = true;
            }
        }
        bar.finish_and_clear();
        if let Some(policy) = &self.checkpoints {
            t.report.training_wall_time_s = started.elapsed().as_secs_f64();
            t.save(&policy.dir, fingerprint)?;
        }
        Ok(())
    }

    /// The means of the epoch's steps so far, and the state at its end.
    fn epoch_stats(
        &self,
        t: &Training<'_>,
        epoch: usize,
        partial: bool,
        started: Instant,
    ) -> Result<EpochStats> {
        let acc = &t.progress.acc;
        let steps = acc.steps.max(1) as f64;
        let sums = &acc.sum;
        let (lr_g, lr_d) = t.gan.learning_rates();
        let scores = match self.labels {
            Some(labels) => Some(advclust_metrics::clustering_scores(
                labels,
                &t.progress.adv_clusters,
            )?),
            None => None,
        };
        Ok(EpochStats {
            epoch,
            lr_generator: lr_g,
            lr_discriminator: lr_d,
            d_loss: sums.d_loss / steps,
            g_loss: sums.g_loss / steps,
            gan_loss: sums.gan_loss / steps,
            l_adv: sums.l_adv / steps,
            l_pert: sums.l_pert / steps,
            l_constraint: sums.l_constraint / steps,
            l_penalty: sums.l_penalty / steps,
            mean_l2: sums.sum_l2 / sums.images.max(1) as f64,
            max_linf: sums.max_linf,
            success_rate: sums.successes as f64 / sums.images.max(1) as f64,
            scores,
            queries: t.provider.counts(),
            steps: t.report.steps,
            elapsed_s: started.elapsed().as_secs_f64(),
            partial,
        })
    }
}

/// Trains an attack against a differentiable victim (see [`AttackTrainer::fit_model`]).
pub fn train_backprop<M: DifferentiableClusterModel>(
    config: &CheckedAttackConfig,
    model: &M,
    train: &ImageBatch,
    device: &Device,
) -> Result<TrainedAttack> {
    AttackTrainer::new(config, device).fit_model(model, train)
}

/// Trains an attack from oracle queries only (see [`AttackTrainer::fit_oracle`]).
pub fn train_query_only(
    config: &CheckedAttackConfig,
    oracle: &mut dyn ClusterOracle,
    train: &ImageBatch,
    device: &Device,
) -> Result<TrainedAttack> {
    AttackTrainer::new(config, device).fit_oracle(oracle, train)
}
