//! Soft cluster memberships: an n x k row-stochastic matrix.

use burn::tensor::{Device, Tensor, TensorData};

use crate::batch::checked_product;
use crate::error::{CoreError, Result, check_finite};

/// Rows must sum to one within this tolerance (f32 softmax outputs drift by ~1e-6).
pub const ROW_SUM_TOLERANCE: f32 = 1e-3;

/// A cluster id as returned by a label oracle or by [`Memberships::labels`].
pub type ClusterId = usize;

/// Validated soft memberships: `n` rows of `k` non-negative values summing to one.
///
/// ```
/// use advclust_core::Memberships;
/// let m = Memberships::new(vec![0.9, 0.1, 0.2, 0.8], 2, 2).unwrap();
/// assert_eq!(m.labels(), vec![0, 1]);
/// assert!(Memberships::new(vec![0.9, 0.9], 1, 2).is_err()); // row sums to 1.8
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Memberships {
    data: Vec<f32>,
    n: usize,
    k: usize,
}

impl Memberships {
    /// Builds memberships from a row-major `n x k` buffer, validating every row.
    pub fn new(data: Vec<f32>, n: usize, k: usize) -> Result<Self> {
        if n == 0 {
            return Err(CoreError::EmptyDimension("number of samples"));
        }
        if k == 0 {
            return Err(CoreError::EmptyDimension("number of clusters"));
        }
        let expected = checked_product(&[n, k]).ok_or(CoreError::SizeOverflow {
            what: "Memberships",
            dims: vec![n, k],
        })?;
        if data.len() != expected {
            return Err(CoreError::ShapeMismatch {
                what: "Memberships",
                expected,
                actual: data.len(),
            });
        }
        check_finite("Memberships", &data)?;
        for (row, values) in data.chunks(k).enumerate() {
            let sum: f32 = values.iter().sum();
            let min = values.iter().copied().fold(f32::INFINITY, f32::min);
            if min < 0.0 || (sum - 1.0).abs() > ROW_SUM_TOLERANCE {
                return Err(CoreError::NotADistribution { row, sum, min });
            }
        }
        Ok(Memberships { data, n, k })
    }

    /// Applies a numerically stable softmax to each row of `n x k` logits.
    pub fn from_logits(logits: &[f32], n: usize, k: usize) -> Result<Self> {
        if k == 0 {
            return Err(CoreError::EmptyDimension("number of clusters"));
        }
        let expected = checked_product(&[n, k]).ok_or(CoreError::SizeOverflow {
            what: "Memberships::from_logits",
            dims: vec![n, k],
        })?;
        if logits.len() != expected {
            return Err(CoreError::ShapeMismatch {
                what: "Memberships::from_logits",
                expected,
                actual: logits.len(),
            });
        }
        check_finite("logits", logits)?;
        let mut data = Vec::with_capacity(logits.len());
        for row in logits.chunks(k) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let start = data.len();
            data.extend(row.iter().map(|v| (v - max).exp()));
            let sum: f32 = data[start..].iter().sum();
            data[start..].iter_mut().for_each(|v| *v /= sum);
        }
        Self::new(data, n, k)
    }

    /// Reads an `[n, k]` tensor back to the host and validates it.
    pub fn from_tensor(tensor: Tensor<2>) -> Result<Self> {
        let [n, k] = tensor.dims();
        Self::new(crate::tensor_to_vec(tensor.into_data())?, n, k)
    }

    /// Number of samples (rows).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of clusters (columns).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Row-major values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The memberships of sample `i`.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.data.get(i * self.k..(i + 1) * self.k)
    }

    /// Hard assignment of each sample: the argmax of its row (first maximum on ties).
    pub fn labels(&self) -> Vec<ClusterId> {
        argmax_rows(&self.data, self.k)
    }

    /// Checks that these memberships have `k` clusters.
    pub fn expect_clusters(&self, k: usize) -> Result<()> {
        if self.k != k {
            return Err(CoreError::ClusterCountMismatch {
                expected: k,
                actual: self.k,
            });
        }
        Ok(())
    }

    /// Checks that these memberships have `n` rows.
    pub fn expect_samples(&self, n: usize) -> Result<()> {
        if self.n != n {
            return Err(CoreError::SampleCountMismatch {
                expected: n,
                actual: self.n,
            });
        }
        Ok(())
    }

    /// Stacks memberships of equal `k` row-wise.
    pub fn concat(parts: &[Memberships]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or(CoreError::EmptyDimension("number of samples"))?;
        let mut data = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
        for p in parts {
            p.expect_clusters(first.k)?;
            data.extend_from_slice(&p.data);
        }
        let n = parts.iter().map(|p| p.n).sum();
        Ok(Memberships {
            data,
            n,
            k: first.k,
        })
    }

    /// Uploads as an `[n, k]` tensor.
    pub fn to_tensor(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.data.clone(), [self.n, self.k]), device)
    }
}

/// Argmax of each row of a row-major `n x k` matrix (first maximum on ties; an empty slice
/// or `k = 0` gives no rows).
///
/// ```
/// assert_eq!(advclust_core::argmax_rows(&[0.1, 0.9, 0.5, 0.5], 2), vec![1, 0]);
/// ```
pub fn argmax_rows(values: &[f32], k: usize) -> Vec<ClusterId> {
    if k == 0 {
        return Vec::new();
    }
    values
        .chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (j, &v)| {
                    if v > best.1 { (j, v) } else { best }
                })
                .0
        })
        .collect()
}
