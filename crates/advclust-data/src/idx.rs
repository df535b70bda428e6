//! IDX files (MNIST, Fashion-MNIST) and the embedded MNIST test split.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::util::{MultiGz, gzip_error, is_gzip, read_file, read_up_to};
use crate::{DataError, Dataset, MAX_FILE_BYTES, MAX_PIXEL_VALUES};

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

/// The (inflated) bytes of an IDX file: the raw slice or a strict
/// multi-member gzip decoder over it.
enum Source<'a> {
    Raw(&'a [u8]),
    Gz(MultiGz<'a>),
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Raw(r) => r.read(buf),
            Source::Gz(g) => g.read(buf),
        }
    }
}

/// The dimensions and payload of an IDX file of unsigned bytes.
struct Idx {
    dims: Vec<usize>,
    payload: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes with `ndims` dimensions from memory,
/// gzipped or raw, checking the magic number and that the payload is exactly
/// the product of the dimensions (computed without overflow and at most
/// [`MAX_PIXEL_VALUES`]) before it is read. Inflation stops one byte past
/// the announced size (then counts, without storing, how much more there
/// is, up to [`MAX_FILE_BYTES`]). `check_dims` can refuse dimensions first.
fn read_idx(
    bytes: &[u8],
    path: &Path,
    magic: u32,
    ndims: usize,
    what: &'static str,
    check_dims: impl FnOnce(&[usize]) -> Result<(), DataError>,
) -> Result<Idx, DataError> {
    let gz = is_gzip(bytes);
    let mut src = if gz {
        Source::Gz(MultiGz::new(bytes))
    } else {
        Source::Raw(bytes)
    };
    let read_err = |e| gzip_error(path, e);
    let header_len = 4 + 4 * ndims;
    let mut header = [0u8; 16];
    let header = &mut header[..header_len];
    let got = read_up_to(&mut src, header).map_err(read_err)?;
    let truncated_header = |found| DataError::Truncated {
        path: path.to_path_buf(),
        what: "IDX header",
        expected: header_len,
        found,
    };
    if got < 4 {
        return Err(truncated_header(got));
    }
    let found = be_u32(header, 0);
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
        });
    }
    if got < header_len {
        return Err(truncated_header(got));
    }
    // u32 -> usize is lossless on every target Rust supports with std.
    let dims: Vec<usize> = (0..ndims)
        .map(|d| be_u32(header, 4 + 4 * d) as usize)
        .collect();
    check_dims(&dims)?;
    // At most 2^96 for three u32 dimensions: exact in u128.
    let announced = dims
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    if announced > MAX_PIXEL_VALUES as u128 {
        return Err(DataError::too_large(
            path,
            what,
            announced,
            MAX_PIXEL_VALUES as u128,
        ));
    }
    let expected = announced as usize; // <= MAX_PIXEL_VALUES
    let payload_error = |found: usize| {
        if found < expected {
            DataError::Truncated {
                path: path.to_path_buf(),
                what: "IDX payload",
                expected,
                found,
            }
        } else {
            DataError::TrailingData {
                path: path.to_path_buf(),
                what: "IDX payload",
                expected,
                found,
            }
        }
    };
    let capacity = if gz {
        // Only a hint: the real size is known once inflated.
        expected.min(bytes.len().saturating_mul(4))
    } else {
        let found = bytes.len() - header_len;
        if found != expected {
            return Err(payload_error(found));
        }
        expected
    };
    let mut payload = Vec::with_capacity(capacity);
    (&mut src)
        .take(expected as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(read_err)?;
    if payload.len() != expected {
        if payload.len() > expected {
            // Count the rest without storing it, up to the file limit.
            let room = MAX_FILE_BYTES.saturating_sub(header_len + payload.len()) as u64;
            let more = std::io::copy(&mut (&mut src).take(room + 1), &mut std::io::sink())
                .map_err(read_err)?;
            if more > room {
                return Err(DataError::too_large(
                    path,
                    "decompressed size (bytes)",
                    MAX_FILE_BYTES as u128 + 1,
                    MAX_FILE_BYTES as u128,
                ));
            }
            return Err(payload_error(payload.len() + more as usize));
        }
        return Err(payload_error(payload.len()));
    }
    Ok(Idx { dims, payload })
}

/// Parses an IDX3 unsigned-byte image file held in memory, gzipped (detected
/// by the magic `1f 8b`; all members of a multi-member file, in order) or
/// raw. `origin` only names the data in errors.
///
/// Checks the magic `0x00000803`, the header length and that the payload is
/// exactly `n * rows * cols` bytes; that size is checked against
/// [`MAX_PIXEL_VALUES`] ([`DataError::TooLarge`]) before anything is
/// allocated, and decompression stops as soon as it is exceeded. Corrupt
/// or truncated gzip data is a [`DataError::Gzip`], bytes after the last
/// gzip member a [`DataError::GzipTrailingGarbage`].
pub fn parse_idx_images(bytes: &[u8], origin: &Path) -> Result<IdxImages, DataError> {
    let idx = read_idx(
        bytes,
        origin,
        IDX3_UBYTE_MAGIC,
        3,
        "IDX image payload (bytes)",
        |d| {
            if d[1] == 0 || d[2] == 0 {
                return Err(DataError::Layout {
                    path: origin.to_path_buf(),
                    message: format!("IDX images of size {}x{}", d[1], d[2]),
                });
            }
            Ok(())
        },
    )?;
    Ok(IdxImages {
        n: idx.dims[0],
        rows: idx.dims[1],
        cols: idx.dims[2],
        pixels: idx.payload,
    })
}

/// Parses an IDX1 unsigned-byte label file held in memory, gzipped or raw.
///
/// Checks the magic `0x00000801` and that the payload is exactly `n` bytes,
/// with the same limits and gzip checks as [`parse_idx_images`].
pub fn parse_idx_labels(bytes: &[u8], origin: &Path) -> Result<Vec<u8>, DataError> {
    let idx = read_idx(
        bytes,
        origin,
        IDX1_UBYTE_MAGIC,
        1,
        "IDX label count",
        |_| Ok(()),
    )?;
    Ok(idx.payload)
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
