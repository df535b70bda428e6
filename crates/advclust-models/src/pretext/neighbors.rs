//! Exact nearest-neighbour mining by cosine similarity, in blocks so that memory stays
//! `O(block * n)` (a 60,000-image set never builds the 60,000 x 60,000 matrix).

use advclust_core::SeededRng;
use burn::tensor::{Device, Tensor, TensorData};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// File name of the neighbours saved with a pretext.
pub const NEIGHBORS_FILE: &str = "neighbors.json";
/// Rows of the similarity matrix computed at once.
const BLOCK_ROWS: usize = 512;

/// The `k` nearest neighbours of every image: row `i` is `[i, n_1, ..., n_k]` (the image itself
/// first, as SCAN stores it, then its neighbours by decreasing similarity; ties by index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbors {
    /// Images.
    pub n: usize,
    /// Neighbours per image (the image itself not counted).
    pub k: usize,
    /// Row-major `[n, k + 1]` indices.
    pub indices: Vec<u32>,
}

impl Neighbors {
    /// Row `i`: the image itself, then its `k` neighbours.
    pub fn row(&self, i: usize) -> &[u32] {
        let w = self.k + 1;
        &self.indices[i * w..(i + 1) * w]
    }

    /// Checks the sizes and that every index is below `n` (for data read from a file).
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| ModelError::BadDescription {
            origin: origin.to_string(),
            message,
        };
        if self.k == 0 || self.n <= self.k {
            return Err(bad(format!(
                "k = {} neighbours of {} images",
                self.k, self.n
            )));
        }
        let expected = self
            .n
            .checked_mul(self.k + 1)
            .ok_or_else(|| bad("n * (k + 1) overflows".into()))?;
        if self.indices.len() != expected {
            return Err(bad(format!(
                "{} indices for {} images x {} (expected {expected})",
                self.indices.len(),
                self.n,
                self.k + 1
            )));
        }
        if self.indices.iter().any(|&i| i as usize >= self.n) {
            return Err(bad(format!("an index is not below n = {}", self.n)));
        }
        Ok(())
    }

    /// One partner per image of `batch`, drawn uniformly from its row (the image itself
    /// included, as SCAN draws from its k + 1 stored indices).
    pub fn random_partners(&self, batch: &[usize], rng: &mut SeededRng) -> Vec<usize> {
        batch
            .iter()
            .map(|&i| {
                let row = self.row(i);
                row[rng.random_range(0..row.len())] as usize
            })
            .collect()
    }

    /// Fraction of (anchor, neighbour) pairs with the same label (the image itself excluded),
    /// SCAN's measure of how good the neighbours are.
    pub fn label_agreement(&self, labels: &[usize]) -> Result<f64> {
        if labels.len() != self.n {
            return Err(ModelError::LabelCount {
                images: self.n,
                labels: labels.len(),
            });
        }
        let mut same = 0usize;
        for i in 0..self.n {
            same += self.row(i)[1..]
                .iter()
                .filter(|&&j| labels[j as usize] == labels[i])
                .count();
        }
        Ok(same as f64 / (self.n * self.k) as f64)
    }
}

/// Mines the `k` nearest neighbours of each of the `n` rows of `features` (row-major `[n, d]`)
/// by cosine similarity (rows are L2-normalised here), exactly, `BLOCK_ROWS` rows at a time on
/// `device` (autodiff dropped).
pub fn mine_neighbors(features: &[f32], n: usize, k: usize, device: &Device) -> Result<Neighbors> {
    if n == 0 || k == 0 || k >= n {
        return Err(ModelError::invalid(
            "num_neighbors",
            format!("need 1 <= k < n, got k = {k} for n = {n}"),
        ));
    }
    if !features.len().is_multiple_of(n) {
        return Err(ModelError::invalid(
            "features",
            format!("{} values do not split into {n} rows", features.len()),
        ));
    }
    if n > u32::MAX as usize {
        return Err(ModelError::invalid("features", "more than 2^32 rows"));
    }
    let d = features.len() / n;
    let mut unit = features.to_vec();
    crate::norm::l2_normalize_host_rows(&mut unit, d);
    let device = device.clone().inner();
    let all = Tensor::<2>::from_data(TensorData::new(unit.clone(), [n, d]), &device);
    let all_t = all.transpose();
    let mut indices = Vec::with_capacity(n * (k + 1));
    let mut order: Vec<u32> = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK_ROWS) {
        let rows = BLOCK_ROWS.min(n - start);
        let block = Tensor::<2>::from_data(
            TensorData::new(unit[start * d..(start + rows) * d].to_vec(), [rows, d]),
            &device,
        );
        let sim = advclust_core::tensor_to_vec(block.matmul(all_t.clone()).into_data())?;
        for r in 0..rows {
            let i = start + r;
            let s = &sim[r * n..(r + 1) * n];
            order.clear();
            order.extend((0..n as u32).filter(|&j| j as usize != i));
            let by_sim = |a: &u32, b: &u32| {
                s[*b as usize]
                    .total_cmp(&s[*a as usize])
                    .then_with(|| a.cmp(b))
            };
            order.select_nth_unstable_by(k - 1, by_sim);
            order[..k].sort_unstable_by(by_sim);
            indices.push(i as u32);
            indices.extend_from_slice(&order[..k]);
        }
    }
    Ok(Neighbors { n, k, indices })
}
