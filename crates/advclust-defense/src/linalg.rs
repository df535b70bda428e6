//! Dense linear algebra of the defenses, on [`faer`] (pure Rust, the fastest of the maintained
//! Rust linear-algebra crates, and its GEMM is the `gemm` crate burn's flex backend already
//! builds): the pseudo-inverse quadratic form of a covariance, and PCA (randomised, Halko et
//! al. 2011, or exact by a thin SVD).

use advclust_core::SeededRng;
use faer::{Mat, Side};
use serde::{Deserialize, Serialize};

use crate::error::{DefenseError, Result};

/// NumPy's default `rcond` of `pinv`: singular values at most this times the largest are zero.
pub const PINV_RCOND: f64 = 1e-15;

/// A `rows x cols` faer matrix of row-major `data`.
pub(crate) fn mat_from_rows(data: &[f64], rows: usize, cols: usize) -> Mat<f64> {
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// The quadratic form `x -> x^T pinv(S) x` of a symmetric positive semi-definite `S`, stored as
/// its eigenvectors and eigenvalues above NumPy's cutoff (`pinv(S) = V diag(1/l) V^T`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PinvForm {
    /// Dimension `d`.
    pub dim: usize,
    /// Kept eigenvectors `[d, r]`, row-major.
    pub vectors: Vec<f64>,
    /// Kept eigenvalues, `r` values.
    pub values: Vec<f64>,
}

impl PinvForm {
    /// The form of the `d x d` symmetric matrix `s` (row-major); eigenvalues whose magnitude
    /// is at most [`PINV_RCOND`] times the largest are dropped, as `numpy.linalg.pinv` drops
    /// those singular values (a singular covariance, e.g. fewer samples than dimensions, is
    /// therefore fine).
    pub fn of_symmetric(s: &[f64], d: usize) -> Result<Self> {
        let m = mat_from_rows(s, d, d);
        let eig = m
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| DefenseError::LinearAlgebra(format!("eigendecomposition: {e:?}")))?;
        let lambdas: Vec<f64> = eig.S().column_vector().iter().copied().collect();
        let largest = lambdas.iter().fold(0.0f64, |a, &l| a.max(l.abs()));
        let keep: Vec<usize> = (0..d)
            .filter(|&j| lambdas[j].abs() > PINV_RCOND * largest)
            .collect();
        let u = eig.U();
        let mut vectors = Vec::with_capacity(d * keep.len());
        for i in 0..d {
            vectors.extend(keep.iter().map(|&j| u[(i, j)]));
        }
        Ok(PinvForm {
            dim: d,
            vectors,
            values: keep.iter().map(|&j| lambdas[j]).collect(),
        })
    }

    /// `x_i^T pinv(S) x_i` for every row `x_i` of the row-major `[n, d]` matrix `rows`.
    pub fn quadratic(&self, rows: &Mat<f64>) -> Vec<f64> {
        let r = self.values.len();
        if r == 0 {
            return vec![0.0; rows.nrows()];
        }
        let v = mat_from_rows(&self.vectors, self.dim, r);
        let projected = rows.as_ref() * v.as_ref();
        (0..rows.nrows())
            .map(|i| {
                (0..r)
                    .map(|j| projected[(i, j)] * projected[(i, j)] / self.values[j])
                    .sum()
            })
            .collect()
    }
}

/// How PCA finds its components.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcaSolver {
    /// Randomised range finder with `power_iterations` subspace iterations and 10 extra
    /// vectors (Halko, Martinsson, Tropp 2011, as scikit-learn's `randomized` solver).
    Randomized {
        /// Power (subspace) iterations; 4 is scikit-learn's choice for few components.
        power_iterations: usize,
    },
    /// Thin SVD of the whole centred matrix.
    Exact,
}

impl Default for PcaSolver {
    fn default() -> Self {
        PcaSolver::Randomized {
            power_iterations: 4,
        }
    }
}

/// Extra vectors of the randomised range finder.
const OVERSAMPLE: usize = 10;

/// A fitted PCA: `z = (x - mean) @ components^T`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaFit {
    /// Column means, `d` values.
    pub mean: Vec<f64>,
    /// Components `[q, d]`, row-major, unit norm, by decreasing variance; each signed so that
    /// its largest-magnitude loading is positive (deterministic signs).
    pub components: Vec<f64>,
    /// Variance along each component (`s^2 / (n - 1)`, as scikit-learn).
    pub explained_variance: Vec<f64>,
    /// Each component's share of the total variance.
    pub explained_variance_ratio: Vec<f64>,
}

impl PcaFit {
    /// Number of components `q`.
    pub fn num_components(&self) -> usize {
        self.explained_variance.len()
    }

    /// Projections `[n, q]` (row-major) of the row-major `[n, d]` `rows`.
    pub fn project(&self, rows: &[f32]) -> Result<Vec<f64>> {
        let d = self.mean.len();
        if d == 0 || !rows.len().is_multiple_of(d) {
            return Err(DefenseError::ShapeMismatch(format!(
                "{} values are not rows of the PCA's {d} dimensions",
                rows.len()
            )));
        }
        let n = rows.len() / d;
        let q = self.num_components();
        let x = Mat::from_fn(n, d, |i, j| f64::from(rows[i * d + j]) - self.mean[j]);
        let c = mat_from_rows(&self.components, q, d);
        let z = x.as_ref() * c.transpose();
        Ok((0..n)
            .flat_map(|i| (0..q).map(move |j| (i, j)))
            .map(|(i, j)| z[(i, j)])
            .collect())
    }
}

