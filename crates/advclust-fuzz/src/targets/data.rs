//! The dataset binaries of `advclust-data`: IDX images and labels (raw or gzipped, in memory
//! and through the file readers), a whole MNIST folder of gzipped IDX files, and the CIFAR-10/100
//! and STL-10 record files.

use std::io::Write;
use std::path::Path;

use advclust_data::{
    Cifar100Labels, Dataset, Split, encode_idx_images, encode_idx_labels, load_cifar10_bin,
    load_cifar100_bin, load_mnist, load_stl10_bin, parse_idx_images, parse_idx_labels,
    read_idx_images, read_idx_labels,
};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::{Outcome, ScratchDir, Setup, Target, TargetInfo, check};
use crate::mutator::{Layout, PartKind, parts};
use crate::{FuzzError, Result};

/// Named seed inputs.
pub type Seeds = Vec<(String, Vec<u8>)>;

/// `bytes` gzipped (one member).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// The invariants of any dataset a reader returns: sizes agree, labels are below the class
/// count, pixels are finite and in `[0, 1]`.
pub fn check_dataset(ds: &Dataset) -> Outcome {
    let [n, c, h, w] = ds.dims();
    let len_ok = n
        .checked_mul(c)
        .and_then(|x| x.checked_mul(h))
        .and_then(|x| x.checked_mul(w))
        == Some(ds.images().len());
    if !len_ok || ds.labels().len() != n {
        return Outcome::Finding(format!(
            "dataset of dims {:?} holds {} values and {} labels",
            ds.dims(),
            ds.images().len(),
            ds.labels().len()
        ));
    }
    if let Some(l) = ds.labels().iter().find(|&&l| l >= ds.num_classes()) {
        return Outcome::Finding(format!("label {l} of {} classes", ds.num_classes()));
    }
    check(
        ds.images()
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
        || "a pixel value outside [0, 1]".into(),
    )
}

fn idx_bytes(images: &[u8], n: usize, side: usize) -> Vec<u8> {
    encode_idx_images(images, n, side, side).expect("valid IDX")
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 37 % 256) as u8).collect()
}

/// IDX3 seeds: tiny raw files, gzipped, multi-member and a small "bomb" that inflates far past
/// its header.
pub fn idx_images_seeds() -> Seeds {
    let small = idx_bytes(&pattern(3 * 16), 3, 4);
    let mnist = idx_bytes(&pattern(2 * 784), 2, 28);
    let empty = idx_bytes(&[], 0, 28);
    let mut multi = gzip(&small[..16]);
    multi.extend(gzip(&small[16..]));
    let mut bomb_src = small[..16].to_vec();
    bomb_src.resize(4 << 20, 0);
    vec![
        ("raw-3x4x4.idx".into(), small.clone()),
        ("raw-2x28x28.idx".into(), mnist),
        ("raw-empty.idx".into(), empty),
        ("gz-3x4x4.idx.gz".into(), gzip(&small)),
        ("gz-multi-member.idx.gz".into(), multi),
        ("gz-inflates-4mb.idx.gz".into(), gzip(&bomb_src)),
    ]
}

/// IDX1 seeds.
pub fn idx_labels_seeds() -> Seeds {
    let labels = encode_idx_labels(&[7, 2, 1, 0, 4]).expect("valid IDX");
    vec![
        ("raw-5.idx".into(), labels.clone()),
        (
            "raw-empty.idx".into(),
            encode_idx_labels(&[]).expect("valid IDX"),
        ),
        ("gz-5.idx.gz".into(), gzip(&labels)),
    ]
}

/// `idx-mnist-gz` seeds: images and labels (raw IDX, gzipped by the target) and a flags byte.
pub fn idx_mnist_seeds() -> Seeds {
    let images = idx_bytes(&pattern(3 * 16), 3, 4);
    let labels = encode_idx_labels(&[3, 9, 0]).expect("valid IDX");
    [0u8, 1, 2, 4]
        .iter()
        .map(|&f| {
            (
                format!("mnist-3x4x4-flags{f}.bin"),
                parts::join(&[images.clone(), labels.clone(), vec![f]]),
            )
        })
        .collect()
}

