//! k-means on the host, in f64: greedy k-means++ seeding (as scikit-learn) and Lloyd's
//! iterations with re-seeding of empty clusters. Shared by the mixture victims and by any crate
//! that clusters features (SSD's k-cluster detector).
//!
//! ```
//! use rand::SeedableRng;
//! let points = [0.0, 0.0, 0.1, 0.0, 5.0, 5.0, 5.1, 5.0];
//! let mut rng = advclust_core::SeededRng::seed_from_u64(0);
//! let fit = advclust_models::kmeans::kmeans(&points, 2, 2, 100, &mut rng);
//! assert_eq!(fit.labels[0], fit.labels[1]);
//! assert_ne!(fit.labels[0], fit.labels[2]);
//! ```

use advclust_core::SeededRng;
use rand::RngExt;

/// k-means of the `n = points.len() / dim` rows of `points` (finite, `n >= k >= 1`):
/// k-means++ seeding drawn from `rng`, then at most `max_iterations` Lloyd iterations.
pub fn kmeans(
    points: &[f64],
    dim: usize,
    k: usize,
    max_iterations: usize,
    rng: &mut SeededRng,
) -> KMeans {
    let init = kmeans_plus_plus(points, dim, k, rng);
    lloyd(points, dim, k, init, max_iterations)
}

/// Squared Euclidean distance.
pub fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Greedy k-means++ (as scikit-learn): each new centre is the best of `2 + ln k` candidates
/// drawn with probability proportional to the squared distance to the nearest centre.
pub fn kmeans_plus_plus(z: &[f64], q: usize, k: usize, rng: &mut SeededRng) -> Vec<f64> {
    let n = z.len() / q;
    let row = |i: usize| &z[i * q..(i + 1) * q];
    let trials = 2 + (k as f64).ln() as usize;
    let first = rng.random_range(0..n);
    let mut centres = row(first).to_vec();
    let mut closest: Vec<f64> = (0..n).map(|i| sq_dist(row(i), row(first))).collect();
    for _ in 1..k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(usize, f64, Vec<f64>)> = None;
        for _ in 0..trials {
            let candidate = if total > 0.0 {
                let target = rng.random::<f64>() * total;
                let mut acc = 0.0;
                let last = closest.iter().rposition(|&c| c > 0.0).unwrap_or(n - 1);
                (0..n)
                    .find(|&i| {
                        acc += closest[i];
                        acc > target && closest[i] > 0.0
                    })
                    .unwrap_or(last)
            } else {
                rng.random_range(0..n)
            };
            let updated: Vec<f64> = closest
                .iter()
                .enumerate()
                .map(|(i, &c)| c.min(sq_dist(row(i), row(candidate))))
                .collect();
            let potential: f64 = updated.iter().sum();
            if best.as_ref().is_none_or(|b| potential < b.1) {
                best = Some((candidate, potential, updated));
            }
        }
        let (candidate, _, updated) = best.expect("at least two trials");
        centres.extend_from_slice(row(candidate));
        closest = updated;
    }
    centres
}

/// The result of Lloyd's iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Centres `[k, dim]`, row-major.
    pub centres: Vec<f64>,
    /// Cluster of every point.
    pub labels: Vec<usize>,
    /// Sum of squared distances of the points to their centres.
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Whether an iteration left every assignment unchanged.
    pub converged: bool,
    /// Empty clusters re-seeded with a far point.
    pub reseeded: usize,
}

/// Nearest centre of every point and its squared distance.
pub fn assign(z: &[f64], q: usize, centres: &[f64]) -> (Vec<usize>, Vec<f64>) {
    z.chunks_exact(q)
        .map(|x| {
            centres
                .chunks_exact(q)
                .map(|c| sq_dist(x, c))
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |b, (j, d)| if d < b.1 { (j, d) } else { b },
                )
        })
        .unzip()
}

/// Lloyd's iterations from `centres` until no assignment changes (or `max_iterations`); an
/// empty cluster takes the point farthest from its centre (from a cluster of two or more).
pub fn lloyd(
    z: &[f64],
    q: usize,
    k: usize,
    mut centres: Vec<f64>,
    max_iterations: usize,
) -> KMeans {
    let (mut labels, mut dists) = assign(z, q, &centres);
    let (mut iterations, mut converged, mut reseeded) = (0, false, 0);
    while iterations < max_iterations {
        iterations += 1;
        let mut counts = vec![0usize; k];
        labels.iter().for_each(|&l| counts[l] += 1);
        for c in 0..k {
            if counts[c] == 0 {
                let far = (0..labels.len())
                    .filter(|&i| counts[labels[i]] > 1)
                    .max_by(|&a, &b| dists[a].total_cmp(&dists[b]).then(b.cmp(&a)))
                    .expect("n >= k leaves a cluster of two or more");
                counts[labels[far]] -= 1;
                counts[c] = 1;
                labels[far] = c;
                dists[far] = 0.0;
                reseeded += 1;
            }
        }
        centres.iter_mut().for_each(|v| *v = 0.0);
        for (x, &l) in z.chunks_exact(q).zip(&labels) {
            let c = &mut centres[l * q..(l + 1) * q];
            c.iter_mut().zip(x).for_each(|(c, &x)| *c += x);
        }
        for (c, &count) in centres.chunks_exact_mut(q).zip(&counts) {
            c.iter_mut().for_each(|v| *v /= count as f64);
        }
        let (new_labels, new_dists) = assign(z, q, &centres);
        let same = new_labels == labels;
        (labels, dists) = (new_labels, new_dists);
        if same {
            converged = true;
            break;
        }
    }
    KMeans {
        inertia: dists.iter().sum(),
        centres,
        labels,
        iterations,
        converged,
        reseeded,
    }
}
