//! RUC's clean / noisy split: an image's pseudo-label is trusted when the base model is
//! confident about it and its pretext-embedding neighbours mostly agree.

use crate::error::{ModelError, Result};

/// RUC's clean / noisy split of `n` pseudo-labels: clean iff the base model's confidence is at
/// least `threshold` and the most common label among each image's voters (row `i` of
/// `voters`, the image itself first) is its own (ties go to the smaller label). Returns the
/// mask and the counts (confident, vote agreed).
///
/// Errors: confidences or voter rows not one per label, a label not below `k`, a voter index
/// out of range.
pub fn clean_split(
    labels: &[usize],
    confidence: &[f32],
    voters: &crate::pretext::Neighbors,
    k: usize,
    threshold: f64,
) -> Result<(Vec<bool>, usize, usize)> {
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
    let mut votes = vec![0usize; k];
    let (mut confident, mut agreed) = (0, 0);
    let mask = (0..labels.len())
        .map(|i| {
            votes.iter_mut().for_each(|v| *v = 0);
            for &j in voters.row(i) {
                votes[labels[j as usize]] += 1;
            }
            let top = (0..k).max_by(|&a, &b| votes[a].cmp(&votes[b]).then(b.cmp(&a)));
            let vote_ok = top == Some(labels[i]);
            let conf_ok = confidence[i] as f64 >= threshold;
            confident += usize::from(conf_ok);
            agreed += usize::from(vote_ok);
            conf_ok && vote_ok
        })
        .collect();
    Ok((mask, confident, agreed))
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
        let (mask, confident, agreed) =
            clean_split(&labels, &confidence, &voters(), 2, 0.99).unwrap();
        // 0: confident, votes {0,0} -> clean; 1: not confident; 2: votes {1,0} tie -> 0 != 1;
        // 3: votes {0,1} tie -> 0 == 0, confident -> clean.
        assert_eq!(mask, vec![true, false, false, true]);
        assert_eq!((confident, agreed), (3, 3));
    }

    #[test]
    fn clean_split_refuses_inconsistent_inputs() {
        let confidence = [0.999; 4];
        assert!(matches!(
            clean_split(&[0, 0, 1], &confidence, &voters(), 2, 0.99),
            Err(ModelError::LabelCount { .. })
        ));
        assert!(matches!(
            clean_split(&[0, 0, 2, 0], &confidence, &voters(), 2, 0.99),
            Err(ModelError::InvalidConfig { name: "labels", .. })
        ));
        let mut bad = voters();
        bad.indices[3] = 9;
        assert!(matches!(
            clean_split(&[0, 0, 1, 0], &confidence, &bad, 2, 0.99),
            Err(ModelError::InvalidConfig { name: "voters", .. })
        ));
    }
}