/// CIFAR seeds: two CIFAR-10 records, two CIFAR-100 records.
pub fn cifar_seeds() -> Seeds {
    let rec = |labels: &[u8]| {
        let mut r = labels.to_vec();
        r.extend(pattern(3072));
        r
    };
    let mut c10 = rec(&[3]);
    c10.extend(rec(&[9]));
    let mut c100 = rec(&[4, 30]);
    c100.extend(rec(&[19, 99]));
    vec![
        ("cifar10-2.bin".into(), c10),
        ("cifar100-2.bin".into(), c100),
    ]
}

/// STL-10 seeds: one and two images with their labels.
pub fn stl_seeds() -> Seeds {
    vec![
        ("stl-1.bin".into(), parts::join(&[pattern(27_648), vec![3]])),
        (
            "stl-2.bin".into(),
            parts::join(&[pattern(2 * 27_648), vec![1, 10]]),
        ),
    ]
}

struct IdxTarget {
    name: &'static str,
    labels: bool,
    dir: ScratchDir,
}

impl Target for IdxTarget {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let origin = Path::new("fuzz.idx");
        let (outcome, in_memory) = if self.labels {
            let r = parse_idx_labels(input, origin);
            (Outcome::of(&r), r.map_err(|e| e.to_string()))
        } else {
            let r = parse_idx_images(input, origin);
            let o = match &r {
                Ok(img) => check(
                    img.n
                        .checked_mul(img.rows)
                        .and_then(|x| x.checked_mul(img.cols))
                        == Some(img.pixels.len()),
                    || {
                        format!(
                            "{}x{}x{} images with {} bytes",
                            img.n,
                            img.rows,
                            img.cols,
                            img.pixels.len()
                        )
                    },
                ),
                Err(e) => Outcome::Rejected(e.to_string()),
            };
            (o, r.map(|i| i.pixels).map_err(|e| e.to_string()))
        };
        // Gzipped inputs also go through the file reader, which must agree.
        if !input.starts_with(&[0x1f, 0x8b]) {
            return outcome;
        }
        let path = self.dir.write("file.idx.gz", input);
        let from_file = if self.labels {
            read_idx_labels(&path).map_err(|e| e.to_string())
        } else {
            read_idx_images(&path)
                .map(|i| i.pixels)
                .map_err(|e| e.to_string())
        };
        outcome.and(check(from_file.is_ok() == in_memory.is_ok(), || {
            format!(
                "the file reader and the in-memory parser disagree: {:?} vs {:?}",
                from_file.err(),
                in_memory.err()
            )
        }))
    }
}

fn build_idx(name: &'static str, labels: bool) -> Result<Box<dyn Target>> {
    Ok(Box::new(IdxTarget {
        name,
        labels,
        dir: ScratchDir::new(name)?,
    }))
}

/// `parse_idx_images` (and `read_idx_images` for gzipped inputs).
pub const IDX_IMAGES: TargetInfo = TargetInfo {
    name: "idx-images",
    corpus: "idx-images",
    layout: Layout::Bytes,
    max_len: 1 << 16,
    ci_iterations: 180_000,
    about: "IDX3 image files, raw or gzipped (in memory and through the file reader)",
    build: |_: &Setup| build_idx("idx-images", false),
};

/// `parse_idx_labels` (and `read_idx_labels` for gzipped inputs).
pub const IDX_LABELS: TargetInfo = TargetInfo {
    name: "idx-labels",
    corpus: "idx-labels",
    layout: Layout::Bytes,
    max_len: 1 << 14,
    ci_iterations: 600_000,
    about: "IDX1 label files, raw or gzipped",
    build: |_: &Setup| build_idx("idx-labels", true),
};

struct MnistGz {
    dir: ScratchDir,
}

