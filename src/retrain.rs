//! Adversarial retraining (the paper's footnote 12, not evaluated there): alternate rounds of
//! (i) a generator trained against the victim, (ii) the victim fine-tuned with its own
//! clustering loss on a mix of clean and generator-perturbed images (labels never used), and
//! (iii) a fresh generator against the fine-tuned victim. Each round reports the victim's clean
//! scores, its scores under the previous round's generator (did it learn to resist that one?)
//! and under the fresh generator (is it robust?).

use std::time::Instant;

use advclust_core::{ClusterOracle, DifferentiableClusterModel, ImageBatch, ModelOracle};
use advclust_gan::{AttackTrainer, TrainedAttack};
use advclust_metrics::ClusteringScores;
use advclust_models::norm::l2_normalize_host_rows;
use advclust_models::pretext::{Neighbors, mine_neighbors};
use advclust_models::runner::RunConfig;
use advclust_models::{
    AugmentConfig, CcTrainConfig, MiceTrainConfig, NnmTrainConfig, ReliableConfig, ReliableSet,
    RucTrainConfig, ScanTrainConfig, SpiceTrainConfig, Victim, clean_split, finetune_cc,
    finetune_mice, finetune_nnm, finetune_ruc, finetune_scan, finetune_spice, fit_mixture,
    reliable_samples,
};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How the victim is fine-tuned each round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainSettings {
    /// Rounds of fine-tuning (round 0, the victim as given, is always measured).
    pub rounds: usize,
    /// Fine-tuning epochs per round over the mixed set.
    pub finetune_epochs: usize,
    /// Fine-tuning batch size.
    pub batch_size: usize,
    /// Fine-tuning learning rate (Adam).
    pub learning_rate: f64,
    /// Seed of the fine-tuning (shuffles, augmentations).
    pub seed: u64,
    /// Name of the dataset (recorded in the fine-tuned victim's training summary).
    pub dataset: String,
    /// Augmentations of the fine-tuning views (the victim's training preset).
    pub augment: AugmentConfig,
    /// Neighbours per image: those of SCAN's and NNM's losses (mined on the victim's own
    /// features of the clean images), and SPICE's reliable-set neighbourhood (the image itself
    /// included; SPICE uses 100 on 50,000 images).
    pub neighbors: usize,
}

impl RetrainSettings {
    /// The fine-tuning run's epochs, batch, learning rate and seed (no evaluation, no
    /// checkpoints), into a victim's training run configuration.
    fn apply_to(&self, run: &mut RunConfig) {
        run.epochs = self.finetune_epochs;
        run.batch_size = self.batch_size;
        run.learning_rate = self.learning_rate;
        run.seed = self.seed;
        run.eval_every = 0;
        run.checkpoint_dir = None;
    }
}

/// One round of retraining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainRound {
    /// 0 for the victim as given.
    pub round: usize,
    /// The victim's clean scores.
    pub clean: ClusteringScores,
    /// Its scores under the generator of the previous round (the one it was fine-tuned
    /// against); absent in round 0.
    pub previous_generator: Option<ClusteringScores>,
    /// Its scores under a fresh generator trained against it.
    pub fresh_generator: ClusteringScores,
    /// `1 - fresh NMI / clean NMI`.
    pub relative_nmi_drop: f64,
    /// Fine-tuning wall time, seconds (0 in round 0).
    pub finetune_seconds: f64,
    /// The fresh generator's training wall time, seconds.
    pub attack_seconds: f64,
}

