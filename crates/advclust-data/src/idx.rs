//! IDX files (MNIST, Fashion-MNIST) and the embedded MNIST test split.

use std::path::{Path, PathBuf};

use crate::util::{maybe_gunzip, read_file};
use crate::{DataError, Dataset};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IDX3_UBYTE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const IDX1_UBYTE_MAGIC: u32 = 0x0000_0801;

/// MNIST class names (the digits).
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The official MNIST `t10k-images-idx3-ubyte.gz` (10,000 test images),
/// embedded in the crate (1,648,877 bytes, sha256 `8d422c7b…dbc4e6`).
pub const MNIST_TEST_IMAGES_GZ: &[u8] = include_bytes!("../assets/mnist/t10k-images-idx3-ubyte.gz");
/// The official MNIST `t10k-labels-idx1-ubyte.gz` (10,000 test labels),
/// embedded in the crate (4,542 bytes, sha256 `f7ae60f9…04aec6`).
pub const MNIST_TEST_LABELS_GZ: &[u8] = include_bytes!("../assets/mnist/t10k-labels-idx1-ubyte.gz");

/// Decoded IDX image file: `n` images of `rows x cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub n: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `n * rows * cols` pixel bytes.
    pub pixels: Vec<u8>,
}

/// Which half of a dataset distributed as train and test files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split.
    Test,
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_header(bytes: &[u8], path: &Path, magic: u32, header_len: usize) -> Result<(), DataError> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "IDX header",
            expected: header_len,
            found: bytes.len(),
        });
    }
    let found = be_u32(bytes, 0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "IDX header",
            expected: header_len,
            found: bytes.len(),
        });
    }
    Ok(())
}

fn check_payload(
    bytes: &[u8],
    path: &Path,
    start: usize,
    expected: usize,
) -> Result<(), DataError> {
    let found = bytes.len() - start;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            what: "IDX payload",
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingData {
            path: path.to_path_buf(),
            what: "IDX payload",
            expected,
            found,
        });
    }
    Ok(())
}

/// Parses an IDX3 unsigned-byte image file held in memory, gzipped (detected
/// by the magic `1f 8b`) or raw. `origin` only names the data in errors.
///
/// Checks the magic `0x00000803`, the header length and that the payload is
/// exactly `n * rows * cols` bytes.
pub fn parse_idx_images(bytes: &[u8], origin: &Path) -> Result<IdxImages, DataError> {
    let bytes = maybe_gunzip(bytes.to_vec(), origin)?;
    check_header(&bytes, origin, IDX3_UBYTE_MAGIC, 16)?;
    let n = be_u32(&bytes, 4) as usize;
    let rows = be_u32(&bytes, 8) as usize;
    let cols = be_u32(&bytes, 12) as usize;
    if rows == 0 || cols == 0 {
        return Err(DataError::Layout {
            path: origin.to_path_buf(),
            message: format!("IDX images of size {rows}x{cols}"),
        });
    }
    let expected = n
        .checked_mul(rows)
        .and_then(|x| x.checked_mul(cols))
        .unwrap_or(usize::MAX);
    check_payload(&bytes, origin, 16, expected)?;
    let mut pixels = bytes;
    pixels.drain(..16);
    Ok(IdxImages {
        n,
        rows,
        cols,
        pixels,
    })
}

/// Parses an IDX1 unsigned-byte label file held in memory, gzipped or raw.
///
/// Checks the magic `0x00000801` and that the payload is exactly `n` bytes.
pub fn parse_idx_labels(bytes: &[u8], origin: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = maybe_gunzip(bytes.to_vec(), origin)?;
    check_header(&bytes, origin, IDX1_UBYTE_MAGIC, 8)?;
    let n = be_u32(&bytes, 4) as usize;
    check_payload(&bytes, origin, 8, n)?;
    let mut labels = bytes;
    labels.drain(..8);
    Ok(labels)
}

/// Reads an IDX3 image file (gzipped or raw), see [`parse_idx_images`].
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    let path = path.as_ref();
    parse_idx_images(&read_file(path)?, path)
}

/// Reads an IDX1 label file (gzipped or raw), see [`parse_idx_labels`].
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    parse_idx_labels(&read_file(path)?, path)
}

