//! PCA of the defense crate's PCA view (paper Fig. 5b) on CIFAR-10-sized data: 10,000 images
//! of 3 x 32 x 32 = 3,072 values, 3 components, faer's randomised solver (4 power iterations;
//! the exact thin SVD, `PcaSolver::Exact`, is checked against it in the crate's tests). With `ADVCLUST_DATA` naming `../shared/data` the images are the
//! CIFAR-10 test set; otherwise seeded uniform noise of the same shape (the cost depends on the
//! shape only). `benches/pca_sklearn.py` times scikit-learn's `PCA(3, svd_solver=...)` on the
//! same images.
//!
//! ```text
//! ADVCLUST_DATA=../shared/data cargo bench --bench pca
//! python3 benches/pca_sklearn.py ../shared/data/cifar10-jpg/test
//! ```

use std::time::Duration;

use advclust::core::SeededRng;
use advclust::defense::{PcaSolver, linalg::pca};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng};

fn images() -> (Vec<f32>, usize, &'static str) {
    if let Ok(root) = std::env::var("ADVCLUST_DATA") {
        let dir = std::path::Path::new(&root).join("cifar10-jpg/test");
        if let Ok(data) = advclust::data::load_cifar10_folder(&dir) {
            let d = data.image_len();
            return (data.images().to_vec(), d, "CIFAR-10 test");
        }
    }
    let mut rng = SeededRng::seed_from_u64(0);
    let values = (0..10_000 * 3_072).map(|_| rng.random::<f32>()).collect();
    (values, 3_072, "uniform noise")
}

fn bench(c: &mut Criterion) {
    let (rows, d, what) = images();
    eprintln!("PCA of {} x {d} values ({what})", rows.len() / d);
    let mut group = c.benchmark_group("pca_10000x3072_q3");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("randomized", |b| {
        b.iter(|| {
            let mut rng = SeededRng::seed_from_u64(1);
            pca(&rows, d, 3, PcaSolver::default(), &mut rng).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
