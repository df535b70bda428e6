//! RUC's clean / noisy split: an image's pseudo-label is trusted when the base model is
//! confident about it and its pretext-embedding neighbours mostly agree.

use crate::error::{ModelError, Result};

/// The outcome of [`clean_split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanSplit {
    /// Whether each image is clean.
    pub mask: Vec<bool>,
    /// Images the base model was confident about.
    pub confident: usize,
    /// Images whose neighbours' vote agreed with their label.
    pub vote_agreed: usize,
    /// Images made clean by the per-cluster floor rather than by both tests.
    pub topped_up: usize,
}

/// RUC's clean / noisy split of `n` pseudo-labels: clean iff the base model's confidence is at
/// least `threshold` and the most common label among each image's voters (row `i` of
/// `voters`, the image itself first) is its own (ties go to the smaller label).
///
/// Then a floor RUC does not have: a base cluster with fewer than `min_per_cluster` clean
/// images is topped up with its most confident remaining images, those the vote agreed with
/// first (ties by index). RUC's GPU base models are confident in every cluster; a weaker base
/// can have a cluster with no confident image, which then has no clean label and stays empty
/// (Fashion-MNIST's SCAN lost two of ten this way). `0` turns the floor off.
///
/// Errors: confidences or voter rows not one per label, a label not below `k`, a voter index
/// out of range, a non-finite confidence.
pub fn clean_split(
    labels: &[usize],
    confidence: &[f32],
    voters: &crate::pretext::Neighbors,
    k: usize,
    threshold: f64,
    min_per_cluster: usize,
) -> Result<CleanSplit> {
    let n = labels.len();
    if confidence.len() != n || voters.n != n {
        return Err(ModelError::LabelCount {
            images: confidence.len().max(voters.n),
            labels: n,
        });
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(ModelError::InvalidConfig {
            name: "labels",
            reason: format!("pseudo-label {bad} is not below k = {k}"),
        });
    }
    if let Some(&bad) = voters.indices.iter().find(|&&j| j as usize >= n) {
        return Err(ModelError::InvalidConfig {
            name: "voters",
            reason: format!("neighbour index {bad} is not below n = {n}"),
        });
    }
    if confidence.iter().any(|c| !c.is_finite()) {
        return Err(ModelError::InvalidConfig {
            name: "confidence",
            reason: "a confidence is not finite".into(),
        });
    }
    let mut votes = vec![0usize; k];
    let (mut confident, mut vote_agreed) = (0, 0);
    let vote_ok: Vec<bool> = (0..n)
        .map(|i| {
            votes.iter_mut().for_each(|v| *v = 0);
            for &j in voters.row(i) {
                votes[labels[j as usize]] += 1;
            }
            let top = (0..k).max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)));
            top == Some(labels[i])
        })
        .collect();
    let mut mask: Vec<bool> = (0..n)
        .map(|i| {
            let conf_ok = confidence[i] as f64 >= threshold;
            confident += usize::from(conf_ok);
            vote_agreed += usize::from(vote_ok[i]);
            conf_ok && vote_ok[i]
        })
        .collect();
    let mut clean_in = vec![0usize; k];
    for (&c, &l) in mask.iter().zip(labels) {
        clean_in[l] += usize::from(c);
    }
    let mut topped_up = 0;
    for cluster in (0..k).filter(|&c| clean_in[c] < min_per_cluster) {
        let mut candidates: Vec<usize> = (0..n)
            .filter(|&i| labels[i] == cluster && !mask[i])
            .collect();
        candidates.sort_by(|&a, &b| {
            vote_ok[b]
                .cmp(&vote_ok[a])
                .then(confidence[b].total_cmp(&confidence[a]))
                .then(a.cmp(&b))
        });
        for &i in candidates.iter().take(min_per_cluster - clean_in[cluster]) {
            mask[i] = true;
            topped_up += 1;
        }
    }
    Ok(CleanSplit {
        mask,
        confident,
        vote_agreed,
        topped_up,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four images, each voting with itself and one neighbour.
    fn voters() -> crate::pretext::Neighbors {
        crate::pretext::Neighbors {
            n: 4,
            k: 1,
            indices: vec![0, 1, 1, 0, 2, 3, 3, 2],
        }
    }

    #[test]
    fn clean_split_needs_confidence_and_the_vote() {
        let labels = [0, 0, 1, 0];
        let confidence = [0.999, 0.5, 0.999, 0.999];
        let split = clean_split(&labels, &confidence, &voters(), 2, 0.99, 0).unwrap();
        // 0: confident, votes {0,0} -> clean; 1: not confident; 2: votes {1,0} tie -> 0 != 1;
        // 3: votes {0,1} tie -> 0 == 0, confident -> clean.
        assert_eq!(split.mask, vec![true, false, false, true]);
        assert_eq!(
            (split.confident, split.vote_agreed, split.topped_up),
            (3, 3, 0)
        );
    }

    #[test]
    fn the_floor_tops_up_a_cluster_without_a_clean_image() {
        // Cluster 1 is image 2 alone, which fails the vote: with a floor of 1 it is clean, and
        // cluster 0 (two clean images) is left alone.
        let labels = [0, 0, 1, 0];
        let confidence = [0.999, 0.5, 0.999, 0.999];
        let split = clean_split(&labels, &confidence, &voters(), 2, 0.99, 1).unwrap();
        assert_eq!(split.mask, vec![true, false, true, true]);
        assert_eq!(split.topped_up, 1);
        // A floor of 3 adds cluster 0's one remaining image as well; cluster 1 has no more.
        let split = clean_split(&labels, &confidence, &voters(), 2, 0.99, 3).unwrap();
        assert_eq!(split.mask, vec![true; 4]);
        assert_eq!(split.topped_up, 2);
    }

    #[test]
    fn the_floor_prefers_vote_agreed_then_confident_images() {
        // One label, so every vote agrees: the two most confident images.
        let split = clean_split(&[0; 4], &[0.2, 0.3, 0.9, 0.1], &voters(), 2, 0.99, 2).unwrap();
        assert_eq!(split.mask, vec![false, true, true, false]);
        // Cluster 1 = {1, 2, 3}; image 1's vote ({1, 0}, a tie) goes to 0, so although it is
        // the most confident, image 3 (agreed, 0.3) comes first. Cluster 0 = {0}.
        let confidence = [0.1, 0.95, 0.2, 0.3];
        let split = clean_split(&[0, 1, 1, 1], &confidence, &voters(), 2, 0.99, 1).unwrap();
        assert_eq!(split.mask, vec![true, false, false, true]);
        assert_eq!(
            (split.confident, split.vote_agreed, split.topped_up),
            (0, 3, 2)
        );
    }

    #[test]
    fn clean_split_refuses_inconsistent_inputs() {
        let confidence = [0.999; 4];
        assert!(matches!(
            clean_split(&[0, 0, 1], &confidence, &voters(), 2, 0.99, 0),
            Err(ModelError::LabelCount { .. })
        ));
        assert!(matches!(
            clean_split(&[0, 0, 2, 0], &confidence, &voters(), 2, 0.99, 0),
            Err(ModelError::InvalidConfig { name: "labels", .. })
        ));
        let mut bad = voters();
        bad.indices[3] = 9;
        assert!(matches!(
            clean_split(&[0, 0, 1, 0], &confidence, &bad, 2, 0.99, 0),
            Err(ModelError::InvalidConfig { name: "voters", .. })
        ));
        assert!(matches!(
            clean_split(
                &[0, 0, 1, 0],
                &[0.9, f32::NAN, 0.9, 0.9],
                &voters(),
                2,
                0.99,
                0
            ),
            Err(ModelError::InvalidConfig {
                name: "confidence",
                ..
            })
        ));
    }
}