/// Encodes `n` grayscale images of `rows x cols` bytes as a raw (not
/// gzipped) IDX3 file: the 16-byte header then the pixels.
///
/// Errors if `pixels.len() != n * rows * cols` or a dimension exceeds `u32`.
pub fn encode_idx_images(
    pixels: &[u8],
    n: usize,
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, DataError> {
    let dims: Vec<u32> = [n, rows, cols]
        .iter()
        .map(|&d| u32::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| DataError::InvalidArgument("IDX dimension exceeds u32".into()))?;
    if n.checked_mul(rows).and_then(|x| x.checked_mul(cols)) != Some(pixels.len()) {
        return Err(DataError::InvalidArgument(format!(
            "{} bytes do not make {n} images of {rows}x{cols}",
            pixels.len()
        )));
    }
    let mut out = Vec::with_capacity(16 + pixels.len());
    out.extend_from_slice(&IDX3_UBYTE_MAGIC.to_be_bytes());
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    Ok(out)
}

/// Encodes labels as a raw IDX1 file. Errors if a label exceeds 255.
pub fn encode_idx_labels(labels: &[usize]) -> Result<Vec<u8>, DataError> {
    let n = u32::try_from(labels.len())
        .map_err(|_| DataError::InvalidArgument("too many labels for IDX".into()))?;
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX1_UBYTE_MAGIC.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    for &l in labels {
        out.push(u8::try_from(l).map_err(|_| {
            DataError::InvalidArgument(format!("label {l} does not fit in a byte"))
        })?);
    }
    Ok(out)
}

/// Checks raw labels against `num_classes` and widens them.
pub(crate) fn labels_in_range(
    raw: &[u8],
    num_classes: usize,
    path: &Path,
) -> Result<Vec<usize>, DataError> {
    raw.iter()
        .map(|&l| {
            let l = l as usize;
            if l < num_classes {
                Ok(l)
            } else {
                Err(DataError::LabelOutOfRange {
                    path: path.to_path_buf(),
                    label: l,
                    num_classes,
                })
            }
        })
        .collect()
}

fn build(
    images: IdxImages,
    labels: Vec<u8>,
    labels_path: &Path,
    class_names: &[&str],
) -> Result<Dataset, DataError> {
    if labels.len() != images.n {
        return Err(DataError::CountMismatch {
            path: labels_path.to_path_buf(),
            images: images.n,
            labels: labels.len(),
        });
    }
    let labels = labels_in_range(&labels, class_names.len(), labels_path)?;
    Dataset::from_u8(
        &images.pixels,
        [images.n, 1, images.rows, images.cols],
        labels,
        class_names.iter().map(|s| s.to_string()).collect(),
    )
}

/// Loads an IDX image file and its IDX label file (each gzipped or raw) as a
/// one-channel dataset. Labels must be `< class_names.len()` and as many as
/// the images.
pub fn load_idx(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    class_names: &[&str],
) -> Result<Dataset, DataError> {
    let images = read_idx_images(images_path)?;
    let labels_path = labels_path.as_ref();
    let labels = read_idx_labels(labels_path)?;
    build(images, labels, labels_path, class_names)
}

/// `dir/<stem>.gz` if it exists, else `dir/<stem>` if that exists, else the
/// `.gz` path (so the error names it).
fn idx_file(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    if !gz.exists() && raw.exists() {
        raw
    } else {
        gz
    }
}

fn load_split(dir: &Path, split: Split, class_names: &[&str]) -> Result<Dataset, DataError> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    load_idx(
        idx_file(dir, &format!("{prefix}-images-idx3-ubyte")),
        idx_file(dir, &format!("{prefix}-labels-idx1-ubyte")),
        class_names,
    )
}

/// Loads MNIST from a folder holding the official file names
/// (`train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, ..., each either
/// with `.gz` or raw). Classes are the digits ([`MNIST_CLASSES`]).
pub fn load_mnist(dir: impl AsRef<Path>, split: Split) -> Result<Dataset, DataError> {
    load_split(dir.as_ref(), split, &MNIST_CLASSES)
}

/// Loads Fashion-MNIST from a folder holding the official IDX file names (the
/// same as MNIST's). Classes are [`FASHION_MNIST_CLASSES`].
pub fn load_fashion_mnist(dir: impl AsRef<Path>, split: Split) -> Result<Dataset, DataError> {
    load_split(dir.as_ref(), split, &FASHION_MNIST_CLASSES)
}

/// The MNIST test split (10,000 images, 1 x 28 x 28, official order),
/// decoded from the copy embedded in the crate: no file or network access.
///
/// ```
/// let mnist = advclust_data::mnist_test_embedded()?;
/// assert_eq!(mnist.dims(), [10_000, 1, 28, 28]);
/// assert_eq!(mnist.label(0), 7);
/// let subset = mnist.shuffled(42).per_class(10);
/// assert_eq!(subset.len(), 100);
/// # Ok::<(), advclust_data::DataError>(())
/// ```
pub fn mnist_test_embedded() -> Result<Dataset, DataError> {
    let images = parse_idx_images(
        MNIST_TEST_IMAGES_GZ,
        Path::new("<embedded>/mnist/t10k-images-idx3-ubyte.gz"),
    )?;
    let labels_path = Path::new("<embedded>/mnist/t10k-labels-idx1-ubyte.gz");
    let labels = parse_idx_labels(MNIST_TEST_LABELS_GZ, labels_path)?;
    build(images, labels, labels_path, &MNIST_CLASSES)
}
