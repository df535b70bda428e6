//! The crate's single error type.

use std::path::{Path, PathBuf};

/// Every way loading, transforming or downloading data can fail.
///
/// Readers never panic on malformed input: truncated files, wrong magic
/// numbers, inconsistent counts, undecodable images and so on all end up here.
/// Where a file is involved its path is part of the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An error of advclust-core (building an `ImageBatch` from a dataset).
    #[error(transparent)]
    Core(#[from] advclust_core::CoreError),
    /// A file or folder that should exist does not.
    #[error("{}: no such file or directory", path.display())]
    Missing {
        /// The path that was looked for.
        path: PathBuf,
    },

    /// Any other I/O failure (permissions, a folder given as a file, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file ends before the data its header announces.
    #[error("{}: truncated {what}: expected {expected} bytes, found {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (`"header"`, `"image payload"`, ...).
        what: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes available.
        found: usize,
    },

    /// A file holds more bytes than its header announces.
    #[error("{}: {found} bytes of {what}, but the header announces {expected}", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        found: usize,
    },

    /// A header, a file length or a requested size asks for more than one of
    /// the crate's documented limits ([`MAX_PIXEL_VALUES`](crate::MAX_PIXEL_VALUES),
    /// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES),
    /// [`MAX_IMAGE_PIXELS`](crate::MAX_IMAGE_PIXELS),
    /// [`MAX_DOWNLOAD_BYTES`](crate::MAX_DOWNLOAD_BYTES)). Raised before
    /// anything that large is allocated or read.
    #[error("{}: {what} is {requested}, over the limit of {limit}", path.display())]
    TooLarge {
        /// The file (or destination path of a download).
        path: PathBuf,
        /// What was measured (`"IDX image payload (bytes)"`, ...).
        what: &'static str,
        /// The size asked for, computed without overflow; for a stream cut
        /// off at the limit, the number of bytes seen before stopping
        /// (`limit + 1`), so "at least" this much.
        requested: u128,
        /// The limit that was exceeded.
        limit: u128,
    },

    /// A gzip file is corrupt or truncated (bad header, bad deflate data,
    /// CRC or length mismatch, or the stream ends early).
    #[error("{}: corrupt or truncated gzip data: {source}", path.display())]
    Gzip {
        /// The file.
        path: PathBuf,
        /// The decompressor's error.
        #[source]
        source: std::io::Error,
    },

    /// A gzip file's last member is followed by bytes that are not another
    /// gzip member (`zcat` would warn "trailing garbage ignored"; this crate
    /// refuses the file).
    #[error(
        "{}: {len} bytes of trailing garbage after the last gzip member (at byte {offset})",
        path.display()
    )]
    GzipTrailingGarbage {
        /// The file.
        path: PathBuf,
        /// Offset of the first stray byte in the compressed file.
        offset: usize,
        /// Number of stray bytes.
        len: usize,
    },

    /// An IDX file does not start with the expected magic number.
    #[error("{}: bad magic number 0x{found:08x} (expected 0x{expected:08x})", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number this reader expects.
        expected: u32,
        /// The magic number found.
        found: u32,
    },

    /// Image and label files disagree on the number of samples.
    #[error("{}: {labels} labels for {images} images", path.display())]
    CountMismatch {
        /// The label file (or the image file when labels come from elsewhere).
        path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// A fixed-record binary file (CIFAR, STL-10) whose length is not a
    /// whole number of records, or is empty.
    #[error("{}: length {len} is not a positive multiple of the {record}-byte record", path.display())]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// File length in bytes.
        len: usize,
        /// Record length in bytes.
        record: usize,
    },

    /// A label is outside `0..num_classes` (after any documented offset).
    #[error("{}: label {label} out of range for {num_classes} classes", path.display())]
    LabelOutOfRange {
        /// The file the label came from.
        path: PathBuf,
        /// The offending raw label.
        label: usize,
        /// Number of classes the format allows.
        num_classes: usize,
    },

    /// An image file could not be decoded.
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// An image's size differs from the first image of the folder.
    #[error(
        "{}: image is {found_w}x{found_h} (w x h), but the dataset's first image is {expected_w}x{expected_h}",
        path.display()
    )]
    ImageSizeMismatch {
        /// The odd image.
        path: PathBuf,
        /// Width of the first image.
        expected_w: usize,
        /// Height of the first image.
        expected_h: usize,
        /// Width of this image.
        found_w: usize,
        /// Height of this image.
        found_h: usize,
    },

    /// A folder that should hold class folders or images holds none.
    #[error("{}: {what}", path.display())]
    Empty {
        /// The folder (or file).
        path: PathBuf,
        /// What was missing.
        what: &'static str,
    },

    /// The files are there but not in the expected layout (for example the
    /// wrong class folders for CIFAR-10).
    #[error("{}: {message}", path.display())]
    Layout {
        /// The folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A caller-supplied argument is inconsistent with the data (index out
    /// of range, channel count mismatch, zero size, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The server answered with a non-success HTTP status.
    #[error("{url}: HTTP status {status}")]
    HttpStatus {
        /// The requested URL.
        url: String,
        /// The status code.
        status: u16,
    },

    /// The request failed before a status was received (connection
    /// refused, DNS failure, timeout, TLS error, broken body, ...).
    #[error("{url}: download failed: {source}")]
    Network {
        /// The requested URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: Box<ureq::Error>,
    },

    /// Downloaded bytes do not have the expected SHA-256. Nothing was kept at
    /// the destination path.
    #[error("{url}: sha256 mismatch for {}: expected {expected}, got {actual}", path.display())]
    ChecksumMismatch {
        /// The requested URL.
        url: String,
        /// The destination path (which was not written).
        path: PathBuf,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
    },
}

impl DataError {
    /// Wraps an I/O error, turning "not found" into [`DataError::Missing`].
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { path }
        } else {
            DataError::Io { path, source }
        }
    }

    /// A [`DataError::TooLarge`] for `path`.
    pub(crate) fn too_large(
        path: impl AsRef<Path>,
        what: &'static str,
        requested: u128,
        limit: u128,
    ) -> Self {
        DataError::TooLarge {
            path: path.as_ref().to_path_buf(),
            what,
            requested,
            limit,
        }
    }
}
