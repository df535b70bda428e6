//! NNM training: neighbours mined from the pretext's backbone features, then one stage on the
//! shared runner whose step combines the mined, in-batch and global neighbours (see the module
//! docs of [`crate::nnm`]), and head selection by SCAN's unsupervised loss.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, tensor_to_vec};
use advclust_metrics::ClusteringScores;
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::augment::{AugmentConfig, augment_batch};
use crate::error::{ModelError, Result};
use crate::nnm::NnmModel;
use crate::pretext::{Neighbors, Pretext, mine_neighbors};
use crate::runner::{
    Evaluation, RunConfig, RunReport, StepLoss, TrainingStep, gather_images, run_training,
};
use crate::scan::ScanModel;
use crate::scan::heads::{
    HeadsPass, check_heads, finetune_heads, heads_evaluation, heads_from_pretext, select_head,
};
use crate::victim::TrainingSummary;

/// Everything an NNM run needs besides the data and the pretext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NnmTrainConfig {
    /// Name of the training set.
    pub dataset: String,
    /// Clusters `k`.
    pub num_clusters: usize,
    /// Cluster heads trained side by side (3 in NNM).
    pub num_heads: usize,
    /// Weight of the entropy of the mean prediction (5.0 in NNM).
    pub entropy_weight: f64,
    /// Neighbours mined per image from the pretext's backbone features (20 in NNM).
    pub num_neighbors: usize,
    /// Neighbours per image used by head selection (5, as SCAN's validation).
    pub selection_neighbors: usize,
    /// First epoch that uses the global nearest-neighbour table (2 in NNM: the table is built
    /// from the model as it stands before that epoch).
    pub global_from_epoch: usize,
    /// Augmentation of anchors, neighbours and the anchors' second view.
    pub augment: AugmentConfig,
    /// The run (NNM: Adam 1e-4, weight decay 1e-4, batch 200).
    pub run: RunConfig,
}

impl NnmTrainConfig {
    /// NNM's settings where they fit a CPU: three heads, entropy weight 5, 20 mined
    /// neighbours, the global table from epoch 2, batch 200, Adam 1e-4 with weight decay 1e-4,
    /// 30 epochs (NNM trains 100).
    pub fn new(num_clusters: usize, channels: usize) -> Self {
        let mut run = RunConfig::new(30, 200, 1e-4);
        run.weight_decay = 1e-4;
        NnmTrainConfig {
            dataset: "unnamed".into(),
            num_clusters,
            num_heads: 3,
            entropy_weight: 5.0,
            num_neighbors: 20,
            selection_neighbors: 5,
            global_from_epoch: 2,
            augment: AugmentConfig::for_channels(channels),
            run,
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
        if self.num_neighbors < 1 || self.num_neighbors >= n {
            return Err(ModelError::invalid(
                "num_neighbors",
                format!(
                    "need 1 <= k < n, got k = {} for n = {n}",
                    self.num_neighbors
                ),
            ));
        }
        if self.global_from_epoch == 0 {
            return Err(ModelError::invalid(
                "global_from_epoch",
                "epochs count from 1 (the table needs a model to be built from)",
            ));
        }
        self.augment.validate()?;
        self.run.validate()
    }
}

/// The result of an NNM run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NnmTrainReport {
    /// The configuration used.
    pub config: NnmTrainConfig,
    /// Label agreement of the neighbours mined from the backbone features, when labels were
    /// given.
    pub neighbor_agreement: Option<f64>,
    /// The training stage.
    pub run: RunReport,
    /// Unsupervised selection loss (consistency - entropy) of each head.
    pub head_losses: Vec<f64>,
    /// The head selected (lowest loss).
    pub selected_head: usize,
    /// Scores of the final model, when labels were given.
    pub final_scores: Option<ClusteringScores>,
    /// Images per predicted cluster of the final model.
    pub final_cluster_sizes: Vec<usize>,
}

/// NNM's cluster-level contrast of two assignment matrices `[R, k]`: each column L2-normalised
/// over the rows, `S = A^T B` (`[k, k]`), cross-entropy of each row of `S` (as logits) against
/// its own cluster, averaged over the `k` clusters.
pub fn cluster_contrast(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let k = a.dims()[1];
    let col_norm = |x: Tensor<2>| {
        let norm = x.clone().powi_scalar(2).sum_dim(0).sqrt().clamp_min(1e-12);
        x / norm
    };
    let s = col_norm(a).transpose().matmul(col_norm(b));
    let eye = Tensor::<2>::eye(k, &s.device());
    (log_softmax(s, 1) * eye).sum().div_scalar(k as f64).neg()
}