/// Fine-tunes `victim` with its own clustering loss on `mixed`, the `n` clean images followed
/// by their `n` perturbed copies (labels never used), every kind the way it was trained:
/// - CC: its instance and cluster contrastive losses on the `2n` images;
/// - SCAN and NNM: their neighbour losses (every head), the neighbours of a clean image mined on
///   the victim's own features of the clean images, and those of a perturbed copy its clean
///   twin and the clean image's neighbours (so the loss asks a perturbed image to be clustered
///   with what its clean version is close to);
/// - SPICE: SPICE-Semi (FixMatch) on the reliable clean images, chosen by SPICE's rule from the
///   victim's own memberships and features, each perturbed copy of one labelled with its clean
///   twin's cluster;
/// - MiCE: its ELBO and M-step, teacher, queue and prototypes continuing from the victim's;
/// - RUC: its co-training, the victim itself as the base model (its predictions, confidence and
///   neighbour vote on the clean images; a perturbed copy labelled as its clean twin);
/// - the mixtures (GMM, soft k-means): refitted on the `2n` images (PCA, k-means, EM) with the
///   same configuration; they have no gradient steps to continue.
pub fn finetune_victim(
    victim: &Victim,
    mixed: &ImageBatch,
    settings: &RetrainSettings,
    device: &Device,
) -> Result<Victim, Error> {
    let dataset = format!("{} (clean + adversarial)", settings.dataset);
    let channels = mixed.image_shape()[0];
    match victim {
        Victim::Cc(model) => {
            let mut config = CcTrainConfig::new(model.config().clone());
            config.dataset = dataset;
            config.augment = settings.augment.clone();
            settings.apply_to(&mut config.run);
            let (tuned, _) = finetune_cc(model, &config, mixed, None, device, &mut |_| {})?;
            Ok(Victim::Cc(tuned.valid()))
        }
        Victim::Scan(model) => {
            let clean = clean_half(mixed)?;
            let neighbors = twin_neighbors(&clean_neighbors(victim, &clean, settings, device)?);
            let mut config = ScanTrainConfig::new(model.num_clusters(), channels);
            config.dataset = dataset;
            config.num_heads = model.config().num_heads;
            config.augment = settings.augment.clone();
            config.selflabel = None;
            settings.apply_to(&mut config.run);
            let tuned = finetune_scan(model, &config, mixed, &neighbors, device)?;
            Ok(Victim::Scan(tuned))
        }
        Victim::Nnm(model) => {
            let clean = clean_half(mixed)?;
            let neighbors = twin_neighbors(&clean_neighbors(victim, &clean, settings, device)?);
            let mut config = NnmTrainConfig::new(model.config().num_clusters, channels);
            config.dataset = dataset;
            config.num_heads = model.config().num_heads;
            config.num_neighbors = settings.neighbors;
            config.augment = settings.augment.clone();
            settings.apply_to(&mut config.run);
            let tuned = finetune_nnm(model, &config, mixed, &neighbors, device)?;
            Ok(Victim::Nnm(tuned))
        }
        Victim::Spice(model) => {
            let clean = clean_half(mixed)?;
            let k = model.config().num_clusters;
            let config = SpiceTrainConfig::new(k, channels).with_augment(settings.augment.clone());
            let mut semi = config
                .semi
                .ok_or_else(|| Error::InvalidArgument("SPICE's preset has no Semi stage".into()))?;
            settings.apply_to(&mut semi.run);
            let memberships = ModelOracle::new(victim, device)
                .memberships(&clean)?
                .data()
                .to_vec();
            let embeddings = unit_features(victim, &clean, device)?;
            let reliable = reliable_samples(
                &memberships,
                &embeddings,
                clean.len(),
                k,
                &ReliableConfig {
                    neighbors: settings.neighbors,
                    ..ReliableConfig::new()
                },
                settings.seed,
                device,
            )?;
            let tuned = finetune_spice(
                model,
                &semi,
                &twin_reliable(&reliable, clean.len()),
                mixed,
                device,
            )?;
            Ok(Victim::Spice(tuned))
        }
        Victim::Mixture(model) => {
            let (tuned, _) = fit_mixture(mixed, model.config(), settings.seed, device)?;
            Ok(Victim::Mixture(tuned))
        }
        Victim::Mice(model) => {
            let mut config = MiceTrainConfig::new(model.config().num_clusters, channels);
            config.dataset = dataset;
            config.augment = settings.augment.clone();
            settings.apply_to(&mut config.run);
            Ok(Victim::Mice(finetune_mice(model, &config, mixed, device)?))
        }
        Victim::Ruc(model) => {
            // RUC's own split, with the victim as its base: its predictions on the clean images,
            // their confidence, and the vote of their neighbours on its features; each
            // perturbed copy takes its clean twin's label and side of the split.
            let clean = clean_half(mixed)?;
            let k = model.config().num_clusters;
            let memberships = ModelOracle::new(victim, device)
                .memberships(&clean)?
                .data()
                .to_vec();
            let labels = advclust_core::argmax_rows(&memberships, k);
            let confidence: Vec<f32> = memberships
                .chunks_exact(k)
                .map(|r| r.iter().copied().fold(0.0, f32::max))
                .collect();
            let voters = clean_neighbors(victim, &clean, settings, device)?;
            let mut config = RucTrainConfig::new(settings.augment.clone());
            config.dataset = dataset;
            config.vote_neighbors = settings.neighbors + 1;
            settings.apply_to(&mut config.run);
            let split = clean_split(
                &labels,
                &confidence,
                &voters,
                k,
                config.confidence_threshold,
                config.min_clean_per_cluster,
            )?
            .mask;
            let twice = |v: &[usize]| [v, v].concat();
            let tuned = finetune_ruc(
                model,
                &config,
                mixed,
                twice(&labels),
                [split.clone(), split].concat(),
                device,
            )?;
            Ok(Victim::Ruc(tuned))
        }
    }
}

