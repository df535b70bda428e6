//! SCAN training: the SCAN stage (neighbour consistency + entropy, every head), head selection
//! by the unsupervised loss, and the self-labelling stage, each a step on the shared runner.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, argmax_rows, tensor_to_vec};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::pretext::{Neighbors, Pretext};
use crate::runner::{
    Evaluation, RunConfig, RunReport, StepLoss, TrainingStep, gather_images, run_training,
};
use crate::scan::ScanModel;
use crate::scan::heads::{
    check_heads, finetune_heads, heads_evaluation, heads_from_pretext, select_head,
};
use crate::victim::TrainingSummary;

/// The self-labelling stage: cross-entropy on strongly augmented images against the model's
/// own confident predictions on the un-augmented ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfLabelConfig {
    /// Softmax confidence above which a prediction becomes a target (0.99 in SCAN).
    pub threshold: f64,
    /// Strong augmentation of the inputs.
    pub augment: AugmentConfig,
    /// Epochs, batch, optimiser (SCAN: Adam 1e-4, weight decay 1e-4).
    pub run: RunConfig,
}

/// Everything a SCAN run needs besides the data and the pretext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanTrainConfig {
    /// Name of the training set.
    pub dataset: String,
    /// Clusters `k`.
    pub num_clusters: usize,
    /// Cluster heads trained side by side (1 in SCAN's CIFAR configs).
    pub num_heads: usize,
    /// Weight of the entropy of the mean prediction (5.0 in SCAN).
    pub entropy_weight: f64,
    /// Neighbours per image used by head selection (5 in SCAN's validation).
    pub selection_neighbors: usize,
    /// Augmentation of anchors and neighbours.
    pub augment: AugmentConfig,
    /// The SCAN stage's run (SCAN: Adam 1e-4, weight decay 1e-4, batch 128).
    pub run: RunConfig,
    /// The self-labelling stage, if any.
    pub selflabel: Option<SelfLabelConfig>,
}

impl ScanTrainConfig {
    /// SCAN's settings where they fit a CPU: one head, entropy weight 5, batch 128, Adam 1e-4
    /// with weight decay 1e-4, 20 epochs, then 10 epochs of self-labelling at 0.99 in batches
    /// of 256.
    pub fn new(num_clusters: usize, channels: usize) -> Self {
        let augment = AugmentConfig::for_channels(channels);
        let mut run = RunConfig::new(20, 128, 1e-4);
        run.weight_decay = 1e-4;
        let mut sl_run = RunConfig::new(10, 256, 1e-4);
        sl_run.weight_decay = 1e-4;
        ScanTrainConfig {
            dataset: "unnamed".into(),
            num_clusters,
            num_heads: 1,
            entropy_weight: 5.0,
            selection_neighbors: 5,
            augment: augment.clone(),
            run,
            selflabel: Some(SelfLabelConfig {
                threshold: 0.99,
                augment,
                run: sl_run,
            }),
        }
    }

    fn validate(&self, n: usize) -> Result<()> {
        check_heads(
            self.num_clusters,
            n,
            self.num_heads,
            self.entropy_weight,
            self.selection_neighbors,
        )?;
        self.augment.validate()?;
        self.run.validate()?;
        if let Some(sl) = &self.selflabel {
            if !(sl.threshold.is_finite() && sl.threshold > 0.0 && sl.threshold < 1.0) {
                return Err(ModelError::invalid(
                    "selflabel threshold",
                    "must be in (0, 1)",
                ));
            }
            sl.augment.validate()?;
            sl.run.validate()?;
        }
        Ok(())
    }
}

/// The result of a SCAN run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanTrainReport {
    /// The configuration used.
    pub config: ScanTrainConfig,
    /// The SCAN stage.
    pub scan: RunReport,
    /// Unsupervised selection loss (consistency - entropy) of each head after the SCAN stage.
    pub head_losses: Vec<f64>,
    /// The head selected (lowest loss).
    pub selected_head: usize,
    /// Fraction of images whose selected-head confidence exceeds the self-label threshold
    /// after the SCAN stage.
    pub confident_fraction: Option<f64>,
    /// The self-labelling stage, if run.
    pub selflabel: Option<RunReport>,
    /// Scores of the SCAN stage's selected head, when labels were given.
    pub scan_scores: Option<ClusteringScores>,
    /// Scores of the final model, when labels were given.
    pub final_scores: Option<ClusteringScores>,
    /// Images per predicted cluster of the final model.
    pub final_cluster_sizes: Vec<usize>,
}

