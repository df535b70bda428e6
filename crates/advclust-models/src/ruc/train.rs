//! RUC training: the clean / noisy split of a base model's pseudo-labels, then the two networks
//! co-trained on the shared runner.
//!
//! Each step trains both networks on the same batch, each with the other as its (detached)
//! peer; RUC alternates whole epochs (`train(net, net2)` then `train(net2, net)`). At the start
//! of every epoch each network's clean set is the base split plus the noisy images it predicts
//! with confidence above the growth threshold (from the model as it stands, so a resumed run
//! rebuilds it exactly), and the peer's min-max-normalised confidence becomes the refurbishing
//! weight (0 in the first epoch). No ground truth: the base model's own cluster ids are the
//! labels (RUC maps them onto class ids with the ground truth first).

use advclust_core::{ImageBatch, SeededRng, argmax_rows};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::pretext::{Pretext, mine_neighbors};
use crate::ruc::RucModel;
use crate::ruc::mixup::{beta_symmetric, sharpen};
use crate::ruc::split::clean_split;
use crate::runner::{
    Evaluation, RunConfig, RunReport, StepLoss, TrainingStep, gather_images, run_training,
};
use crate::scan::heads::check_pretext_data;
use crate::scan::{ScanConfig, ScanModel};
use crate::victim::{ClusterModelExt, TrainingSummary};

/// Everything a RUC run needs besides the data, the base model and its pretext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RucTrainConfig {
    /// Name of the training set.
    pub dataset: String,
    /// Base-model confidence an image needs to be clean (0.99 in RUC, whose self-labelled
    /// GPU SCAN is confident about most images; 0.9 here: the CPU SCAN of MNIST has only a third
    /// of its images above 0.99, one cluster with 5 of them, and RUC then loses that cluster).
    pub confidence_threshold: f64,
    /// Clean images every base cluster gets at least, topped up with its most confident
    /// images (see [`clean_split`]); RUC has no such floor (`0`, also what a configuration
    /// written before the floor existed reads as).
    #[serde(default)]
    pub min_clean_per_cluster: usize,
    /// Pretext neighbours that vote on an image's label, itself included (100 in RUC).
    pub vote_neighbors: usize,
    /// Sharpening temperature of both targets (0.5).
    pub sharpen_temperature: f64,
    /// MixUp's `Beta(alpha, alpha)` (4).
    pub mixup_alpha: f64,
    /// Weight `c` of the noisy-set squared error (25 for CIFAR-10).
    pub unlabelled_weight: f64,
    /// Epochs over which the noisy-set weight ramps up linearly (from a tenth), as RUC's
    /// `clip(epoch / 200, 0.1, 1)` over its 200 epochs; a run's length does not change it, so
    /// a run extended by resuming equals one planned that long.
    pub rampup_epochs: usize,
    /// Label smoothing of the strong-view term (0.5).
    pub smoothing: f64,
    /// Confidence above which a network moves a noisy image to its clean set (0.99).
    pub growth_threshold: f64,
    /// Weak augmentation (the MixUp views).
    pub weak: AugmentConfig,
    /// Strong augmentation (the label-smoothed views).
    pub strong: AugmentConfig,
    /// The run (RUC: SGD 0.01 with Nesterov, cosine, 200 epochs, batch 250).
    pub run: RunConfig,
}