/// The `n` clean images of a mixed set of `2n`.
fn clean_half(mixed: &ImageBatch) -> Result<ImageBatch, Error> {
    let n = mixed.len() / 2;
    if n == 0 || mixed.len() != 2 * n {
        return Err(Error::InvalidArgument(format!(
            "retraining mixes n clean and n perturbed images; got {}",
            mixed.len()
        )));
    }
    Ok(mixed.select(&(0..n).collect::<Vec<_>>())?)
}

/// The victim's own features of `clean`, each row L2-normalised, row-major.
fn unit_features(victim: &Victim, clean: &ImageBatch, device: &Device) -> Result<Vec<f32>, Error> {
    let extractor = advclust_defense::VictimFeatures::new(victim, device);
    let f = advclust_defense::extract(&extractor, clean)?;
    let mut values: Vec<f32> = f.values.iter().map(|&v| v as f32).collect();
    l2_normalize_host_rows(&mut values, f.dim);
    Ok(values)
}

/// The reliable set of `2n` images from that of the `n` clean ones: each reliable clean image's
/// perturbed copy `n + i` joins it with the same label.
fn twin_reliable(clean: &ReliableSet, n: usize) -> ReliableSet {
    let mut pairs: Vec<(usize, usize)> = clean
        .indices
        .iter()
        .zip(&clean.labels)
        .flat_map(|(&i, &c)| [(i, c), (n + i, c)])
        .collect();
    pairs.sort_unstable();
    ReliableSet {
        indices: pairs.iter().map(|p| p.0).collect(),
        labels: pairs.iter().map(|p| p.1).collect(),
        per_cluster: clean.per_cluster.iter().map(|c| 2 * c).collect(),
    }
}

/// Neighbours of the clean images on the victim's own L2-normalised features.
fn clean_neighbors(
    victim: &Victim,
    clean: &ImageBatch,
    settings: &RetrainSettings,
    device: &Device,
) -> Result<Neighbors, Error> {
    Ok(mine_neighbors(
        &unit_features(victim, clean, device)?,
        clean.len(),
        settings.neighbors,
        device,
    )?)
}

