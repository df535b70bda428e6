//! Datasets for adversarial robustness testing of deep clustering models.
//!
//! Everything this crate reads ends up in one host-side type, [`Dataset`]:
//! images as a single contiguous NCHW `Vec<f32>` with pixel values in
//! `[0, 1]`, contiguous class ids `0..num_classes` and class names. Readers
//! cover the usual clustering benchmarks in their distribution formats: IDX
//! (MNIST, Fashion-MNIST; gzipped or raw), the CIFAR-10/100 and STL-10
//! binaries, and class-per-folder image trees (PNG, JPEG, PGM) including the
//! layouts of the shared real data (Fashion-MNIST PNGs rebuilt into the
//! official order, CIFAR-10 JPEGs, cropped Extended Yale B). Malformed input
//! never panics but gives a typed [`DataError`] naming the file (see
//! *Limits* below for what a hostile file may ask for). The MNIST
//! test split is embedded, so examples and tests can run with no file at
//! all, and [`VerifiedDownload`] fetches other files into a cache with a
//! SHA-256 check and an atomic rename. A dataset can be shuffled
//! reproducibly, subset (also per class), batched, resized, converted to
//! grayscale and, for victims that want it, normalised per channel; attacks
//! themselves are meant to work in `[0, 1]` pixel space. The crate has no
//! tensor dependency: turning batches into tensors is left to the caller.
//!
//! ```
//! use advclust_data::{LastBatch, mnist_test_embedded};
//!
//! let mnist = mnist_test_embedded()?;
//! assert_eq!(mnist.dims(), [10_000, 1, 28, 28]);
//! let sample = mnist.shuffled(7).per_class(50); // 500 images, 50 per digit
//! for batch in sample.batches(128, LastBatch::Keep)? {
//!     assert_eq!(batch.images.len(), batch.len() * 28 * 28);
//! }
//! # Ok::<(), advclust_data::DataError>(())
//! ```
//!
//! # Limits
//!
//! Sizes that come from input (IDX dimensions, record counts, image width
//! and height, file lengths, a download's `Content-Length`) are computed
//! with checked arithmetic and compared, before anything that large is
//! allocated, with the data actually present and with these limits; going
//! over one is a [`DataError::TooLarge`]:
//!
//! * [`MAX_PIXEL_VALUES`]: pixel values (`n * c * h * w`) one reader call
//!   builds (`2^30` on 64-bit targets, 4 GiB of `f32`).
//! * [`MAX_FILE_BYTES`]: bytes read from one file or inflated from one
//!   gzip file (2 GiB on 64-bit targets); inflation stops reading once past
//!   it.
//! * [`MAX_IMAGE_PIXELS`]: `width * height` of one image file, read from its
//!   header before decoding (`2^22`).
//! * [`MAX_DOWNLOAD_BYTES`]: bytes one [`VerifiedDownload`] accepts (16 GiB).
//!
//! An IDX header must announce exactly the payload that follows it. Gzip
//! files may have several members (as `cat a.gz b.gz` makes, read like
//! `zcat`); anything after the last member is refused
//! ([`DataError::GzipTrailingGarbage`]), and corrupt or truncated streams are
//! a [`DataError::Gzip`].

#![warn(missing_docs)]

mod binary;
mod dataset;
mod download;
mod error;
mod folder;
mod idx;
mod limits;
mod util;

pub use binary::{
    CIFAR10_CLASSES, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, Cifar100Labels, STL10_CLASSES,
    load_cifar10_bin, load_cifar10_dir, load_cifar100_bin, load_cifar100_dir, load_stl10_bin,
    load_stl10_dir,
};
pub use dataset::{Batch, Batches, ChannelStats, Dataset, LastBatch};
pub use download::{CONNECT_TIMEOUT, READ_TIMEOUT, VerifiedDownload, sha256_file, sha256_hex};
pub use error::DataError;
pub use folder::{
    ColorMode, FolderListing, IMAGE_EXTENSIONS, ImageFolder, load_cifar10_folder,
    load_fashion_mnist_png, load_fashion_mnist_png_test, load_image_files, load_image_folder,
    load_ranked_folder, load_yaleb,
};
pub use idx::{
    FASHION_MNIST_CLASSES, IDX1_UBYTE_MAGIC, IDX3_UBYTE_MAGIC, IdxImages, MNIST_CLASSES,
    MNIST_TEST_IMAGES_GZ, MNIST_TEST_LABELS_GZ, Split, encode_idx_images, encode_idx_labels,
    load_fashion_mnist, load_idx, load_mnist, mnist_test_embedded, parse_idx_images,
    parse_idx_labels, read_idx_images, read_idx_labels,
};
pub use limits::{MAX_DOWNLOAD_BYTES, MAX_FILE_BYTES, MAX_IMAGE_PIXELS, MAX_PIXEL_VALUES};