impl RucTrainConfig {
    /// RUC's settings where they fit a CPU: clean threshold 0.9, a floor of 100 clean images
    /// per base cluster, growth threshold 0.99, 50
    /// voting neighbours, temperature 0.5, `Beta(4, 4)`, `c = 25` ramped up over 10 epochs,
    /// smoothing 0.5, strong augmentation `strong` and its weak form, 10 epochs of batch 128
    /// with Adam 1e-3, weight decay 5e-4 and RUC's cosine schedule over the run (the heads are
    /// fresh: RUC's SGD runs at 0.01 with momentum 0.9).
    pub fn new(strong: AugmentConfig) -> Self {
        let mut run = RunConfig::new(10, 128, 1e-3);
        run.weight_decay = 5e-4;
        run.lr_schedule = crate::runner::LrSchedule::Cosine;
        RucTrainConfig {
            dataset: "unnamed".into(),
            confidence_threshold: 0.9,
            min_clean_per_cluster: 100,
            vote_neighbors: 50,
            sharpen_temperature: 0.5,
            mixup_alpha: 4.0,
            unlabelled_weight: 25.0,
            rampup_epochs: 10,
            smoothing: 0.5,
            growth_threshold: 0.99,
            weak: strong.weak(),
            strong,
            run,
        }
    }

    fn validate(&self, n: usize) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 && v < 1.0 {
                Ok(())
            } else {
                Err(ModelError::invalid(name, "must be in (0, 1)"))
            }
        };
        unit("confidence_threshold", self.confidence_threshold)?;
        unit("growth_threshold", self.growth_threshold)?;
        unit("smoothing", self.smoothing)?;
        for (name, v) in [
            ("sharpen_temperature", self.sharpen_temperature),
            ("mixup_alpha", self.mixup_alpha),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError::invalid(name, "must be finite and positive"));
            }
        }
        if !(self.unlabelled_weight.is_finite() && self.unlabelled_weight >= 0.0) {
            return Err(ModelError::invalid(
                "unlabelled_weight",
                "must be finite and >= 0",
            ));
        }
        if self.rampup_epochs == 0 {
            return Err(ModelError::invalid("rampup_epochs", "must be at least 1"));
        }
        if self.vote_neighbors < 2 || self.vote_neighbors > n {
            return Err(ModelError::invalid(
                "vote_neighbors",
                format!(
                    "need 2 <= neighbours <= n, got {} for n = {n}",
                    self.vote_neighbors
                ),
            ));
        }
        self.weak.validate()?;
        self.strong.validate()?;
        self.run.validate()
    }
}

/// The result of a RUC run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RucTrainReport {
    /// The configuration used.
    pub config: RucTrainConfig,
    /// Images the base model was confident about.
    pub confident: usize,
    /// Images whose neighbours' vote agreed with their label.
    pub vote_agreed: usize,
    /// Images in the clean set (both tests, or the per-cluster floor).
    pub clean: usize,
    /// Images made clean by the per-cluster floor alone.
    #[serde(default)]
    pub topped_up: usize,
    /// Clean images per base cluster.
    pub clean_per_cluster: Vec<usize>,
    /// Scores of the base model, when labels were given.
    pub base_scores: Option<ClusteringScores>,
    /// The co-training stage.
    pub run: RunReport,
    /// Scores of the final model, when labels were given.
    pub final_scores: Option<ClusteringScores>,
    /// Images per predicted cluster of the final model.
    pub final_cluster_sizes: Vec<usize>,
}

/// Each network's view of the labels for one epoch.
#[derive(Debug, Clone)]
struct NetState {
    clean: Vec<bool>,
    labels: Vec<usize>,
    /// The refurbishing weight of each image (the peer's normalised confidence).
    weight: Vec<f32>,
}

struct RucStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    config: &'a RucTrainConfig,
    base_clean: Vec<bool>,
    base_labels: Vec<usize>,
    nets: [NetState; 2],
    rampup: f64,
}

fn softmax_host(net: &ScanModel, images: &ImageBatch, device: &Device) -> Result<Vec<f32>> {
    net.memberships_host(images, 500, device)
}