/// Neighbours of `2n` images from those of the `n` clean ones: a clean image keeps its row; its
/// perturbed copy `n + i` has its clean twin `i` first, then the clean image's neighbours but
/// the last.
fn twin_neighbors(clean: &Neighbors) -> Neighbors {
    let (n, k) = (clean.n, clean.k);
    let mut indices = clean.indices.clone();
    for i in 0..n {
        let row = clean.row(i);
        indices.push((n + i) as u32);
        indices.push(i as u32);
        indices.extend_from_slice(&row[1..k]);
    }
    Neighbors {
        n: 2 * n,
        k,
        indices,
    }
}

/// Runs `settings.rounds` rounds of retraining from `victim` and `attack` (the round-0
/// generator, whose configuration every fresh generator reuses, trained on `attack_train`);
/// `images` / `labels` are the evaluation and fine-tuning set. Returns the rounds and the
/// final victim.
pub fn adversarial_retraining(
    victim: Victim,
    attack: TrainedAttack,
    (images, labels): (&ImageBatch, &[usize]),
    attack_train: &ImageBatch,
    settings: &RetrainSettings,
    device: &Device,
    on_round: &mut dyn FnMut(&RetrainRound),
) -> Result<(Vec<RetrainRound>, Victim), Error> {
    let score = |victim: &Victim, a: &mut TrainedAttack| -> Result<_, Error> {
        let mut oracle = ModelOracle::new(victim, device);
        Ok(a.evaluate(&mut oracle, images, labels)?)
    };
    let (mut victim, mut generator) = (victim, attack);
    let first = score(&victim, &mut generator)?;
    let mut rounds = vec![round_of(0, first.clean, None, first.adversarial, 0.0, 0.0)];
    on_round(&rounds[0]);
    for round in 1..=settings.rounds {
        let started = Instant::now();
        let perturbed = generator.perturb(images)?;
        let mixed = ImageBatch::concat(&[images.clone(), perturbed])?;
        victim = finetune_victim(&victim, &mixed, settings, device)?;
        let finetune_seconds = started.elapsed().as_secs_f64();
        let previous = score(&victim, &mut generator)?;
        let started = Instant::now();
        let mut fresh =
            AttackTrainer::new(generator.config(), device).fit_model(&victim, attack_train)?;
        let attack_seconds = started.elapsed().as_secs_f64();
        let fresh_scores = score(&victim, &mut fresh)?;
        rounds.push(round_of(
            round,
            fresh_scores.clean,
            Some(previous.adversarial),
            fresh_scores.adversarial,
            finetune_seconds,
            attack_seconds,
        ));
        on_round(&rounds[round]);
        generator = fresh;
    }
    Ok((rounds, victim))
}

fn round_of(
    round: usize,
    clean: ClusteringScores,
    previous_generator: Option<ClusteringScores>,
    fresh_generator: ClusteringScores,
    finetune_seconds: f64,
    attack_seconds: f64,
) -> RetrainRound {
    RetrainRound {
        round,
        relative_nmi_drop: if clean.nmi > 0.0 {
            1.0 - fresh_generator.nmi / clean.nmi
        } else {
            0.0
        },
        clean,
        previous_generator,
        fresh_generator,
        finetune_seconds,
        attack_seconds,
    }
}

/// The Markdown table of a retraining run.
pub fn retrain_markdown(rounds: &[RetrainRound]) -> String {
    let mut md = String::from(
        "| round | clean NMI | clean ARI | clean ACC | NMI under previous G | NMI under fresh G | \
         ARI under fresh G | ACC under fresh G | NMI drop | fine-tune s | attack s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rounds {
        let previous = r
            .previous_generator
            .map_or("-".to_string(), |s| format!("{:.4}", s.nmi));
        md += &format!(
            "| {} | {:.4} | {:.4} | {:.4} | {previous} | {:.4} | {:.4} | {:.4} | {:.1} % | {:.0} | {:.0} |\n",
            r.round,
            r.clean.nmi,
            r.clean.ari,
            r.clean.acc,
            r.fresh_generator.nmi,
            r.fresh_generator.ari,
            r.fresh_generator.acc,
            100.0 * r.relative_nmi_drop,
            r.finetune_seconds,
            r.attack_seconds,
        );
    }
    md
}