/// PCA of the `n = rows.len() / d` rows of `rows` (finite) onto `q` components.
pub fn pca(
    rows: &[f32],
    d: usize,
    q: usize,
    solver: PcaSolver,
    rng: &mut SeededRng,
) -> Result<PcaFit> {
    if d == 0 || rows.is_empty() || !rows.len().is_multiple_of(d) {
        return Err(DefenseError::ShapeMismatch(format!(
            "{} values are not rows of {d} dimensions",
            rows.len()
        )));
    }
    let n = rows.len() / d;
    if n < 2 {
        return Err(DefenseError::invalid("rows", "PCA needs at least two rows"));
    }
    if q == 0 || q > d.min(n) {
        return Err(DefenseError::invalid(
            "components",
            format!("{q} is not in 1..={}", d.min(n)),
        ));
    }
    crate::error::check_finite("the PCA's rows", rows)?;
    let mut mean = vec![0.0f64; d];
    for row in rows.chunks_exact(d) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += f64::from(x));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let x = Mat::from_fn(n, d, |i, j| f64::from(rows[i * d + j]) - mean[j]);
    let total_variance: f64 = (0..d)
        .map(|j| (0..n).map(|i| x[(i, j)] * x[(i, j)]).sum::<f64>())
        .sum::<f64>()
        / (n - 1) as f64;

    let svd_err = |e| DefenseError::LinearAlgebra(format!("SVD: {e:?}"));
    let (singular, vectors): (Vec<f64>, Mat<f64>) = match solver {
        PcaSolver::Exact => {
            let svd = x.thin_svd().map_err(svd_err)?;
            let s = svd.S().column_vector().iter().copied().collect();
            (s, svd.V().to_owned())
        }
        PcaSolver::Randomized { power_iterations } => {
            let l = (q + OVERSAMPLE).min(d.min(n));
            let gauss = advclust_core::standard_normal(rng, d * l);
            let omega = Mat::from_fn(d, l, |i, j| f64::from(gauss[i * l + j]));
            let mut y = (x.as_ref() * omega.as_ref()).qr().compute_thin_Q();
            for _ in 0..power_iterations {
                let z = (x.transpose() * y.as_ref()).qr().compute_thin_Q();
                y = (x.as_ref() * z.as_ref()).qr().compute_thin_Q();
            }
            let b = y.transpose() * x.as_ref();
            let svd = b.thin_svd().map_err(svd_err)?;
            let s = svd.S().column_vector().iter().copied().collect();
            (s, svd.V().to_owned())
        }
    };
    let mut components = Vec::with_capacity(q * d);
    for j in 0..q {
        let column: Vec<f64> = (0..d).map(|i| vectors[(i, j)]).collect();
        let peak = column
            .iter()
            .copied()
            .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if peak < 0.0 { -1.0 } else { 1.0 };
        components.extend(column.iter().map(|v| v * sign));
    }
    let explained_variance: Vec<f64> = singular[..q]
        .iter()
        .map(|s| s * s / (n - 1) as f64)
        .collect();
    let explained_variance_ratio = explained_variance
        .iter()
        .map(|v| {
            if total_variance > 0.0 {
                v / total_variance
            } else {
                0.0
            }
        })
        .collect();
    Ok(PcaFit {
        mean,
        components,
        explained_variance,
        explained_variance_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pinv_form_equals_the_inverse_on_a_regular_matrix_and_drops_null_directions() {
        // S = [[2, 1], [1, 2]]: inverse [[2, -1], [-1, 2]] / 3.
        let form = PinvForm::of_symmetric(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
        let x = mat_from_rows(&[1.0, 0.0, 1.0, 1.0], 2, 2);
        let q = form.quadratic(&x);
        assert!((q[0] - 2.0 / 3.0).abs() < 1e-12 && (q[1] - 2.0 / 3.0).abs() < 1e-12);
        // Rank one: S = v v^T with v = (1, 1); pinv = v v^T / 4.
        let form = PinvForm::of_symmetric(&[1.0, 1.0, 1.0, 1.0], 2).unwrap();
        assert_eq!(form.values.len(), 1);
        let q = form.quadratic(&mat_from_rows(&[1.0, 1.0, 1.0, -1.0], 2, 2));
        assert!((q[0] - 1.0).abs() < 1e-12 && q[1].abs() < 1e-12);
    }

    #[test]
    fn randomized_pca_agrees_with_the_exact_one() {
        let mut rng = SeededRng::seed_from_u64(1);
        let (n, d) = (200, 30);
        // Three strong directions plus noise.
        let noise = advclust_core::standard_normal(&mut rng, n * d);
        let rows: Vec<f32> = (0..n * d)
            .map(|k| {
                let (i, j) = (k / d, k % d);
                let t = i as f32 / n as f32;
                let signal = 5.0 * (t * 7.0).sin() * (j as f32 / d as f32)
                    + 3.0 * (t * 13.0).cos() * ((j % 3) as f32)
                    + 2.0 * (t * 29.0).sin() * ((j % 5) as f32 - 2.0);
                signal + 0.01 * noise[k]
            })
            .collect();
        let exact = pca(&rows, d, 3, PcaSolver::Exact, &mut rng).unwrap();
        let fast = pca(&rows, d, 3, PcaSolver::default(), &mut rng).unwrap();
        for (a, b) in exact.components.iter().zip(&fast.components) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        for (a, b) in exact
            .explained_variance
            .iter()
            .zip(&fast.explained_variance)
        {
            assert!((a - b).abs() < 1e-6 * a.abs().max(1.0));
        }
        let z = exact.project(&rows).unwrap();
        assert_eq!(z.len(), n * 3);
        assert!(pca(&rows, d, 0, PcaSolver::Exact, &mut rng).is_err());
        assert!(pca(&rows[..d], d, 1, PcaSolver::Exact, &mut rng).is_err());
    }
}