impl RucStep<'_> {
    /// The loss of network `net` with `peer` on the batch (views shared by both networks).
    #[allow(clippy::too_many_arguments)]
    fn net_loss(
        &self,
        which: usize,
        net: &ScanModel,
        probs: [&[Tensor<2>; 3]; 2],
        views: &Tensor<4>,
        strong: &[f32],
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<(Tensor<1>, [Tensor<1>; 3])> {
        let state = &self.nets[which];
        let k = net.config().num_clusters;
        let b = batch.len();
        let [_, c, h, w] = self.images.dims();
        let clean: Vec<usize> = (0..b).filter(|&i| state.clean[batch[i]]).collect();
        let noisy: Vec<usize> = (0..b).filter(|&i| !state.clean[batch[i]]).collect();
        let (nc, nn) = (clean.len(), noisy.len());
        let [own, peer] = probs;
        let index = |rows: &[usize], offset: usize| {
            let v: Vec<i64> = rows.iter().map(|&r| (r + offset) as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [rows.len()]), device)
        };
        let t = self.config.sharpen_temperature;
        // Targets: clean rows refurbished, noisy rows the sharpened mean of four guesses.
        let mut inputs = Vec::new();
        let mut targets = Vec::new();
        if nc > 0 {
            let mut onehot = vec![0.0f32; nc * k];
            let mut wts = Vec::with_capacity(nc);
            for (r, &i) in clean.iter().enumerate() {
                onehot[r * k + state.labels[batch[i]]] = 1.0;
                wts.push(state.weight[batch[i]]);
            }
            let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [nc, k]), device);
            let wt = Tensor::<2>::from_data(TensorData::new(wts, [nc, 1]), device);
            let px = onehot * (wt.ones_like() - wt.clone())
                + peer[0].clone().select(0, index(&clean, 0)) * wt;
            let px = sharpen(px, t);
            inputs.push(views.clone().select(0, index(&clean, 0)));
            inputs.push(views.clone().select(0, index(&clean, b)));
            targets.push(px.clone());
            targets.push(px);
        }
        if nn > 0 {
            let ni = index(&noisy, 0);
            let pu = (own[1].clone().select(0, ni.clone())
                + own[2].clone().select(0, ni.clone())
                + peer[1].clone().select(0, ni.clone())
                + peer[2].clone().select(0, ni))
            .div_scalar(4.0);
            let pu = sharpen(pu, t);
            inputs.push(views.clone().select(0, index(&noisy, 0)));
            inputs.push(views.clone().select(0, index(&noisy, b)));
            targets.push(pu.clone());
            targets.push(pu);
        }
        let x = Tensor::cat(inputs, 0);
        let y = Tensor::cat(targets, 0).detach();
        let rows = 2 * b;
        let lambda = beta_symmetric(rng, self.config.mixup_alpha);
        let lambda = lambda.max(1.0 - lambda);
        let mut perm: Vec<usize> = (0..rows).collect();
        perm.shuffle(rng);
        let perm = index(&perm, 0);
        let mixed_x =
            x.clone().mul_scalar(lambda) + x.select(0, perm.clone()).mul_scalar(1.0 - lambda);
        let mixed_y = y.clone().mul_scalar(lambda) + y.select(0, perm).mul_scalar(1.0 - lambda);
        let mut forward = vec![mixed_x];
        if nc > 0 {
            let strong_clean = gather_images(strong, c * h * w, &clean);
            forward.push(Tensor::from_data(
                TensorData::new(strong_clean, [nc, c, h, w]),
                device,
            ));
        }
        let logits = net.logits(Tensor::cat(forward, 0));
        let mixed_logits = logits.clone().narrow(0, 0, rows);
        let zero = Tensor::<1>::zeros([1], device);
        let lx = if nc > 0 {
            (log_softmax(mixed_logits.clone().narrow(0, 0, 2 * nc), 1)
                * mixed_y.clone().narrow(0, 0, 2 * nc))
            .sum_dim(1)
            .mean()
            .neg()
        } else {
            zero.clone()
        };
        let lu = if nn > 0 {
            (softmax(mixed_logits.narrow(0, 2 * nc, 2 * nn), 1) - mixed_y.narrow(0, 2 * nc, 2 * nn))
                .square()
                .mean()
                .mul_scalar(self.config.unlabelled_weight * self.rampup)
        } else {
            zero.clone()
        };
        let ls = if nc > 0 {
            let s = self.config.smoothing;
            let off = s / (k as f64 - 1.0);
            let mut smooth = vec![off as f32; nc * k];
            for (r, &i) in clean.iter().enumerate() {
                smooth[r * k + state.labels[batch[i]]] = (1.0 - s) as f32;
            }
            let smooth = Tensor::<2>::from_data(TensorData::new(smooth, [nc, k]), device);
            (log_softmax(logits.narrow(0, rows, nc), 1) * smooth)
                .sum_dim(1)
                .mean()
                .neg()
        } else {
            zero
        };
        Ok((lx.clone() + lu.clone() + ls.clone(), [lx, lu, ls]))
    }
}

