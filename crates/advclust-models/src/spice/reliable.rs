//! SPICE's reliable images: those whose prediction is confident and shared by almost all of
//! their nearest neighbours in embedding space, balanced across clusters; they label the
//! SPICE-Semi stage.

use advclust_core::SeededRng;
use burn::tensor::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::pretext::mine_neighbors;

/// How reliable images are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliableConfig {
    /// Neighbourhood size, the image itself included (100 in SPICE).
    pub neighbors: usize,
    /// Fraction of the neighbourhood that must share the image's prediction (0.99 in SPICE's
    /// CIFAR configs, 0.9 for STL-10).
    pub ratio: f64,
    /// The prediction's softmax must exceed this (0.99 in SPICE).
    pub score_threshold: f64,
}

impl ReliableConfig {
    /// SPICE's CIFAR settings: 100 neighbours, ratio 0.99, score 0.99.
    pub fn new() -> Self {
        ReliableConfig {
            neighbors: 100,
            ratio: 0.99,
            score_threshold: 0.99,
        }
    }

    pub(crate) fn validate(&self, n: usize) -> Result<()> {
        if self.neighbors < 2 || self.neighbors > n {
            return Err(ModelError::invalid(
                "reliable.neighbors",
                format!("need 2 <= neighbours <= n = {n}, got {}", self.neighbors),
            ));
        }
        for (name, v) in [
            ("reliable.ratio", self.ratio),
            ("reliable.score_threshold", self.score_threshold),
        ] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(ModelError::invalid(name, "must be in [0, 1)"));
            }
        }
        Ok(())
    }
}

impl Default for ReliableConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The reliable images and their cluster labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliableSet {
    /// Image indices, ascending.
    pub indices: Vec<usize>,
    /// The predicted cluster of each.
    pub labels: Vec<usize>,
    /// Reliable images per cluster before balancing.
    pub per_cluster: Vec<usize>,
}

/// Chooses the reliable images from memberships `[n, k]` and unit embeddings `[n, d]`
/// (row-major), then keeps the same number per cluster (the smallest cluster's, a seeded
/// choice).
///
/// Errors: a cluster with no reliable image (lower `ratio` or `score_threshold`).
pub fn reliable_samples(
    memberships: &[f32],
    embeddings: &[f32],
    n: usize,
    k: usize,
    config: &ReliableConfig,
    seed: u64,
    device: &Device,
) -> Result<ReliableSet> {
    config.validate(n)?;
    let neighbors = mine_neighbors(embeddings, n, config.neighbors - 1, device)?;
    let pred = advclust_core::argmax_rows(memberships, k);
    let need = config.ratio * config.neighbors as f64;
    let mut by_cluster: Vec<Vec<usize>> = vec![Vec::new(); k];
    for i in 0..n {
        let agree = neighbors
            .row(i)
            .iter()
            .filter(|&&j| pred[j as usize] == pred[i])
            .count();
        let score = memberships[i * k + pred[i]] as f64;
        if agree as f64 >= need && score > config.score_threshold {
            by_cluster[pred[i]].push(i);
        }
    }
    let per_cluster: Vec<usize> = by_cluster.iter().map(Vec::len).collect();
    let keep = per_cluster.iter().copied().min().unwrap_or(0);
    if keep == 0 {
        return Err(ModelError::invalid(
            "reliable",
            format!(
                "a cluster has no reliable image (per cluster: {per_cluster:?}); lower the \
                 neighbour ratio ({}) or the score threshold ({})",
                config.ratio, config.score_threshold
            ),
        ));
    }
    let mut rng = SeededRng::seed_from_u64(seed);
    let mut chosen: Vec<(usize, usize)> = Vec::with_capacity(keep * k);
    for (c, mut members) in by_cluster.into_iter().enumerate() {
        members.shuffle(&mut rng);
        chosen.extend(members.into_iter().take(keep).map(|i| (i, c)));
    }
    chosen.sort_unstable();
    Ok(ReliableSet {
        indices: chosen.iter().map(|p| p.0).collect(),
        labels: chosen.iter().map(|p| p.1).collect(),
        per_cluster,
    })
}