/// `-mean_i log <A_i, B_i>` (BCE against 1, log clamped at -100 as PyTorch).
fn consistency(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    (a * b)
        .sum_dim(1)
        .clamp_min(1e-30)
        .log()
        .clamp_min(-100.0)
        .mean()
        .neg()
}

/// The NNM loss of one head, from probabilities `[B, k]` of the anchors, their mined neighbours,
/// the anchors' second view and the anchors' in-batch nearest neighbours, and (from the
/// global epoch on) the stored probabilities of each anchor's global nearest neighbour:
/// with `A = [anchor; second]` and `B = [mined; in-batch]`, the consistency and cluster contrast
/// of `(A, B)`, of `([A; B], global x 4)` when given, minus `entropy_weight` times the entropy of
/// the mean row of `A`. Returns `(total, consistency + contrast, global, entropy)`.
pub fn nnm_head_loss(
    anchor: Tensor<2>,
    mined: Tensor<2>,
    second: Tensor<2>,
    in_batch: Tensor<2>,
    global: Option<Tensor<2>>,
    entropy_weight: f64,
) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>) {
    let a = Tensor::cat(vec![anchor, second], 0);
    let b = Tensor::cat(vec![mined, in_batch], 0);
    let local = consistency(a.clone(), b.clone()) + cluster_contrast(a.clone(), b.clone());
    let pbar = a.clone().mean_dim(0).clamp_min(1e-8);
    let entropy = (pbar.clone() * pbar.log()).sum().neg();
    let global = match global {
        Some(g) => {
            let x = Tensor::cat(vec![a, b], 0);
            let g4 = Tensor::cat(vec![g.clone(), g.clone(), g.clone(), g], 0);
            consistency(x.clone(), g4.clone()) + cluster_contrast(x, g4)
        }
        None => local.zeros_like(),
    };
    let total = local.clone() + global.clone() - entropy.clone().mul_scalar(entropy_weight);
    (total, local, global, entropy)
}

/// For each row of `features` (row-major `[b, d]`), the index of the nearest *other* row by
/// squared L2 distance (ties to the lower index).
fn nearest_in_batch(features: &[f32], b: usize) -> Vec<usize> {
    let d = features.len() / b.max(1);
    (0..b)
        .map(|i| {
            let fi = &features[i * d..(i + 1) * d];
            (0..b)
                .filter(|&j| j != i)
                .map(|j| {
                    let fj = &features[j * d..(j + 1) * d];
                    let dist: f32 = fi.iter().zip(fj).map(|(x, y)| (x - y) * (x - y)).sum();
                    (j, dist)
                })
                .min_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)))
                .map_or(i, |(j, _)| j)
        })
        .collect()
}

struct NnmStep<'a> {
    images: &'a ImageBatch,
    labels: Option<&'a [usize]>,
    neighbors: &'a Neighbors,
    config: &'a NnmTrainConfig,
    /// Per head, row-major `[N, k]`: the probabilities of each image's global nearest
    /// neighbour under the model before this epoch.
    global: Option<Vec<Vec<f32>>>,
}