/// The SCAN loss of one head: `-mean_i log <P_i, Q_i> - w H(mean_i P_i)` for anchor logits
/// `[B, k]` and neighbour logits `[B, k]`; returns `(total, consistency, entropy)`.
pub fn scan_loss(
    anchor_logits: Tensor<2>,
    neighbor_logits: Tensor<2>,
    entropy_weight: f64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let p = softmax(anchor_logits, 1);
    let q = softmax(neighbor_logits, 1);
    // BCE(<P, Q>, 1) as PyTorch computes it, with log clamped at -100.
    let consistency = (p.clone() * q)
        .sum_dim(1)
        .clamp_min(1e-30)
        .log()
        .clamp_min(-100.0)
        .mean()
        .neg();
    let pbar = p.mean_dim(0).clamp_min(1e-8);
    let entropy = (pbar.clone() * pbar.log()).sum().neg();
    let total = consistency.clone() - entropy.clone().mul_scalar(entropy_weight);
    (total, consistency, entropy)
}

struct ScanStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    neighbors: &'a Neighbors,
    config: &'a ScanTrainConfig,
}

impl TrainingStep<ScanModel> for ScanStep<'_> {
    fn loss(
        &mut self,
        model: &ScanModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let b = batch.len();
        let len = c * h * w;
        let partners = self.neighbors.random_partners(batch, rng);
        let dims = [b, c, h, w];
        let mut views = augment_batch(
            &gather_images(self.images.data(), len, batch),
            dims,
            &self.config.augment,
            rng,
        )?;
        views.extend(augment_batch(
            &gather_images(self.images.data(), len, &partners),
            dims,
            &self.config.augment,
            rng,
        )?);
        let x = Tensor::<4>::from_data(TensorData::new(views, [2 * b, c, h, w]), device);
        let mut total: Option<Tensor<1>> = None;
        let mut cons: Option<Tensor<1>> = None;
        let mut ent: Option<Tensor<1>> = None;
        for logits in model.head_logits(x) {
            let (t, cn, en) = scan_loss(
                logits.clone().narrow(0, 0, b),
                logits.narrow(0, b, b),
                self.config.entropy_weight,
            );
            total = Some(total.map_or(t.clone(), |s| s + t));
            cons = Some(cons.map_or(cn.clone(), |s| s + cn));
            ent = Some(ent.map_or(en.clone(), |s| s + en));
        }
        let (Some(total), Some(cons), Some(ent)) = (total, cons, ent) else {
            return Err(ModelError::invalid("num_heads", "the model has no head"));
        };
        Ok(StepLoss {
            total,
            parts: vec![("consistency", cons), ("entropy", ent)],
        })
    }

    fn evaluate(&mut self, model: &ScanModel, device: &Device) -> Result<Option<Evaluation>> {
        heads_evaluation(
            model,
            self.images,
            self.neighbors,
            self.config.selection_neighbors,
            self.labels,
            device,
        )
        .map(Some)
    }
}

struct SelfLabelStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    config: &'a SelfLabelConfig,
    k: usize,
}

impl TrainingStep<ScanModel> for SelfLabelStep<'_> {
    fn loss(
        &mut self,
        model: &ScanModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let b = batch.len();
        let host = gather_images(self.images.data(), c * h * w, batch);
        let strong = augment_batch(&host, [b, c, h, w], &self.config.augment, rng)?;
        // Two passes, as SCAN: targets from the un-augmented images (no gradient), the loss on
        // the strongly augmented ones; BatchNorm sees each batch on its own.
        let weak_x = Tensor::<4>::from_data(TensorData::new(host, [b, c, h, w]), device);
        let weak = softmax(model.logits(weak_x).detach(), 1);
        let weak = tensor_to_vec(weak.into_data())?;
        let strong_x = Tensor::<4>::from_data(TensorData::new(strong, [b, c, h, w]), device);
        let logits = model.logits(strong_x);
        let targets = argmax_rows(&weak, self.k);
        // Class-balanced weights over the confident targets (SCAN's ConfidenceBasedCE).
        let mut counts = vec![0usize; self.k];
        let mut mask = vec![0.0f32; b];
        for (i, &t) in targets.iter().enumerate() {
            if weak[i * self.k + t] as f64 > self.config.threshold {
                mask[i] = 1.0;
                counts[t] += 1;
            }
        }
        let masked: usize = counts.iter().sum();
        let mut weights = vec![0.0f32; b * self.k];
        let mut denom = 0.0f32;
        for (i, &t) in targets.iter().enumerate() {
            if mask[i] > 0.0 {
                let wc = masked as f32 / counts[t] as f32;
                weights[i * self.k + t] = wc;
                denom += wc;
            }
        }
        let strong_log_p = log_softmax(logits, 1);
        let wt = Tensor::<2>::from_data(TensorData::new(weights, [b, self.k]), device);
        let ce = (strong_log_p * wt).sum().neg().div_scalar(denom.max(1.0));
        let fraction =
            Tensor::<1>::from_data(TensorData::new(vec![masked as f32 / b as f32], [1]), device);
        Ok(StepLoss {
            total: ce,
            parts: vec![("confident fraction", fraction)],
        })
    }

    fn evaluate(&mut self, model: &ScanModel, device: &Device) -> Result<Option<Evaluation>> {
        Evaluation::of_clusters(model, self.images, self.labels, device).map(Some)
    }
}

