//! Documented limits on how much data an input file may ask for.
//!
//! Sizes read from headers (IDX dimensions, image width and height, a
//! download's `Content-Length`) and file lengths are checked against these
//! bounds with checked arithmetic before anything that large is allocated;
//! going over one is a [`DataError::TooLarge`](crate::DataError::TooLarge).

/// The most pixel values (`n * c * h * w`, all files of a call together) a
/// reader builds into one [`Dataset`](crate::Dataset): `2^30` on 64-bit
/// targets (4 GiB of `f32`, e.g. 1.3 million 28 x 28 images), `2^26` on
/// narrower ones. The largest usual benchmark split, CIFAR-10/100's 60,000
/// colour images, is 184 million values.
pub const MAX_PIXEL_VALUES: usize = if usize::BITS >= 64 { 1 << 30 } else { 1 << 26 };

/// The most bytes a reader holds for one file: read from disk, or inflated
/// from a gzip stream (all members together). `2^31` (2 GiB) on 64-bit
/// targets, `2^27` on narrower ones. Inflation stops reading as soon as the
/// output passes this, so a small "gzip bomb" cannot exhaust memory.
pub const MAX_FILE_BYTES: usize = if usize::BITS >= 64 { 1 << 31 } else { 1 << 27 };

/// The most pixels (`width * height`) of one image file, checked from its
/// PNG/JPEG/PNM/BMP header before it is decoded: `2^22` (e.g. 2048 x 2048, ten
/// times a 224 x 224 ImageNet crop a side). A header is a few bytes, so this is what
/// bounds the memory and time one small file can claim (a 300-byte JPEG claiming
/// 8192 x 8192 used to decode for seconds into 1 GiB); decoding one image at the
/// limit takes about 0.2 s.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 22;

/// The most bytes [`VerifiedDownload::fetch`](crate::VerifiedDownload::fetch)
/// accepts for one file (16 GiB), both as an announced `Content-Length`
/// (refused before anything is written) and as bytes actually received.
pub const MAX_DOWNLOAD_BYTES: u64 = 1 << 34;
