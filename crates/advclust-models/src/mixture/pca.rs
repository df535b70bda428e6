//! Host-side PCA (f64) for [`super::fit_mixture`]: the top eigenvectors of the covariance by
//! subspace iteration with modified Gram-Schmidt and a Rayleigh-Ritz step, on the `d x d`
//! covariance or, when there are fewer images than pixels, on the `n x n` Gram matrix.

use advclust_core::SeededRng;
use rand::RngExt;

/// Extra vectors iterated beside the `q` wanted ones (faster convergence of the last ones).
const OVERSAMPLE: usize = 10;
/// Subspace iteration stops once every wanted Ritz pair has `||S v - l v|| <= tol * l_max`.
const RESIDUAL_TOLERANCE: f64 = 1e-9;

/// A fitted PCA: `z = (x - mean) @ basis`.
#[derive(Debug, Clone)]
pub(super) struct Pca {
    /// Column means, `d` values.
    pub mean: Vec<f64>,
    /// Orthonormal basis `[d, q]`, row-major, columns by decreasing variance.
    pub basis: Vec<f64>,
    /// Variance along each basis column, `q` values.
    pub variances: Vec<f64>,
    /// `sum(variances) / total variance` (1 when the data has no variance).
    pub explained_variance_ratio: f64,
    /// Subspace iterations run.
    pub iterations: usize,
}

/// Which matrix the eigenvectors are taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PcaPath {
    /// The `d x d` covariance (fewer pixels than images).
    Covariance,
    /// The `n x n` Gram matrix of the centred images (fewer images than pixels).
    Gram,
}

impl PcaPath {
    /// The cheaper path for `n` images of `d` values.
    pub fn for_shape(n: usize, d: usize) -> Self {
        if d <= n {
            PcaPath::Covariance
        } else {
            PcaPath::Gram
        }
    }
}