impl TrainingStep<RucModel> for RucStep<'_> {
    fn begin_epoch(&mut self, model: &RucModel, epoch: usize, device: &Device) -> Result<()> {
        self.rampup = (epoch as f64 / self.config.rampup_epochs as f64).clamp(0.1, 1.0);
        let n = self.images.len();
        if epoch == 1 {
            for s in &mut self.nets {
                s.clean = self.base_clean.clone();
                s.labels = self.base_labels.clone();
                s.weight = vec![0.0; n];
            }
            return Ok(());
        }
        let nets = model.nets();
        let k = model.config().num_clusters;
        let probs = [
            softmax_host(nets[0], self.images, device)?,
            softmax_host(nets[1], self.images, device)?,
        ];
        let confidence: Vec<Vec<f32>> = probs
            .iter()
            .map(|p| {
                p.chunks_exact(k)
                    .map(|r| r.iter().copied().fold(0.0, f32::max))
                    .collect()
            })
            .collect();
        for which in 0..2 {
            let own = &confidence[which];
            let peer = &confidence[1 - which];
            let (lo, hi) = peer
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            let span = (hi - lo).max(1e-12);
            let predicted = argmax_rows(&probs[which], k);
            let s = &mut self.nets[which];
            s.weight = peer.iter().map(|&v| (v - lo) / span).collect();
            s.clean = self.base_clean.clone();
            s.labels = self.base_labels.clone();
            for i in 0..n {
                if !s.clean[i] && own[i] as f64 >= self.config.growth_threshold {
                    s.clean[i] = true;
                    s.labels[i] = predicted[i];
                }
            }
        }
        Ok(())
    }

    fn loss(
        &mut self,
        model: &RucModel,
        batch: &[usize],
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<StepLoss> {
        let [_, c, h, w] = self.images.dims();
        let b = batch.len();
        let dims = [b, c, h, w];
        let raw = gather_images(self.images.data(), c * h * w, batch);
        let mut weak = augment_batch(&raw, dims, &self.config.weak, rng)?;
        weak.extend(augment_batch(&raw, dims, &self.config.weak, rng)?);
        let strong = augment_batch(&raw, dims, &self.config.strong, rng)?;
        let views = Tensor::<4>::from_data(TensorData::new(weak, [2 * b, c, h, w]), device);
        let plain = Tensor::<4>::from_data(TensorData::new(raw, dims), device);
        // Every network's detached guesses on [in1; in2; in3].
        let all = Tensor::cat(vec![plain, views.clone()], 0);
        let guesses: Vec<[Tensor<2>; 3]> = model
            .nets()
            .iter()
            .map(|net| {
                let p = softmax(net.logits(all.clone()).detach(), 1);
                [
                    p.clone().narrow(0, 0, b),
                    p.clone().narrow(0, b, b),
                    p.narrow(0, 2 * b, b),
                ]
            })
            .collect();
        let mut total: Option<Tensor<1>> = None;
        let mut parts: Option<[Tensor<1>; 3]> = None;
        for which in 0..2 {
            let net = model.nets()[which];
            let probs = [&guesses[which], &guesses[1 - which]];
            let (t, p) = self.net_loss(which, net, probs, &views, &strong, batch, rng, device)?;
            total = Some(match total {
                None => t,
                Some(s) => s + t,
            });
            parts = Some(match parts {
                None => p,
                Some([a, b2, c2]) => {
                    let [x, y, z] = p;
                    [a + x, b2 + y, c2 + z]
                }
            });
        }
        let (Some(total), Some([lx, lu, ls])) = (total, parts) else {
            return Err(ModelError::invalid("RUC", "no network to train"));
        };
        Ok(StepLoss {
            total,
            parts: vec![("clean", lx), ("noisy", lu), ("smoothed", ls)],
        })
    }

    fn evaluate(&mut self, model: &RucModel, device: &Device) -> Result<Option<Evaluation>> {
        let mut e = Evaluation::of_clusters(model, self.images, self.labels, device)?;
        for (which, s) in self.nets.iter().enumerate() {
            let clean = s.clean.iter().filter(|&&c| c).count();
            e.metrics
                .push((format!("clean set {}", which + 1), clean as f64));
        }
        Ok(Some(e))
    }
}

