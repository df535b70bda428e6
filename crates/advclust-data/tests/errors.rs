//! Malformed input gives a typed `DataError` (with the path), never a panic.

mod common;

use advclust_data::*;
use common::*;

fn mnist_pair(t: &TempDir, images: &[u8], labels: &[u8]) -> Result<Dataset, DataError> {
    write(&t.join("img"), images);
    write(&t.join("lab"), labels);
    load_idx(t.join("img"), t.join("lab"), &MNIST_CLASSES)
}

fn assert_names_path(e: &DataError, t: &TempDir) {
    let msg = e.to_string();
    assert!(
        msg.contains(&t.path().display().to_string()),
        "message should contain the path: {msg}"
    );
}

#[test]
fn idx_truncated_payload() {
    let t = TempDir::new("e-trunc");
    let mut img = idx3(&bytes(2 * 4, 1), 2, 2, 2);
    img.pop();
    let e = mnist_pair(&t, &img, &idx1(&[0, 1])).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 8,
                found: 7,
                ..
            }
        ),
        "{e:?}"
    );
    assert_names_path(&e, &t);
}

#[test]
fn idx_truncated_header_and_gzip() {
    let t = TempDir::new("e-trunc-h");
    let e = mnist_pair(&t, &[0, 0, 8, 3, 0, 0], &idx1(&[0])).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
    let e = mnist_pair(&t, &[0, 0], &idx1(&[0])).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "{e:?}");
    // a gzip stream cut in half is a gzip error on that file
    let gz = gzip(&idx3(&bytes(64, 3), 1, 8, 8));
    let e = mnist_pair(&t, &gz[..gz.len() / 2], &idx1(&[0])).unwrap_err();
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert_names_path(&e, &t);
}

#[test]
fn idx_trailing_bytes() {
    let t = TempDir::new("e-trail");
    let mut img = idx3(&bytes(8, 1), 2, 2, 2);
    img.push(0);
    let e = mnist_pair(&t, &img, &idx1(&[0, 1])).unwrap_err();
    assert!(matches!(e, DataError::TrailingData { .. }), "{e:?}");
}

#[test]
fn idx_wrong_magic() {
    let t = TempDir::new("e-magic");
    // labels file given as images
    let e = mnist_pair(&t, &idx1(&[0, 1]), &idx1(&[0, 1])).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{e:?}"
    );
    assert_names_path(&e, &t);
    let e = mnist_pair(&t, &idx3(&[0; 4], 1, 2, 2), &idx3(&[0; 4], 1, 2, 2)).unwrap_err();
    assert!(matches!(e, DataError::BadMagic { .. }), "{e:?}");
}

#[test]
fn idx_label_count_mismatch() {
    let t = TempDir::new("e-count");
    let e = mnist_pair(&t, &idx3(&bytes(12, 1), 3, 2, 2), &idx1(&[0, 1])).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_names_path(&e, &t);
}

#[test]
fn idx_label_out_of_range() {
    let t = TempDir::new("e-range");
    let e = mnist_pair(&t, &idx3(&bytes(4, 1), 1, 2, 2), &idx1(&[10])).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                label: 10,
                num_classes: 10,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn missing_files() {
    let t = TempDir::new("e-missing");
    let e = read_idx_images(t.join("nope.gz")).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert_names_path(&e, &t);
    let e = load_mnist(t.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("t10k-images-idx3-ubyte.gz"), "{e}");
    assert!(matches!(
        load_cifar10_dir(t.path(), Split::Train),
        Err(DataError::Missing { .. })
    ));
    assert!(matches!(
        load_stl10_dir(t.path(), Split::Test),
        Err(DataError::Missing { .. })
    ));
    assert!(matches!(
        load_image_folder(t.join("absent"), ColorMode::Auto),
        Err(DataError::Missing { .. })
    ));
    assert!(matches!(
        load_fashion_mnist_png_test(t.path()),
        Err(DataError::Missing { .. })
    ));
    // a ranked layout missing one image
    gray_png(&t.join("r/0/0000.png"), 2, 2, vec![0; 4]);
    write(&t.join("r/labels"), &idx1(&[0, 0]));
    let e = load_fashion_mnist_png(t.join("r"), t.join("r/labels")).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("0001.png"), "{e}");
}

