//! Checks against the real shared datasets (see `shared/data/README.md`).
//!
//! Run with `cargo test -p advclust-data -- --ignored` (add `--nocapture` to
//! see load times). The data root is `$ADVCLUST_DATA`, or `shared/data` next
//! to the workspace by default.

use std::path::PathBuf;
use std::time::Instant;

use advclust_data::*;

const NEEDS: &str = "needs ../shared/data (run with --ignored)";

fn root() -> PathBuf {
    std::env::var_os("ADVCLUST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
        })
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    eprintln!("{what}: {:.3} s", t.elapsed().as_secs_f64());
    out
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn mnist_test_counts_and_embedded_copy() {
    let _ = NEEDS;
    let d = timed("MNIST test (IDX gz)", || {
        load_mnist(root().join("mnist"), Split::Test).unwrap()
    });
    assert_eq!(d.dims(), [10_000, 1, 28, 28]);
    assert_eq!(
        d.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    let u = d.to_u8();
    assert_eq!(u.iter().copied().max(), Some(255));
    assert_eq!(u.iter().copied().min(), Some(0));
    let embedded = timed("MNIST test (embedded)", || mnist_test_embedded().unwrap());
    assert_eq!(embedded, d);
    // the raw IDX reader agrees byte for byte
    let raw = read_idx_images(root().join("mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!(raw.pixels, u);
    // the embedded assets are the shared files
    assert_eq!(
        sha256_file(root().join("mnist/t10k-images-idx3-ubyte.gz")).unwrap(),
        sha256_hex(MNIST_TEST_IMAGES_GZ)
    );
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn mnist_and_fashion_label_files() {
    let train = read_idx_labels(root().join("mnist/train-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(train.len(), 60_000);
    let mut counts = [0usize; 10];
    train.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    for (file, n) in [
        ("t10k-labels-idx1-ubyte.gz", 10_000),
        ("train-labels-idx1-ubyte.gz", 60_000),
    ] {
        let l = read_idx_labels(root().join("fashion-mnist").join(file)).unwrap();
        assert_eq!(l.len(), n);
        let mut counts = [0usize; 10];
        l.iter().for_each(|&x| counts[x as usize] += 1);
        assert_eq!(counts, [n / 10; 10]);
    }
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn fashion_mnist_png_in_official_order() {
    let d = timed("Fashion-MNIST test (10,000 PNG)", || {
        load_fashion_mnist_png_test(root().join("fashion-mnist")).unwrap()
    });
    assert_eq!(d.dims(), [10_000, 1, 28, 28]);
    assert_eq!(d.class_counts(), vec![1000; 10]);
    assert_eq!(d.class_names()[9], "Ankle boot");
    let labels = read_idx_labels(root().join("fashion-mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    assert!(
        d.labels()
            .iter()
            .zip(&labels)
            .all(|(&a, &b)| a == b as usize)
    );
    // rebuild the official raw IDX file and compare its hash with the README's
    let idx = encode_idx_images(&d.to_u8(), 10_000, 28, 28).unwrap();
    assert_eq!(idx.len(), 7_840_016);
    assert_eq!(
        sha256_hex(&idx),
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    );
    let s = d.channel_stats().unwrap();
    assert!((s.mean[0] - 0.28685).abs() < 5e-5, "{s:?}");
    assert!((s.std[0] - 0.35244).abs() < 5e-5, "{s:?}");
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn cifar10_jpeg_test_split() {
    let d = timed("CIFAR-10 test (10,000 JPEG)", || {
        load_cifar10_folder(root().join("cifar10-jpg/test")).unwrap()
    });
    assert_eq!(d.dims(), [10_000, 3, 32, 32]);
    assert_eq!(d.class_counts(), vec![1000; 10]);
    assert_eq!(d.class_names(), CIFAR10_CLASSES.map(String::from));
    let s = d.channel_stats().unwrap();
    eprintln!("CIFAR-10 JPEG channel stats: {s:?}");
    // README (Pillow decode): R 0.49407 G 0.48506 B 0.45038; decoders may
    // differ by a level or two per pixel
    for (m, want) in s.mean.iter().zip([0.49407f32, 0.48506, 0.45038]) {
        assert!((m - want).abs() < 2e-3, "{m} vs {want}");
    }
    // cat/0000.jpg is the official test image 0 (a cat)
    assert_eq!(d.label(3000), 3);
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn extended_yale_b() {
    let d = timed("Extended Yale B (2,414 PGM)", || {
        load_yaleb(root().join("yaleb/CroppedYale")).unwrap()
    });
    assert_eq!(d.dims(), [2414, 1, 192, 168]);
    assert_eq!(d.num_classes(), 38);
    assert_eq!(d.class_names()[0], "yaleB01");
    assert_eq!(d.class_names()[13], "yaleB15");
    assert!(!d.class_names().iter().any(|n| n == "yaleB14"));
    let counts = d.class_counts();
    let odd = [
        ("yaleB11", 60),
        ("yaleB12", 59),
        ("yaleB13", 60),
        ("yaleB15", 63),
        ("yaleB16", 62),
        ("yaleB17", 63),
        ("yaleB18", 63),
    ];
    for (name, count) in d.class_names().iter().zip(&counts) {
        let want = odd.iter().find(|(n, _)| n == name).map_or(64, |&(_, c)| c);
        assert_eq!(*count, want, "{name}");
    }
    // resized copy for small victims
    let small = d.resize(48, 42).unwrap();
    assert_eq!(small.dims(), [2414, 1, 48, 42]);
}

#[test]
#[ignore = "needs ../shared/data (run with --ignored)"]
fn yale_ambient_images_break_a_plain_folder_load() {
    // Without the Ambient filter the 480x640 ambient shots do not fit.
    let e = ImageFolder::new(root().join("yaleb/CroppedYale"))
        .extensions(&["pgm"])
        .load()
        .unwrap_err();
    assert!(matches!(e, DataError::ImageSizeMismatch { .. }), "{e:?}");
}