/// PCA of `n` rows of `d` values (`data` row-major, finite) onto `q <= d` components;
/// `max_iterations` bounds the subspace iteration, `rng` draws its start.
pub(super) fn pca(
    data: &[f32],
    n: usize,
    d: usize,
    q: usize,
    max_iterations: usize,
    path: PcaPath,
    rng: &mut SeededRng,
) -> Pca {
    let mut mean = vec![0.0f64; d];
    for row in data.chunks_exact(d) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &x)| *m += f64::from(x));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);

    let (matrix, m) = match path {
        PcaPath::Covariance => (covariance(data, &mean, n, d), d),
        PcaPath::Gram => (gram(data, &mean, n, d), n),
    };
    let trace: f64 = (0..m).map(|i| matrix[i * m + i]).sum();
    // Only `rank <= min(n, d)` directions carry variance; the rest come out as arbitrary
    // orthonormal directions of zero variance.
    let wanted = q.min(m);
    let (vectors, values, iterations) = top_eigenvectors(&matrix, m, wanted, max_iterations, rng);

    let mut columns: Vec<Vec<f64>> = match path {
        PcaPath::Covariance => vectors,
        PcaPath::Gram => gram_to_basis(data, &mean, d, &vectors, &values),
    };
    let mut variances = values;
    // Gram path with q > n: complete the basis with directions orthogonal to the data's span.
    while columns.len() < q {
        columns.push(random_vector(d, rng));
        variances.push(0.0);
    }
    modified_gram_schmidt(&mut columns, rng);
    for col in &mut columns {
        // Deterministic sign: the entry of largest magnitude is positive.
        let big = col
            .iter()
            .fold(0.0f64, |b, &v| if v.abs() > b.abs() { v } else { b });
        if big < 0.0 {
            col.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let mut basis = vec![0.0; d * q];
    for (j, col) in columns.iter().enumerate() {
        for (i, &v) in col.iter().enumerate() {
            basis[i * q + j] = v;
        }
    }
    let explained: f64 = variances.iter().map(|v| v.max(0.0)).sum();
    let explained_variance_ratio = if trace > 0.0 {
        (explained / trace).min(1.0)
    } else {
        1.0
    };
    Pca {
        mean,
        basis,
        variances,
        explained_variance_ratio,
        iterations,
    }
}

/// The `d x d` covariance `X^T X / n - mean mean^T`, skipping zero pixels (most of a digit).
fn covariance(data: &[f32], mean: &[f64], n: usize, d: usize) -> Vec<f64> {
    let mut s = vec![0.0f64; d * d];
    let mut nonzero: Vec<(usize, f64)> = Vec::with_capacity(d);
    for row in data.chunks_exact(d) {
        nonzero.clear();
        nonzero.extend(
            row.iter()
                .enumerate()
                .filter(|(_, x)| **x != 0.0)
                .map(|(i, &x)| (i, f64::from(x))),
        );
        for (a, &(i, xi)) in nonzero.iter().enumerate() {
            let out = &mut s[i * d..(i + 1) * d];
            for &(j, xj) in &nonzero[a..] {
                out[j] += xi * xj;
            }
        }
    }
    for i in 0..d {
        for j in i..d {
            let v = s[i * d + j] / n as f64 - mean[i] * mean[j];
            s[i * d + j] = v;
            s[j * d + i] = v;
        }
    }
    s
}

/// The `n x n` Gram matrix `(x_a - mean) . (x_b - mean) / n`.
fn gram(data: &[f32], mean: &[f64], n: usize, d: usize) -> Vec<f64> {
    let centred: Vec<Vec<f64>> = data
        .chunks_exact(d)
        .map(|row| {
            row.iter()
                .zip(mean)
                .map(|(&x, m)| f64::from(x) - m)
                .collect()
        })
        .collect();
    let mut g = vec![0.0f64; n * n];
    for a in 0..n {
        for b in a..n {
            let v = dot(&centred[a], &centred[b]) / n as f64;
            g[a * n + b] = v;
            g[b * n + a] = v;
        }
    }
    g
}

/// Covariance eigenvectors from Gram eigenvectors: `v = X_c^T u / sqrt(n l)`, for the ones of
/// non-negligible eigenvalue `l` (the completion in [`pca`] supplies the others).
fn gram_to_basis(
    data: &[f32],
    mean: &[f64],
    d: usize,
    vectors: &[Vec<f64>],
    values: &[f64],
) -> Vec<Vec<f64>> {
    let top = values.first().copied().unwrap_or(0.0).max(0.0);
    vectors
        .iter()
        .zip(values)
        .take_while(|(_, l)| **l > 1e-12 * top && **l > 0.0)
        .map(|(u, _)| {
            let mut v = vec![0.0f64; d];
            for (row, &ua) in data.chunks_exact(d).zip(u) {
                for ((vi, &x), m) in v.iter_mut().zip(row).zip(mean) {
                    *vi += ua * (f64::from(x) - m);
                }
            }
            let norm = dot(&v, &v).sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

/// The `q` leading eigenpairs of the symmetric PSD `m x m` matrix `s` by orthogonal
/// iteration with `q + OVERSAMPLE` vectors and a Rayleigh-Ritz step each iteration.
/// Returns eigenvectors (length `m` each), eigenvalues (decreasing), iterations run.
fn top_eigenvectors(
    s: &[f64],
    m: usize,
    q: usize,
    max_iterations: usize,
    rng: &mut SeededRng,
) -> (Vec<Vec<f64>>, Vec<f64>, usize) {
    let p = (q + OVERSAMPLE).min(m);
    let mut basis: Vec<Vec<f64>> = (0..p).map(|_| random_vector(m, rng)).collect();
    modified_gram_schmidt(&mut basis, rng);
    let mut ritz_vectors = basis.clone();
    let mut ritz_values = vec![0.0; p];
    let mut iterations = 0;
    while iterations < max_iterations.max(1) {
        iterations += 1;
        // Y = S Q and the projected matrix T = Q^T S Q.
        let y: Vec<Vec<f64>> = basis.iter().map(|col| symmetric_times(s, m, col)).collect();
        let mut t = vec![0.0; p * p];
        for a in 0..p {
            for b in a..p {
                let v = dot(&basis[a], &y[b]);
                t[a * p + b] = v;
                t[b * p + a] = v;
            }
        }
        let (w, values) = jacobi_eigen(&mut t, p);
        // Ritz vectors V = Q W and S V = Y W, by decreasing Ritz value.
        let combine = |cols: &[Vec<f64>], j: usize| -> Vec<f64> {
            let mut out = vec![0.0; m];
            for (a, col) in cols.iter().enumerate() {
                let c = w[a * p + j];
                out.iter_mut().zip(col).for_each(|(o, &x)| *o += c * x);
            }
            out
        };
        ritz_vectors = (0..p).map(|j| combine(&basis, j)).collect();
        let images: Vec<Vec<f64>> = (0..p).map(|j| combine(&y, j)).collect();
        ritz_values = values;
        let scale = ritz_values[0].abs().max(f64::MIN_POSITIVE);
        let converged = (0..q).all(|j| {
            let r: f64 = images[j]
                .iter()
                .zip(&ritz_vectors[j])
                .map(|(sv, v)| (sv - ritz_values[j] * v).powi(2))
                .sum();
            r.sqrt() <= RESIDUAL_TOLERANCE * scale
        });
        if converged {
            break;
        }
        basis = images;
        modified_gram_schmidt(&mut basis, rng);
    }
    ritz_vectors.truncate(q);
    ritz_values.truncate(q);
    (ritz_vectors, ritz_values, iterations)
}

/// `s @ v` for a row-major `m x m` matrix.
fn symmetric_times(s: &[f64], m: usize, v: &[f64]) -> Vec<f64> {
    s.chunks_exact(m).map(|row| dot(row, v)).collect()
}

/// Eigen-decomposition of the symmetric `p x p` matrix `a` (overwritten) by cyclic Jacobi.
/// Returns the eigenvectors as the columns of a row-major `p x p` matrix and the eigenvalues,
/// both ordered by decreasing eigenvalue.
fn jacobi_eigen(a: &mut [f64], p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; p * p];
    (0..p).for_each(|i| v[i * p + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * p + j].powi(2))
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij == 0.0 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                // signum(0) = 1: a rotation by 45 degrees when the diagonal is equal.
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = c * aki - s * akj;
                    a[k * p + j] = s * aki + c * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = c * aik - s * ajk;
                    a[j * p + k] = s * aik + c * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[k * p + i], v[k * p + j]);
                    v[k * p + i] = c * vki - s * vkj;
                    v[k * p + j] = s * vki + c * vkj;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&x, &y| a[y * p + y].total_cmp(&a[x * p + x]).then(x.cmp(&y)));
    let values = order.iter().map(|&j| a[j * p + j]).collect();
    let mut vectors = vec![0.0; p * p];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..p {
            vectors[k * p + new] = v[k * p + old];
        }
    }
    (vectors, values)
}

