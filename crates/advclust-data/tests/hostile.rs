//! Hostile input (issue 12): headers that ask for absurd sizes, gzip files
//! that are multi-member, truncated or followed by garbage, and arguments
//! that used to panic. Each case asserts the typed error it must give.

mod common;

use std::io::Write;
use std::path::Path;

use advclust_data::*;
use common::*;

const MEM: &str = "<mem>";

fn origin() -> &'static Path {
    Path::new(MEM)
}

/// IDX3 header of `n` images of `rows x cols` followed by `payload`.
fn idx3_header(n: u32, rows: u32, cols: u32, payload: &[u8]) -> Vec<u8> {
    idx3(payload, n, rows, cols)
}

fn too_large_requested(e: &DataError) -> Option<u128> {
    match e {
        DataError::TooLarge { requested, .. } => Some(*requested),
        _ => None,
    }
}

// ---- 1. size bombs -------------------------------------------------------

#[test]
fn mnist_gz_announcing_5m_images_is_refused_before_allocating() {
    // The reported file: a few MB of gzip whose header says 5,000,000 images.
    let t = TempDir::new("h-5m");
    let img = gzip(&idx3_header(5_000_000, 28, 28, &bytes(2000 * 784, 1)));
    write(&t.join("train-images-idx3-ubyte.gz"), &img);
    write(
        &t.join("train-labels-idx1-ubyte.gz"),
        &gzip(&idx1(&[0; 10])),
    );
    let e = load_mnist(t.path(), Split::Train).unwrap_err();
    assert_eq!(too_large_requested(&e), Some(5_000_000 * 784), "{e:?}");
    assert!(matches!(&e, DataError::TooLarge { limit, .. } if *limit == MAX_PIXEL_VALUES as u128));
    assert!(e.to_string().contains("train-images-idx3-ubyte.gz"), "{e}");
}

#[test]
fn idx_header_within_limit_must_match_inflated_payload() {
    // 1,000,000 images is under the limit, but only 100 follow.
    let gz = gzip(&idx3_header(1_000_000, 28, 28, &bytes(100 * 784, 2)));
    let e = parse_idx_images(&gz, origin()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 784_000_000,
                found: 78_400,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn idx_raw_huge_dims_are_too_large() {
    let v = idx3_header(u32::MAX, u32::MAX, u32::MAX, &[]);
    let e = parse_idx_images(&v, origin()).unwrap_err();
    let max = u32::MAX as u128;
    assert_eq!(too_large_requested(&e), Some(max * max * max), "{e:?}");
}

#[test]
fn idx_label_count_over_limit_is_too_large() {
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&u32::MAX.to_be_bytes());
    v.extend_from_slice(&[1, 2, 3]);
    for buf in [v.clone(), gzip(&v)] {
        let e = parse_idx_labels(&buf, origin()).unwrap_err();
        assert_eq!(too_large_requested(&e), Some(u32::MAX as u128), "{e:?}");
    }
    // Under the limit but short: the exact-size check answers.
    let mut v = vec![0, 0, 8, 1];
    v.extend_from_slice(&1_000_000u32.to_be_bytes());
    v.extend_from_slice(&[1, 2, 3]);
    let e = parse_idx_labels(&gzip(&v), origin()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 1_000_000,
                found: 3,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn gzip_inflating_far_past_the_header_is_trailing_data() {
    // One 2x2 image announced, then 4 MB of zeros (a few kB compressed).
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&idx3_header(1, 2, 2, &[1, 2, 3, 4])).unwrap();
    let zeros = vec![0u8; 1 << 16];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 100_000);
    let e = parse_idx_images(&gz, origin()).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::TrailingData {
                expected: 4,
                found,
                ..
            } if found == 4 + (1 << 22)
        ),
        "{e:?}"
    );
}

/// A sparse file one byte over [`MAX_FILE_BYTES`]: refused from its length
/// without reading it.
fn sparse_oversized(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    f.set_len(MAX_FILE_BYTES as u64 + 1).unwrap();
}

#[test]
fn oversized_files_are_refused_by_length() {
    let t = TempDir::new("h-sparse");
    let big = t.join("big.bin");
    sparse_oversized(&big);
    let want = Some(MAX_FILE_BYTES as u128 + 1);
    let e = read_idx_images(&big).unwrap_err();
    assert_eq!(too_large_requested(&e), want, "{e:?}");
    let e = load_cifar10_bin(&[&big]).unwrap_err();
    assert_eq!(too_large_requested(&e), want, "{e:?}");
    let e = load_stl10_bin(&big, &big).unwrap_err();
    assert_eq!(too_large_requested(&e), want, "{e:?}");
    let png = t.join("c/a.png");
    sparse_oversized(&png);
    let e = load_image_folder(t.path(), ColorMode::Auto).unwrap_err();
    assert_eq!(too_large_requested(&e), want, "{e:?}");
}