#[test]
fn cifar_wrong_record_size() {
    let t = TempDir::new("e-cifar");
    write(&t.join("test_batch.bin"), &vec![0u8; 3073 * 2 + 5]);
    let e = load_cifar10_dir(t.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::RecordSize {
                len: 6151,
                record: 3073,
                ..
            }
        ),
        "{e:?}"
    );
    assert_names_path(&e, &t);
    // a CIFAR-10 file read as CIFAR-100 has the wrong record size too
    write(&t.join("c10.bin"), &vec![0u8; 3073 * 3]);
    assert!(matches!(
        load_cifar100_bin(&[t.join("c10.bin")], Cifar100Labels::Fine),
        Err(DataError::RecordSize { record: 3074, .. })
    ));
    // empty file
    write(&t.join("empty.bin"), &[]);
    assert!(matches!(
        load_cifar10_bin(&[t.join("empty.bin")]),
        Err(DataError::RecordSize { len: 0, .. })
    ));
    // label out of range
    let mut rec = vec![10u8];
    rec.extend(vec![0u8; 3072]);
    write(&t.join("badlabel.bin"), &rec);
    assert!(matches!(
        load_cifar10_bin(&[t.join("badlabel.bin")]),
        Err(DataError::LabelOutOfRange { label: 10, .. })
    ));
    let none: [&str; 0] = [];
    assert!(matches!(
        load_cifar10_bin(&none),
        Err(DataError::InvalidArgument(_))
    ));
}

#[test]
fn stl_wrong_record_size_and_labels() {
    let t = TempDir::new("e-stl");
    write(&t.join("test_X.bin"), &vec![0u8; 27648 + 1]);
    write(&t.join("test_y.bin"), &[1]);
    let e = load_stl10_dir(t.path(), Split::Test).unwrap_err();
    assert!(
        matches!(e, DataError::RecordSize { record: 27648, .. }),
        "{e:?}"
    );
    write(&t.join("test_X.bin"), &vec![0u8; 27648 * 2]);
    let e = load_stl10_dir(t.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 2,
                labels: 1,
                ..
            }
        ),
        "{e:?}"
    );
    write(&t.join("test_y.bin"), &[0, 11]);
    assert!(matches!(
        load_stl10_dir(t.path(), Split::Test),
        Err(DataError::LabelOutOfRange { label: 0, .. })
    ));
}

#[test]
fn corrupt_image() {
    let t = TempDir::new("e-corrupt");
    gray_png(&t.join("a/0.png"), 2, 2, vec![0; 4]);
    write(&t.join("a/1.png"), &bytes(300, 9));
    let e = load_image_folder(t.path(), ColorMode::Auto).unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("1.png"), "{e}");
    // also when it is the first image, and a valid PNG header with a cut body
    let t2 = TempDir::new("e-corrupt2");
    gray_png(&t2.join("a/1.png"), 8, 8, bytes(64, 1));
    let good = std::fs::read(t2.join("a/1.png")).unwrap();
    write(&t2.join("a/0.png"), &good[..good.len() - 20]);
    let e = load_image_folder(t2.path(), ColorMode::Auto).unwrap_err();
    assert!(matches!(e, DataError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("0.png"), "{e}");
}

#[test]
fn mismatched_image_sizes() {
    let t = TempDir::new("e-size");
    for i in 0..100 {
        gray_png(&t.join(format!("a/{i:03}.png")), 4, 4, vec![0; 16]);
    }
    gray_png(&t.join("b/odd.png"), 4, 5, vec![0; 20]);
    let e = load_image_folder(t.path(), ColorMode::Auto).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::ImageSizeMismatch {
                expected_w: 4,
                expected_h: 4,
                found_w: 4,
                found_h: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("odd.png"), "{e}");
}

#[test]
fn empty_folders() {
    let t = TempDir::new("e-empty");
    let e = load_image_folder(t.path(), ColorMode::Auto).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    assert_names_path(&e, &t);
    // a class folder without images
    gray_png(&t.join("a/0.png"), 2, 2, vec![0; 4]);
    std::fs::create_dir_all(t.join("b")).unwrap();
    write(&t.join("b/notes.txt"), b"x");
    let e = load_image_folder(t.path(), ColorMode::Auto).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    assert!(e.to_string().contains("/b"), "{e}");
    assert!(matches!(
        load_image_files(&[], vec![], vec![], ColorMode::Auto),
        Err(DataError::Empty { .. })
    ));
}

#[test]
fn malformed_embedded_style_buffers() {
    let origin = std::path::Path::new("<mem>");
    for buf in [&[][..], &[0x1f, 0x8b][..], &[1, 2, 3, 4, 5][..]] {
        assert!(parse_idx_images(buf, origin).is_err());
        assert!(parse_idx_labels(buf, origin).is_err());
    }
    // huge announced dims must not allocate or panic
    let mut v = vec![0, 0, 8, 3];
    for _ in 0..3 {
        v.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    assert!(matches!(
        parse_idx_images(&v, origin),
        Err(DataError::TooLarge { .. })
    ));
    let z = idx3(&[], 0, 0, 5);
    assert!(matches!(
        parse_idx_images(&z, origin),
        Err(DataError::Layout { .. })
    ));
}