/// Orthonormalises `cols` in place by modified Gram-Schmidt (twice, for stability); a column
/// that vanishes (dependent on the earlier ones) is replaced by a fresh random one.
pub(super) fn modified_gram_schmidt(cols: &mut [Vec<f64>], rng: &mut SeededRng) {
    for j in 0..cols.len() {
        for _attempt in 0..10 {
            let before = dot(&cols[j], &cols[j]).sqrt();
            for _pass in 0..2 {
                for i in 0..j {
                    let (done, rest) = cols.split_at_mut(j);
                    let r = dot(&done[i], &rest[0]);
                    rest[0]
                        .iter_mut()
                        .zip(&done[i])
                        .for_each(|(x, &e)| *x -= r * e);
                }
            }
            let norm = dot(&cols[j], &cols[j]).sqrt();
            if norm > 1e-10 * before.max(f64::MIN_POSITIVE) && norm > 0.0 {
                cols[j].iter_mut().for_each(|x| *x /= norm);
                break;
            }
            let len = cols[j].len();
            cols[j] = random_vector(len, rng);
        }
    }
}

fn random_vector(m: usize, rng: &mut SeededRng) -> Vec<f64> {
    (0..m).map(|_| rng.random::<f64>() - 0.5).collect()
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// 40 rows of 12 values: a strong direction, a weaker one, small noise.
    fn data() -> Vec<f32> {
        let mut rng = SeededRng::seed_from_u64(1);
        (0..40)
            .flat_map(|i| {
                let a = (i as f32 * 0.37).sin();
                let b = (i as f32 * 1.3).cos() * 0.3;
                let noise: Vec<f32> = (0..12).map(|_| rng.random::<f32>() * 0.01).collect();
                (0..12).map(move |j| {
                    0.5 + a * (j as f32 / 12.0) + b * ((j % 3) as f32 - 1.0) + noise[j]
                })
            })
            .collect()
    }

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let mut a = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let orig = a.clone();
        let (v, l) = jacobi_eigen(&mut a, 3);
        assert!(l[0] >= l[1] && l[1] >= l[2]);
        for j in 0..3 {
            let col: Vec<f64> = (0..3).map(|k| v[k * 3 + j]).collect();
            let av = symmetric_times(&orig, 3, &col);
            for k in 0..3 {
                assert!((av[k] - l[j] * col[k]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn covariance_and_gram_paths_agree() {
        let x = data();
        let mut rng = SeededRng::seed_from_u64(0);
        let cov = pca(&x, 40, 12, 3, 200, PcaPath::Covariance, &mut rng);
        let gram = pca(&x, 40, 12, 3, 200, PcaPath::Gram, &mut rng);
        assert!((cov.explained_variance_ratio - gram.explained_variance_ratio).abs() < 1e-9);
        assert!(cov.explained_variance_ratio > 0.99);
        for (a, b) in cov.variances.iter().zip(&gram.variances) {
            assert!((a - b).abs() < 1e-9 * cov.variances[0]);
        }
        // Same columns up to the (deterministic) sign.
        for (a, b) in cov.basis.iter().zip(&gram.basis) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Orthonormal columns.
        for i in 0..3 {
            for j in 0..3 {
                let d: f64 = (0..12)
                    .map(|r| cov.basis[r * 3 + i] * cov.basis[r * 3 + j])
                    .sum();
                assert!((d - f64::from(u8::from(i == j))).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn more_components_than_images_is_completed() {
        let x = data();
        let mut rng = SeededRng::seed_from_u64(0);
        let p = pca(&x[..5 * 12], 5, 12, 8, 100, PcaPath::Gram, &mut rng);
        assert_eq!(p.basis.len(), 12 * 8);
        assert!((p.explained_variance_ratio - 1.0).abs() < 1e-9);
        assert!(p.basis.iter().all(|v| v.is_finite()));
    }
}