/// The co-training stage from `model` (on the training device) with the base split
/// `(clean mask, labels)`.
#[allow(clippy::too_many_arguments)]
fn run_ruc(
    stage: &str,
    model: RucModel,
    config: &RucTrainConfig,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    (base_clean, base_labels): (Vec<bool>, Vec<usize>),
    finetuned: bool,
    device_train: &Device,
) -> Result<(RucModel, RunReport)> {
    let empty = NetState {
        clean: Vec::new(),
        labels: Vec::new(),
        weight: Vec::new(),
    };
    let mut step = RucStep {
        images,
        labels,
        config,
        base_clean,
        base_labels,
        nets: [empty.clone(), empty],
        rampup: 0.1,
    };
    let fingerprint = serde_json::json!({
        "model": model.config(), "weak": config.weak, "strong": config.strong,
        "confidence_threshold": config.confidence_threshold,
        "min_clean_per_cluster": config.min_clean_per_cluster,
        "vote_neighbors": config.vote_neighbors, "temperature": config.sharpen_temperature,
        "mixup_alpha": config.mixup_alpha, "unlabelled_weight": config.unlabelled_weight,
        "smoothing": config.smoothing, "growth_threshold": config.growth_threshold,
        "rampup_epochs": config.rampup_epochs, "finetuned": finetuned,
    });
    run_training(
        stage,
        model,
        images.len(),
        &config.run,
        fingerprint,
        &mut step,
        device_train,
        &mut |_| {},
    )
}

/// Fine-tunes a trained RUC model by co-training both networks again on `images` with the
/// given base split (`labels[i]` the pseudo-label of image `i`, `clean[i]` whether it is in
/// the clean set; the caller decides them, e.g. from the model's own predictions). Adversarial
/// retraining uses it on clean + perturbed images, each perturbed copy labelled as its twin.
pub fn finetune_ruc(
    model: &RucModel,
    config: &RucTrainConfig,
    images: &ImageBatch,
    labels: Vec<usize>,
    clean: Vec<bool>,
    device: &Device,
) -> Result<RucModel> {
    let n = images.len();
    config.validate(n)?;
    model.check_input(images.dims())?;
    let k = model.config().num_clusters;
    if labels.len() != n || clean.len() != n {
        return Err(ModelError::LabelCount {
            images: n,
            labels: labels.len().min(clean.len()),
        });
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(ModelError::invalid(
            "labels",
            format!("pseudo-label {bad} is not below k = {k}"),
        ));
    }
    if !clean.contains(&true) {
        return Err(ModelError::invalid("clean", "no image is clean"));
    }
    let device_train = config.run.training_device(device);
    let start = model.valid().to_device(&device_train).unfreeze().train();
    let (tuned, _) = run_ruc(
        "ruc-finetune",
        start,
        config,
        images,
        None,
        (clean, labels),
        true,
        &device_train,
    )?;
    Ok(tuned.valid())
}