/// A PNG whose IHDR announces `w x h` (CRC fixed up), with the IDAT of a 2x2.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    image::GrayImage::from_raw(2, 2, vec![1, 2, 3, 4])
        .unwrap()
        .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(&buf[12..16], b"IHDR");
    buf[16..20].copy_from_slice(&w.to_be_bytes());
    buf[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&buf[12..29]);
    buf[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    buf
}

/// A baseline JPEG whose SOF0 announces `w x h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    image::RgbImage::from_raw(8, 8, bytes(8 * 8 * 3, 5))
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut buf),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let sof = buf.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
    buf[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    buf[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    buf
}

#[test]
fn image_headers_announcing_huge_sizes_are_refused_before_decoding() {
    let t = TempDir::new("h-imgbomb");
    let cases: [(&str, Vec<u8>, u128); 3] = [
        (
            "a.pgm",
            b"P5\n100000 100000\n255\n\x00\x01".to_vec(),
            100_000 * 100_000,
        ),
        ("a.png", png_claiming(1 << 20, 1 << 20), 1 << 40),
        ("a.jpg", jpeg_claiming(65_535, 65_535), 65_535 * 65_535),
    ];
    for (name, data, pixels) in cases {
        let path = t.join(format!("{name}/c/{name}"));
        write(&path, &data);
        let e = load_image_files(&[path], vec![0], vec!["c".into()], ColorMode::Auto).unwrap_err();
        assert_eq!(too_large_requested(&e), Some(pixels), "{name}: {e:?}");
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn later_images_are_size_checked_from_their_header() {
    let t = TempDir::new("h-later");
    write(&t.join("c/a.pgm"), &pgm(4, 4, &[7; 16]));
    // Header 60000 x 60000, no pixels: over the per-image limit.
    write(&t.join("c/b.pgm"), b"P5\n60000 60000\n255\n");
    let e = load_image_folder(t.path(), ColorMode::Gray).unwrap_err();
    assert_eq!(too_large_requested(&e), Some(60_000 * 60_000), "{e:?}");
    // Header 5 x 4 with a truncated body: the size mismatch is reported
    // from the header, before the broken body is decoded.
    write(&t.join("c/b.pgm"), b"P5\n5 4\n255\n\x00");
    let e = load_image_folder(t.path(), ColorMode::Gray).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::ImageSizeMismatch {
                found_w: 5,
                found_h: 4,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn many_images_over_the_pixel_limit_are_refused_before_allocating() {
    let t = TempDir::new("h-many");
    let p = t.join("c/a.png");
    rgb_image(&p, 256, 256, bytes(256 * 256 * 3, 4));
    let n = 20_000; // 20,000 x 3 x 256 x 256 = 3.9e9 values
    let e =
        load_image_files(&vec![p; n], vec![0; n], vec!["c".into()], ColorMode::Rgb).unwrap_err();
    assert_eq!(
        too_large_requested(&e),
        Some(20_000 * 3 * 256 * 256),
        "{e:?}"
    );
}

#[test]
fn zero_sized_image_is_a_typed_error() {
    let t = TempDir::new("h-zero");
    write(&t.join("c/a.pgm"), b"P5\n0 0\n255\n");
    let e = load_image_folder(t.path(), ColorMode::Gray).unwrap_err();
    assert!(
        matches!(e, DataError::Layout { .. } | DataError::Decode { .. }),
        "{e:?}"
    );
}

// ---- 2. gzip framing -------------------------------------------------------

fn sample_idx() -> (Vec<u8>, Vec<u8>) {
    let pixels = bytes(3 * 5 * 4, 9);
    (idx3(&pixels, 3, 5, 4), idx1(&[0, 1, 2]))
}

#[test]
fn multi_member_gzip_equals_single_member() {
    let (img, lab) = sample_idx();
    let single = parse_idx_images(&gzip(&img), origin()).unwrap();
    // Split inside the header and inside the payload, with an empty member.
    let mut multi = gzip(&img[..7]);
    multi.extend(gzip(&[]));
    multi.extend(gzip(&img[7..30]));
    multi.extend(gzip(&img[30..]));
    let mut zcat = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(multi.as_slice()),
        &mut zcat,
    )
    .unwrap();
    assert_eq!(zcat, img);
    assert_eq!(parse_idx_images(&multi, origin()).unwrap(), single);
    assert_eq!(parse_idx_images(&img, origin()).unwrap(), single);

    let mut multi_lab = gzip(&lab[..3]);
    multi_lab.extend(gzip(&lab[3..]));
    assert_eq!(
        parse_idx_labels(&multi_lab, origin()).unwrap(),
        vec![0, 1, 2]
    );

    // And through the file loaders (`cat a.gz b.gz > x.gz`).
    let t = TempDir::new("h-multi");
    write(&t.join("t10k-images-idx3-ubyte.gz"), &multi);
    write(&t.join("t10k-labels-idx1-ubyte.gz"), &multi_lab);
    let d = load_mnist(t.path(), Split::Test).unwrap();
    assert_eq!(d.dims(), [3, 1, 5, 4]);
    assert_eq!(d.to_u8(), single.pixels);
}

#[test]
fn trailing_garbage_after_gzip_is_refused() {
    let (img, lab) = sample_idx();
    let gz = gzip(&img);
    for tail in [&b"garbage"[..], &[0u8; 8][..], &[0x1f][..], &b"\n"[..]] {
        let mut v = gz.clone();
        v.extend_from_slice(tail);
        let e = parse_idx_images(&v, origin()).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::GzipTrailingGarbage { offset, len, .. }
                    if offset == gz.len() && len == tail.len()
            ),
            "{tail:?}: {e:?}"
        );
        assert!(e.to_string().contains(MEM), "{e}");
    }
    // Garbage after a second member, through a file.
    let t = TempDir::new("h-garbage");
    let mut v = gzip(&lab[..2]);
    v.extend(gzip(&lab[2..]));
    let at = v.len();
    v.extend_from_slice(b"xyz");
    write(&t.join("l.gz"), &v);
    let e = read_idx_labels(t.join("l.gz")).unwrap_err();
    assert!(
        matches!(e, DataError::GzipTrailingGarbage { offset, len: 3, .. } if offset == at),
        "{e:?}"
    );
    assert!(e.to_string().contains("l.gz"), "{e}");
    // Bytes that start like a member but are not one are corrupt gzip.
    let mut v = gz.clone();
    v.extend_from_slice(&[0x1f, 0x8b, 0xff, 0xff]);
    let e = parse_idx_images(&v, origin()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
}

#[test]
fn truncated_or_corrupt_gzip_is_a_gzip_error() {
    let (img, _) = sample_idx();
    let gz = gzip(&img);
    for cut in 2..gz.len() {
        let e = parse_idx_images(&gz[..cut], origin()).unwrap_err();
        assert!(matches!(e, DataError::Gzip { .. }), "cut at {cut}: {e:?}");
    }
    // A wrong CRC in the trailer.
    let mut bad = gz.clone();
    let crc_at = bad.len() - 8;
    bad[crc_at] ^= 0xff;
    let e = parse_idx_images(&bad, origin()).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert!(e.to_string().contains("gzip"), "{e}");
}

// ---- 3./4. arguments that used to panic -----------------------------------

fn toy(n: usize) -> Dataset {
    Dataset::new(
        (0..n * 4).map(|i| i as f32 / (n * 4) as f32).collect(),
        [n, 1, 2, 2],
        vec![0; n],
        vec!["a".into()],
    )
    .unwrap()
}

#[test]
fn zero_batch_size_is_an_error() {
    let e = toy(3).batches(0, LastBatch::Keep).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
    let e = toy(3).batches(0, LastBatch::Drop).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
}

#[test]
fn huge_batch_size_does_not_overflow() {
    let d = toy(3);
    let b: Vec<_> = d.batches(usize::MAX, LastBatch::Keep).unwrap().collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].len(), 3);
    assert_eq!(d.batches(usize::MAX, LastBatch::Drop).unwrap().count(), 0);
}

#[test]
fn overflowing_image_dims_are_refused_even_without_images() {
    let e = Dataset::new(vec![], [0, usize::MAX, 2, 2], vec![], vec!["a".into()]).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
}

#[test]
fn resize_to_an_impossible_size_is_an_error() {
    let d = toy(2);
    let e = d.resize(usize::MAX, 2).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
    // 2 x 1 x 2^31 x 2^31 values: representable, but not allocatable.
    let e = d.resize(1 << 31, 1 << 31).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
}

#[test]
fn stats_layout_overflow_is_an_error() {
    let s = ChannelStats::new(vec![0.5, 0.5], vec![0.1, 0.1]).unwrap();
    let e = s.normalize_slice(&mut [0.0; 4], usize::MAX).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
    let e = s.denormalize_slice(&mut [0.0; 4], usize::MAX).unwrap_err();
    assert!(matches!(e, DataError::InvalidArgument(_)), "{e:?}");
}