/// Fine-tunes a trained SCAN model with the SCAN loss (every head; the selected head is kept)
/// on `images` with their `neighbors` (one row per image): the SCAN stage of [`train_scan`]
/// started from `model`'s weights, without head selection or self-labelling. Adversarial
/// retraining uses it on clean + perturbed images, each perturbed image's neighbours being its
/// clean twin and the clean image's neighbours.
pub fn finetune_scan(
    model: &ScanModel,
    config: &ScanTrainConfig,
    images: &ImageBatch,
    neighbors: &Neighbors,
    device: &Device,
) -> Result<ScanModel> {
    let n = images.len();
    config.validate(n)?;
    let mut step = ScanStep {
        images,
        labels: None,
        neighbors,
        config,
    };
    let fingerprint = serde_json::json!({
        "model": model.config(), "augment": config.augment,
        "entropy_weight": config.entropy_weight, "finetuned": true,
    });
    finetune_heads(
        "scan-finetune",
        model,
        n,
        neighbors,
        &config.run,
        fingerprint,
        &mut step,
        device,
    )
}

/// Trains SCAN on `images` (values in `[0, 1]`) from `pretext` (trained on the same images,
/// whose neighbours it uses); `labels` (optional) only score it.
///
/// Errors: a pretext for another image shape or set ([`ModelError::PretextMismatch`]), k < 2 or
/// k > n, a diverged loss (the last checkpoint is kept).
pub fn train_scan(
    config: &ScanTrainConfig,
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(ScanModel, ScanTrainReport)> {
    let n = images.len();
    config.validate(n)?;
    let device_train = config.run.training_device(device);
    let model = heads_from_pretext(
        pretext,
        images,
        labels,
        config.num_clusters,
        config.num_heads,
        config.run.seed,
        &device_train,
    )?;
    let scan_config = model.config().clone();
    let mut step = ScanStep {
        images,
        labels,
        neighbors: &pretext.neighbors,
        config,
    };
    let fingerprint = serde_json::json!({
        "model": scan_config, "augment": config.augment, "entropy_weight": config.entropy_weight,
    });
    let (model, scan_run) = run_training(
        "scan",
        model,
        n,
        &config.run,
        fingerprint,
        &mut step,
        &device_train,
        &mut |_| {},
    )?;
    let sel = select_head(
        &model,
        images,
        &pretext.neighbors,
        config.selection_neighbors,
        device,
    )?;
    let k = config.num_clusters;
    let mut model = model.with_selected_head(sel.best)?;
    let scan_scores = Evaluation::of_memberships(&sel.memberships, k, labels)?.scores;
    let mut confident_fraction = None;
    let mut selflabel = None;
    if let Some(sl) = &config.selflabel {
        let confident = sel
            .memberships
            .chunks(k)
            .filter(|r| r.iter().any(|&v| v as f64 > sl.threshold))
            .count();
        confident_fraction = Some(confident as f64 / n as f64);
        let sl_device = sl.run.training_device(device);
        let mut step = SelfLabelStep {
            images,
            labels,
            config: sl,
            k,
        };
        // The SCAN stage's loss history identifies the weights self-labelling starts from, so
        // a resumed run never continues a self-labelling checkpoint of another SCAN stage.
        let scan_losses: Vec<f64> = scan_run.epochs.iter().map(|e| e.loss).collect();
        let fingerprint = serde_json::json!({
            "model": model.config(), "augment": sl.augment, "threshold": sl.threshold,
            "start": scan_losses,
        });
        // A fresh copy of the weights on the stage's device: no tensor of the SCAN stage's
        // graph reaches the self-labelling graph.
        let start = ScanModel::new(model.config(), 0, &sl_device)?;
        let start = crate::artifact::load_weights(
            start,
            crate::artifact::weights_bytes(&model.valid())?,
            "scan stage",
        )?;
        let (m, run) = run_training(
            "selflabel",
            start,
            n,
            &sl.run,
            fingerprint,
            &mut step,
            &sl_device,
            &mut |_| {},
        )?;
        model = m;
        selflabel = Some(run);
    }
    let model = model.valid();
    let final_eval = Evaluation::of_clusters(&model, images, labels, device)?;
    let final_scores = final_eval.scores;
    let final_cluster_sizes = final_eval.cluster_sizes.unwrap_or_default();
    let train_seconds =
        scan_run.train_seconds + selflabel.as_ref().map_or(0.0, |r| r.train_seconds);
    let mut summary =
        TrainingSummary::of_run(&config.dataset, n, &config.run, train_seconds, final_scores);
    summary.epochs += config.selflabel.as_ref().map_or(0, |s| s.run.epochs);
    let model = crate::victim::VictimModel::with_training(model, Some(summary));
    let report = ScanTrainReport {
        config: config.clone(),
        scan: scan_run,
        head_losses: sel.losses,
        selected_head: sel.best,
        confident_fraction,
        selflabel,
        scan_scores,
        final_scores,
        final_cluster_sizes,
    };
    Ok((model, report))
}