/// Trains RUC on `images` (values in `[0, 1]`) on top of `base` (a trained SCAN on the same
/// images): the clean set from `base`'s confidence and the vote of `pretext`'s embedding
/// neighbours, both networks starting from `base`'s backbone with fresh heads. `labels`
/// (optional) only score it.
///
/// Errors: a base model or pretext for another image shape or set, labels of another length,
/// no clean image at all (lower the threshold), a diverged loss.
pub fn train_ruc(
    config: &RucTrainConfig,
    base: &ScanModel,
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(RucModel, RucTrainReport)> {
    let n = images.len();
    config.validate(n)?;
    check_pretext_data(pretext, images, labels)?;
    base.check_input(images.dims())?;
    let k = base.config().num_clusters;
    let base_probs = base.memberships_host(images, 500, device)?;
    let base_labels = argmax_rows(&base_probs, k);
    let base_scores = labels
        .map(|l| advclust_metrics::clustering_scores(l, &base_labels))
        .transpose()?;
    let confidence: Vec<f32> = base_probs
        .chunks_exact(k)
        .map(|r| r.iter().copied().fold(0.0, f32::max))
        .collect();
    let embeddings = pretext.model.embed_host(images, device)?;
    let voters = mine_neighbors(&embeddings, n, config.vote_neighbors - 1, device)?;
    let split = clean_split(
        &base_labels,
        &confidence,
        &voters,
        k,
        config.confidence_threshold,
        config.min_clean_per_cluster,
    )?;
    let (base_clean, confident, vote_agreed) = (split.mask, split.confident, split.vote_agreed);
    let clean = base_clean.iter().filter(|&&c| c).count();
    let mut clean_per_cluster = vec![0usize; k];
    for (&c, &l) in base_clean.iter().zip(&base_labels) {
        clean_per_cluster[l] += usize::from(c);
    }
    if clean == 0 {
        return Err(ModelError::invalid(
            "confidence_threshold",
            format!(
                "no image is clean ({confident} confident, {vote_agreed} agree with their \
                 neighbours)"
            ),
        ));
    }
    let device_train = config.run.training_device(device);
    let net_config = ScanConfig {
        num_heads: 1,
        selected_head: 0,
        ..base.config().clone()
    };
    let mut rng = SeededRng::seed_from_u64(config.run.seed);
    let mut net = || -> Result<ScanModel> {
        let backbone = crate::artifact::load_weights(
            net_config.backbone.init(&mut rng, &device_train),
            crate::artifact::weights_bytes(base.backbone())?,
            "base backbone",
        )?;
        Ok(ScanModel::with_backbone(
            backbone,
            net_config.clone(),
            &mut rng,
            &device_train,
        ))
    };
    let model = RucModel::from_nets(net()?, net()?)?;
    let (model, run) = run_ruc(
        "ruc",
        model,
        config,
        images,
        labels,
        (base_clean, base_labels),
        false,
        &device_train,
    )?;
    let model = model.valid();
    let final_eval = Evaluation::of_clusters(&model, images, labels, device)?;
    let summary = TrainingSummary::of_run(
        &config.dataset,
        n,
        &config.run,
        run.train_seconds,
        final_eval.scores,
    );
    let model = crate::victim::VictimModel::with_training(model, Some(summary));
    let report = RucTrainReport {
        config: config.clone(),
        confident,
        vote_agreed,
        clean,
        topped_up: split.topped_up,
        clean_per_cluster,
        base_scores,
        run,
        final_scores: final_eval.scores,
        final_cluster_sizes: final_eval.cluster_sizes.unwrap_or_default(),
    };
    Ok((model, report))
}