impl Target for MnistGz {
    fn name(&self) -> &'static str {
        "idx-mnist-gz"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 3);
        let flags = p[2].first().copied().unwrap_or(0);
        // Flag bit 0: images as two gzip members; bit 1: labels as two; bit 2: a stray byte
        // after the images' last member.
        let wrap = |bytes: &[u8], split: bool| {
            if split && bytes.len() > 1 {
                let mut g = gzip(&bytes[..bytes.len() / 2]);
                g.extend(gzip(&bytes[bytes.len() / 2..]));
                g
            } else {
                gzip(bytes)
            }
        };
        let mut images = wrap(&p[0], flags & 1 != 0);
        if flags & 4 != 0 {
            images.push(flags);
        }
        self.dir.write("train-images-idx3-ubyte.gz", &images);
        self.dir
            .write("train-labels-idx1-ubyte.gz", &wrap(&p[1], flags & 2 != 0));
        match load_mnist(self.dir.path(), Split::Train) {
            Ok(ds) => check_dataset(&ds),
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// `load_mnist` on a folder of gzipped IDX files.
pub const IDX_MNIST_GZ: TargetInfo = TargetInfo {
    name: "idx-mnist-gz",
    corpus: "idx-mnist-gz",
    layout: Layout::Parts(&[PartKind::Bytes, PartKind::Bytes, PartKind::Bytes]),
    max_len: 1 << 16,
    ci_iterations: 150_000,
    about: "an MNIST folder of gzipped IDX images and labels (multi-member, trailing bytes)",
    build: |_: &Setup| {
        Ok(Box::new(MnistGz {
            dir: ScratchDir::new("idx-mnist-gz")?,
        }))
    },
};

struct Cifar {
    dir: ScratchDir,
}

impl Target for Cifar {
    fn name(&self) -> &'static str {
        "cifar"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = self.dir.write("batch.bin", input);
        let judge = |r: std::result::Result<Dataset, advclust_data::DataError>| match r {
            Ok(ds) => check_dataset(&ds).and(check(ds.dims()[1..] == [3, 32, 32], || {
                format!("CIFAR dataset of dims {:?}", ds.dims())
            })),
            Err(e) => Outcome::Rejected(e.to_string()),
        };
        judge(load_cifar10_bin(&[&p]))
            .and(judge(load_cifar10_bin(&[&p, &p])))
            .and(judge(load_cifar100_bin(&[&p], Cifar100Labels::Fine)))
            .and(judge(load_cifar100_bin(&[&p], Cifar100Labels::Coarse)))
    }
}

/// The CIFAR-10 and CIFAR-100 binary readers.
pub const CIFAR: TargetInfo = TargetInfo {
    name: "cifar",
    corpus: "cifar",
    layout: Layout::Bytes,
    max_len: 1 << 15,
    ci_iterations: 300_000,
    about: "CIFAR-10 and CIFAR-100 binary batches (fine and coarse labels, several files)",
    build: |_: &Setup| {
        Ok(Box::new(Cifar {
            dir: ScratchDir::new("cifar")?,
        }))
    },
};

struct Stl {
    dir: ScratchDir,
}

impl Target for Stl {
    fn name(&self) -> &'static str {
        "stl"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let p = parts::split(input, 2);
        let x = self.dir.write("train_X.bin", &p[0]);
        let y = self.dir.write("train_y.bin", &p[1]);
        match load_stl10_bin(&x, &y) {
            Ok(ds) => check_dataset(&ds).and(check(ds.dims()[1..] == [3, 96, 96], || {
                format!("STL dataset of dims {:?}", ds.dims())
            })),
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// The STL-10 binary reader.
pub const STL: TargetInfo = TargetInfo {
    name: "stl",
    corpus: "stl",
    layout: Layout::Parts(&[PartKind::Bytes, PartKind::Bytes]),
    max_len: 3 * 27_648,
    ci_iterations: 150_000,
    about: "STL-10 image and label binaries",
    build: |_: &Setup| {
        Ok(Box::new(Stl {
            dir: ScratchDir::new("stl")?,
        }))
    },
};

/// Turns a seed generator's panic-free failure into the crate's error.
pub fn seed_error(what: &str, e: impl std::fmt::Display) -> FuzzError {
    FuzzError::Corpus(format!("{what}: {e}"))
}
