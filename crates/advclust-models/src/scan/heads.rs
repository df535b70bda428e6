//! What SCAN and NNM share: a heads model started from the pretext, the settings check, head
//! selection by the unsupervised SCAN loss, and fine-tuning a trained model.

use advclust_core::SeededRng;
use advclust_core::{ImageBatch, tensor_to_vec};
use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use rand::SeedableRng;

use crate::error::{ModelError, Result};
use crate::pretext::{Neighbors, Pretext, check_images};
use crate::runner::{Evaluation, RunConfig, TrainingStep, run_training};
use crate::scan::{MAX_HEADS, ScanConfig, ScanModel};

/// Checks the settings SCAN and NNM share: `2 <= k <= n`, `1..=MAX_HEADS` heads, a finite
/// entropy weight `>= 0`, at least one selection neighbour.
pub(crate) fn check_heads(
    num_clusters: usize,
    n: usize,
    num_heads: usize,
    entropy_weight: f64,
    selection_neighbors: usize,
) -> Result<()> {
    crate::norm::check_num_clusters(num_clusters)?;
    if num_clusters > n {
        return Err(ModelError::invalid(
            "num_clusters",
            format!("k = {num_clusters} clusters for {n} images"),
        ));
    }
    if !(1..=MAX_HEADS).contains(&num_heads) {
        return Err(ModelError::invalid(
            "num_heads",
            format!("must be in 1..={MAX_HEADS}"),
        ));
    }
    if !(entropy_weight.is_finite() && entropy_weight >= 0.0) {
        return Err(ModelError::invalid(
            "entropy_weight",
            "must be finite and >= 0",
        ));
    }
    if selection_neighbors == 0 {
        return Err(ModelError::invalid(
            "selection_neighbors",
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Checks that `images` fit `pretext` and are the set it was trained on, and that `labels`
/// (if any) has one label per image.
pub(crate) fn check_pretext_data(
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
) -> Result<()> {
    check_images(images, pretext.model.config().input_shape)?;
    pretext.check_fits(images)?;
    match labels {
        Some(l) if l.len() != images.len() => Err(ModelError::LabelCount {
            images: images.len(),
            labels: l.len(),
        }),
        _ => Ok(()),
    }
}

/// A heads model (SCAN's architecture) whose backbone starts from `pretext`'s weights, loaded
/// into fresh parameters on `device` so the whole network trains; heads drawn from `seed`.
///
/// Errors: images that do not fit the pretext or are not the set it was trained on, labels of
/// another length.
pub(crate) fn heads_from_pretext(
    pretext: &Pretext,
    images: &ImageBatch,
    labels: Option<&[usize]>,
    num_clusters: usize,
    num_heads: usize,
    seed: u64,
    device: &Device,
) -> Result<ScanModel> {
    check_pretext_data(pretext, images, labels)?;
    let pc = pretext.model.config();
    let config = ScanConfig {
        input_shape: pc.input_shape,
        num_clusters,
        backbone: pc.backbone.clone(),
        num_heads,
        selected_head: 0,
        mean: pc.mean.clone(),
        std: pc.std.clone(),
    };
    config.parameter_count()?;
    let mut rng = SeededRng::seed_from_u64(seed);
    let backbone = crate::artifact::load_weights(
        config.backbone.init(&mut rng, device),
        crate::artifact::weights_bytes(pretext.model.backbone())?,
        "pretext backbone",
    )?;
    Ok(ScanModel::with_backbone(backbone, config, &mut rng, device))
}

/// One evaluation-mode pass over `images`: backbone features (row-major `[N, feature_dim]`)
/// and every head's softmax (per head row-major `[N, k]`).
pub(crate) struct HeadsPass {
    /// Backbone features.
    pub(crate) features: Vec<f32>,
    /// Softmax of each head.
    pub(crate) memberships: Vec<Vec<f32>>,
}

impl HeadsPass {
    /// Runs `model` in evaluation mode over `images` in chunks of 500.
    pub(crate) fn of(model: &ScanModel, images: &ImageBatch, device: &Device) -> Result<Self> {
        let device = device.clone().inner();
        let model = model.valid().to_device(&device);
        let n = images.len();
        let mut features = Vec::with_capacity(n * model.config().backbone.feature_dim());
        let mut memberships =
            vec![Vec::with_capacity(n * model.config().num_clusters); model.config().num_heads];
        for chunk in images.chunks(500) {
            let h = model.features(chunk.to_tensor(&device));
            for (o, logits) in memberships
                .iter_mut()
                .zip(model.logits_of_features(h.clone()))
            {
                o.extend(tensor_to_vec(softmax(logits, 1).into_data())?);
            }
            features.extend(tensor_to_vec(h.into_data())?);
        }
        Ok(HeadsPass {
            features,
            memberships,
        })
    }
}

/// SCAN's unsupervised head selection: per head, consistency with the first `m` mined
/// neighbours minus the entropy of the mean prediction (weight 1, as SCAN's validation);
/// returns every head's loss, the lowest one's index and its memberships.
pub(crate) fn select_head(
    model: &ScanModel,
    images: &ImageBatch,
    neighbors: &Neighbors,
    m: usize,
    device: &Device,
) -> Result<HeadSelection> {
    let k = model.config().num_clusters;
    let n = images.len();
    let m = m.min(neighbors.k);
    let mut losses = Vec::new();
    let mut heads = HeadsPass::of(model, images, device)?.memberships;
    for p in &heads {
        let mut cons = 0.0f64;
        for i in 0..n {
            let pi = &p[i * k..(i + 1) * k];
            for &j in &neighbors.row(i)[1..=m] {
                let pj = &p[j as usize * k..(j as usize + 1) * k];
                let dot: f64 = pi
                    .iter()
                    .zip(pj)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum();
                cons -= dot.max(1e-30).ln().max(-100.0);
            }
        }
        cons /= (n * m) as f64;
        let mut pbar = vec![0.0f64; k];
        for row in p.chunks(k) {
            pbar.iter_mut()
                .zip(row)
                .for_each(|(s, v)| *s += *v as f64 / n as f64);
        }
        let entropy: f64 = pbar.iter().map(|q| -q.max(1e-8) * q.max(1e-8).ln()).sum();
        losses.push(cons - entropy);
    }
    let best = losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    Ok(HeadSelection {
        memberships: heads.swap_remove(best),
        losses,
        best,
    })
}

/// The outcome of [`select_head`].
pub(crate) struct HeadSelection {
    /// Every head's selection loss.
    pub(crate) losses: Vec<f64>,
    /// The head with the lowest.
    pub(crate) best: usize,
    /// Its memberships on the training set, row-major `[N, k]`.
    pub(crate) memberships: Vec<f32>,
}

/// The runner's evaluation of a heads model: the selected head's clusters and scores, with the
/// selected head and its selection loss as metrics.
pub(crate) fn heads_evaluation(
    model: &ScanModel,
    images: &ImageBatch,
    neighbors: &Neighbors,
    selection_neighbors: usize,
    labels: Option<&[usize]>,
    device: &Device,
) -> Result<Evaluation> {
    let sel = select_head(model, images, neighbors, selection_neighbors, device)?;
    let clusters =
        Evaluation::of_memberships(&sel.memberships, model.config().num_clusters, labels)?;
    Ok(Evaluation {
        metrics: vec![
            ("best head".into(), sel.best as f64),
            ("selection loss".into(), sel.losses[sel.best]),
        ],
        ..clusters
    })
}

/// Fine-tunes a trained heads model (every head; the selected head is kept) with `step` on `n`
/// images whose `neighbors` it uses (one row per image): a run of stage `stage` started from
/// `model`'s weights, on the run's training device.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finetune_heads(
    stage: &str,
    model: &ScanModel,
    n: usize,
    neighbors: &Neighbors,
    run: &RunConfig,
    fingerprint: serde_json::Value,
    step: &mut dyn TrainingStep<ScanModel>,
    device: &Device,
) -> Result<ScanModel> {
    if neighbors.n != n {
        return Err(ModelError::PretextMismatch(format!(
            "{} neighbour rows for {n} images",
            neighbors.n
        )));
    }
    let device_train = run.training_device(device);
    let start = model.valid().to_device(&device_train).unfreeze().train();
    let (tuned, _) = run_training(
        stage,
        start,
        n,
        run,
        fingerprint,
        step,
        &device_train,
        &mut |_| {},
    )?;
    Ok(tuned.valid())
}