impl TrainingStep<ScanModel> for NnmStep<'_> {
    fn begin_epoch(&mut self, model: &ScanModel, epoch: usize, device: &Device) -> Result<()> {
        if epoch < self.config.global_from_epoch {
            self.global = None;
            return Ok(());
        }
        // Built in dataset order from the model as it stands (NNM builds it in loader order
        // and reads it by dataset index; see docs/victims.md).
        let pass = HeadsPass::of(model, self.images, device)?;
        let n = self.images.len();
        let nn = mine_neighbors(&pass.features, n, 1, device)?;
        let k = model.config().num_clusters;
        let table = pass
            .memberships
            .iter()
            .map(|p| {
                let mut out = Vec::with_capacity(n * k);
                for i in 0..n {
                    let j = nn.row(i)[1] as usize;
                    out.extend_from_slice(&p[j * k..(j + 1) * k]);
                }
                out
            })
            .collect();
        self.global = Some(table);
        Ok(())
    }

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
        let k = model.config().num_clusters;
        let partners = self.neighbors.random_partners(batch, rng);
        let dims = [b, c, h, w];
        let anchors = gather_images(self.images.data(), len, batch);
        let mut views = augment_batch(&anchors, dims, &self.config.augment, rng)?;
        views.extend(augment_batch(
            &gather_images(self.images.data(), len, &partners),
            dims,
            &self.config.augment,
            rng,
        )?);
        views.extend(augment_batch(&anchors, dims, &self.config.augment, rng)?);
        let x = Tensor::<4>::from_data(TensorData::new(views, [3 * b, c, h, w]), device);
        let features = model.features(x);
        let anchor_features = tensor_to_vec(features.clone().narrow(0, 0, b).detach().into_data())?;
        let nearest: Vec<i64> = nearest_in_batch(&anchor_features, b)
            .into_iter()
            .map(|j| j as i64)
            .collect();
        let nearest =
            Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(nearest, [b]), device);
        let mut sums: Option<[Tensor<1>; 4]> = None;
        for (head, logits) in model.logits_of_features(features).into_iter().enumerate() {
            let p = softmax(logits, 1);
            let anchor = p.clone().narrow(0, 0, b);
            let global = self.global.as_ref().map(|table| {
                let rows: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| table[head][i * k..(i + 1) * k].iter().copied())
                    .collect();
                Tensor::<2>::from_data(TensorData::new(rows, [b, k]), device)
            });
            let (t, l, g, e) = nnm_head_loss(
                anchor.clone(),
                p.clone().narrow(0, b, b),
                p.narrow(0, 2 * b, b),
                anchor.select(0, nearest.clone()),
                global,
                self.config.entropy_weight,
            );
            sums = Some(match sums {
                None => [t, l, g, e],
                Some([st, sl, sg, se]) => [st + t, sl + l, sg + g, se + e],
            });
        }
        let Some([total, local, global, entropy]) = sums else {
            return Err(ModelError::invalid("num_heads", "the model has no head"));
        };
        Ok(StepLoss {
            total,
            parts: vec![("local", local), ("global", global), ("entropy", entropy)],
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

/// Fine-tunes a trained NNM model with the NNM loss (every head; the selected head is kept) on
/// `images` with their mined `neighbors` (one row per image): the stage of [`train_nnm`] started
/// from `model`'s weights, without head selection; the global table is built from the model
/// being tuned from fine-tuning epoch `config.global_from_epoch` on. Adversarial retraining
/// uses it on clean + perturbed images, each perturbed image's neighbours being its clean twin
/// and the clean image's neighbours.
pub fn finetune_nnm(
    model: &NnmModel,
    config: &NnmTrainConfig,
    images: &ImageBatch,
    neighbors: &Neighbors,
    device: &Device,
) -> Result<NnmModel> {
    let n = images.len();
    config.validate(n)?;
    let mut step = NnmStep {
        images,
        labels: None,
        neighbors,
        config,
        global: None,
    };
    let fingerprint = serde_json::json!({
        "model": model.config(), "augment": config.augment,
        "entropy_weight": config.entropy_weight, "num_neighbors": config.num_neighbors,
        "global_from_epoch": config.global_from_epoch, "finetuned": true,
    });
    let tuned = finetune_heads(
        "nnm-finetune",
        model.heads(),
        n,
        neighbors,
        &config.run,
        fingerprint,
        &mut step,
        device,
    )?;
    Ok(NnmModel::from_heads(tuned))
}

/// Trains NNM on `images` (values in `[0, 1]`) from `pretext` (trained on the same images);
/// neighbours are mined again from its backbone features, as NNM does. `labels` (optional)
/// only score it: the final epoch's model is kept (NNM keeps the epoch of best ground-truth
/// accuracy, which this does not copy).
///
/// Errors: a pretext for another image shape or set ([`ModelError::PretextMismatch`]), k < 2 or
/// k > n, a neighbour count not below n, a diverged loss (the last checkpoint is kept).
pub fn train_nnm(
    config: &NnmTrainConfig,
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<(NnmModel, NnmTrainReport)> {
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
    let start = HeadsPass::of(&model, images, device)?;
    let neighbors = mine_neighbors(&start.features, n, config.num_neighbors, device)?;
    let neighbor_agreement = labels.map(|l| neighbors.label_agreement(l)).transpose()?;
    let mut step = NnmStep {
        images,
        labels,
        neighbors: &neighbors,
        config,
        global: None,
    };
    let fingerprint = serde_json::json!({
        "model": model.config(), "augment": config.augment,
        "entropy_weight": config.entropy_weight, "num_neighbors": config.num_neighbors,
        "global_from_epoch": config.global_from_epoch,
    });
    let (model, run) = run_training(
        "nnm",
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
        &neighbors,
        config.selection_neighbors,
        device,
    )?;
    let model = model.with_selected_head(sel.best)?.valid();
    let final_eval = Evaluation::of_memberships(&sel.memberships, config.num_clusters, labels)?;
    let summary = TrainingSummary::of_run(
        &config.dataset,
        n,
        &config.run,
        run.train_seconds,
        final_eval.scores,
    );
    let model =
        crate::victim::VictimModel::with_training(NnmModel::from_heads(model), Some(summary));
    let report = NnmTrainReport {
        config: config.clone(),
        neighbor_agreement,
        run,
        head_losses: sel.losses,
        selected_head: sel.best,
        final_scores: final_eval.scores,
        final_cluster_sizes: final_eval.cluster_sizes.unwrap_or_default(),
    };
    Ok((model, report))
}
