//! Every reader on small synthetic files written to a temp folder.

mod common;

use advclust_data::*;
use common::*;

#[test]
fn idx_gzip_and_raw() {
    let t = TempDir::new("idx");
    let px = bytes(5 * 4 * 3, 1);
    let labels = [3u8, 1, 4, 1, 5];
    write(&t.join("a/img"), &idx3(&px, 5, 4, 3));
    write(&t.join("a/lab"), &idx1(&labels));
    write(&t.join("b/img.gz"), &gzip(&idx3(&px, 5, 4, 3)));
    write(&t.join("b/lab.gz"), &gzip(&idx1(&labels)));
    let a = load_idx(t.join("a/img"), t.join("a/lab"), &MNIST_CLASSES).unwrap();
    let b = load_idx(t.join("b/img.gz"), t.join("b/lab.gz"), &MNIST_CLASSES).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.dims(), [5, 1, 4, 3]);
    assert_eq!(a.labels(), &[3, 1, 4, 1, 5]);
    assert_eq!(a.to_u8(), px);
    assert_eq!(a.class_names()[9], "9");
    let raw = read_idx_images(t.join("b/img.gz")).unwrap();
    assert_eq!((raw.n, raw.rows, raw.cols), (5, 4, 3));
    assert_eq!(raw.pixels, px);
    // encode back
    assert_eq!(
        encode_idx_images(&a.to_u8(), 5, 4, 3).unwrap(),
        idx3(&px, 5, 4, 3)
    );
    assert_eq!(encode_idx_labels(a.labels()).unwrap(), idx1(&labels));
    assert!(encode_idx_images(&px, 5, 4, 4).is_err());
    assert!(encode_idx_labels(&[256]).is_err());
}

#[test]
fn mnist_and_fashion_dirs() {
    let t = TempDir::new("mnistdir");
    let px = bytes(3 * 28 * 28, 2);
    // test split gzipped, train split raw
    write(
        &t.join("t10k-images-idx3-ubyte.gz"),
        &gzip(&idx3(&px, 3, 28, 28)),
    );
    write(
        &t.join("t10k-labels-idx1-ubyte.gz"),
        &gzip(&idx1(&[0, 9, 2])),
    );
    write(&t.join("train-images-idx3-ubyte"), &idx3(&px, 3, 28, 28));
    write(&t.join("train-labels-idx1-ubyte"), &idx1(&[1, 1, 1]));
    let test = load_mnist(t.path(), Split::Test).unwrap();
    assert_eq!(test.labels(), &[0, 9, 2]);
    let train = load_fashion_mnist(t.path(), Split::Train).unwrap();
    assert_eq!(train.labels(), &[1, 1, 1]);
    assert_eq!(train.class_names()[1], "Trouser");
    assert_eq!(train.images(), test.images());
}

#[test]
fn embedded_mnist() {
    let d = mnist_test_embedded().unwrap();
    assert_eq!(d.dims(), [10_000, 1, 28, 28]);
    assert_eq!(
        d.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(&d.labels()[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert!(d.images().iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert_eq!(
        sha256_hex(MNIST_TEST_IMAGES_GZ),
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    );
    assert_eq!(
        sha256_hex(MNIST_TEST_LABELS_GZ),
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    );
}

/// CIFAR record: label bytes then R, G, B planes of 32x32.
fn cifar_record(label: &[u8], seed: u32) -> (Vec<u8>, Vec<u8>) {
    let px = bytes(3072, seed);
    let mut rec = label.to_vec();
    rec.extend_from_slice(&px);
    (rec, px)
}

#[test]
fn cifar10_binary() {
    let t = TempDir::new("cifar10");
    let mut all_px = Vec::new();
    let mut labels = Vec::new();
    for (f, name) in [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ]
    .iter()
    .enumerate()
    {
        let mut file = Vec::new();
        for r in 0..2 {
            let label = ((f * 2 + r) % 10) as u8;
            let (rec, px) = cifar_record(&[label], (f * 2 + r) as u32);
            file.extend(rec);
            if f < 5 {
                all_px.extend(px);
                labels.push(label as usize);
            }
        }
        write(&t.join(name), &file);
    }
    let train = load_cifar10_dir(t.path(), Split::Train).unwrap();
    assert_eq!(train.dims(), [10, 3, 32, 32]);
    assert_eq!(train.labels(), &labels[..]);
    assert_eq!(train.to_u8(), all_px);
    assert_eq!(train.class_names()[0], "airplane");
    let test = load_cifar10_dir(t.path(), Split::Test).unwrap();
    assert_eq!(test.labels(), &[0, 1]);
    // the pixel planes are already CHW: value of R(0,1) is byte 1 of the payload
    let (_, px) = cifar_record(&[0], 10);
    assert_eq!(test.image(0)[1], px[1] as f32 / 255.0);
    assert_eq!(test.image(0)[1024], px[1024] as f32 / 255.0);
}

#[test]
fn cifar100_binary_fine_and_coarse() {
    let t = TempDir::new("cifar100");
    let mut file = Vec::new();
    for (i, (coarse, fine)) in [(19u8, 99u8), (0, 4), (7, 6)].iter().enumerate() {
        file.extend(cifar_record(&[*coarse, *fine], i as u32).0);
    }
    write(&t.join("test.bin"), &file);
    let fine = load_cifar100_dir(t.path(), Split::Test, Cifar100Labels::Fine).unwrap();
    assert_eq!(fine.labels(), &[99, 4, 6]);
    assert_eq!(fine.num_classes(), 100);
    assert_eq!(fine.class_names()[99], "worm");
    let coarse = load_cifar100_bin(&[t.join("test.bin")], Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse.labels(), &[19, 0, 7]);
    assert_eq!(coarse.num_classes(), 20);
    assert_eq!(coarse.images(), fine.images());
    assert_eq!(
        CIFAR100_FINE_CLASSES.len(),
        100,
        "fine names are the sorted official list"
    );
    assert!(CIFAR100_FINE_CLASSES.is_sorted());
    assert!(CIFAR100_COARSE_CLASSES.is_sorted());
}

#[test]
fn stl10_binary_is_transposed() {
    let t = TempDir::new("stl");
    // 2 images; byte at file offset c*9216 + col*96 + row = (row + 2*col + 50*c + 7*img) % 256
    let mut file = Vec::new();
    for img in 0..2usize {
        for c in 0..3usize {
            for col in 0..96usize {
                for row in 0..96usize {
                    file.push(((row + 2 * col + 50 * c + 7 * img) % 256) as u8);
                }
            }
        }
    }
    write(&t.join("test_X.bin"), &file);
    write(&t.join("test_y.bin"), &[1, 10]);
    let d = load_stl10_dir(t.path(), Split::Test).unwrap();
    assert_eq!(d.dims(), [2, 3, 96, 96]);
    assert_eq!(d.labels(), &[0, 9]);
    assert_eq!(d.class_names()[9], "truck");
    let u = d.to_u8();
    for img in 0..2usize {
        for c in 0..3usize {
            for (row, col) in [(0, 0), (1, 0), (0, 1), (95, 3), (40, 77)] {
                let got = u[img * 27648 + c * 9216 + row * 96 + col];
                assert_eq!(got as usize, (row + 2 * col + 50 * c + 7 * img) % 256);
            }
        }
    }
}

#[test]
fn image_folder_gray_png_and_order() {
    let t = TempDir::new("folder");
    // classes "b" and "a" (sorted -> a=0, b=1); files sorted by name
    gray_png(&t.join("b/02.png"), 3, 2, vec![6; 6]);
    gray_png(&t.join("b/01.png"), 3, 2, vec![5; 6]);
    gray_png(&t.join("a/x.png"), 3, 2, vec![0, 1, 2, 3, 4, 255]);
    write(&t.join("a/readme.txt"), b"not an image");
    write(&t.join("loose.png"), b"ignored: not in a class folder");
    std::fs::create_dir_all(t.join(".hidden")).unwrap();
    let d = load_image_folder(t.path(), ColorMode::Auto).unwrap();
    assert_eq!(d.dims(), [3, 1, 2, 3]);
    assert_eq!(d.class_names(), &["a".to_string(), "b".to_string()]);
    assert_eq!(d.labels(), &[0, 1, 1]);
    assert_eq!(
        d.to_u8(),
        vec![0, 1, 2, 3, 4, 255, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6]
    );
    let listing = ImageFolder::new(t.path()).list().unwrap();
    assert_eq!(listing.files.len(), 3);
    assert!(listing.files[1].ends_with("b/01.png"));
    // forced RGB replicates gray
    let rgb = load_image_folder(t.path(), ColorMode::Rgb).unwrap();
    assert_eq!(rgb.dims(), [3, 3, 2, 3]);
    assert_eq!(&rgb.image(0)[6..12], d.image(0));
}

#[test]
fn image_folder_rgb_png_jpeg_pgm() {
    let t = TempDir::new("rgb");
    // interleaved RGB -> planar
    let px: Vec<u8> = (0..2 * 2 * 3).map(|i| (i * 20) as u8).collect();
    rgb_image(&t.join("c0/a.png"), 2, 2, px.clone());
    rgb_image(&t.join("c1/b.bmp"), 2, 2, px.clone());
    let d = load_image_folder(t.path(), ColorMode::Auto).unwrap();
    assert_eq!(d.dims(), [2, 3, 2, 2]);
    let u = d.to_u8();
    assert_eq!(&u[..4], &[0, 60, 120, 180]); // R plane
    assert_eq!(&u[4..8], &[20, 80, 140, 200]); // G plane
    assert_eq!(&u[12..24], &u[..12]);
    // gray mode converts colour
    let g = load_image_folder(t.path(), ColorMode::Gray).unwrap();
    assert_eq!(g.channels(), 1);

    // JPEG (lossy): a flat colour survives within a few levels
    let t2 = TempDir::new("jpeg");
    for (cls, colour) in [("red", [200u8, 30, 40]), ("teal", [20, 160, 150])] {
        let px: Vec<u8> = (0..16 * 16).flat_map(|_| colour).collect();
        rgb_image(&t2.join(format!("{cls}/0000.jpg")), 16, 16, px);
    }
    let j = ImageFolder::new(t2.path()).load().unwrap();
    assert_eq!(j.dims(), [2, 3, 16, 16]);
    let s = j.subset(&[0]).unwrap().channel_stats().unwrap();
    for (m, want) in s.mean.iter().zip([200.0, 30.0, 40.0]) {
        assert!((m * 255.0 - want).abs() < 4.0, "{m}");
    }

    // PGM, with a filter and an extension list
    let t3 = TempDir::new("pgm");
    write(&t3.join("s1/a.pgm"), &pgm(3, 2, &[1, 2, 3, 4, 5, 6]));
    write(&t3.join("s1/b_Ambient.pgm"), &pgm(5, 5, &[0; 25]));
    write(&t3.join("s1/c.pgm.bad"), &pgm(3, 2, &[9; 6]));
    write(&t3.join("s2/a.PGM"), &pgm(3, 2, &[7; 6]));
    let p = ImageFolder::new(t3.path())
        .extensions(&["pgm"])
        .filter(|p| !p.to_string_lossy().ends_with("_Ambient.pgm"))
        .load()
        .unwrap();
    assert_eq!(p.dims(), [2, 1, 2, 3]);
    assert_eq!(p.to_u8()[..6], [1, 2, 3, 4, 5, 6]);
    let y = load_yaleb(t3.path()).unwrap();
    assert_eq!(y, p);
}

#[test]
fn ranked_folder_rebuilds_order() {
    let t = TempDir::new("ranked");
    let labels_u8 = [2u8, 0, 2, 1, 0, 2];
    // image i has all pixels = i; stored as <label>/<rank>.png
    let mut rank = [0usize; 3];
    for (i, &l) in labels_u8.iter().enumerate() {
        let k = rank[l as usize];
        rank[l as usize] += 1;
        gray_png(
            &t.join(format!("imgs/{l}/{k:04}.png")),
            28,
            28,
            vec![i as u8; 784],
        );
    }
    write(&t.join("labels.gz"), &gzip(&idx1(&labels_u8)));
    let d = load_fashion_mnist_png(t.join("imgs"), t.join("labels.gz")).unwrap();
    assert_eq!(d.dims(), [6, 1, 28, 28]);
    assert_eq!(d.labels(), &[2, 0, 2, 1, 0, 2]);
    for i in 0..6 {
        assert_eq!(d.to_u8()[i * 784], i as u8);
    }
    assert_eq!(d.class_names()[2], "Pullover");
    // the shared-data layout wrapper
    let f = TempDir::new("fashionlayout");
    std::fs::rename(t.join("imgs"), f.join("fashion_mnist_images-tmp")).unwrap();
    std::fs::create_dir_all(f.join("fashion_mnist_images")).unwrap();
    std::fs::rename(
        f.join("fashion_mnist_images-tmp"),
        f.join("fashion_mnist_images/test"),
    )
    .unwrap();
    std::fs::copy(t.join("labels.gz"), f.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(load_fashion_mnist_png_test(f.path()).unwrap(), d);
    // generic form
    let g = load_ranked_folder(
        f.join("fashion_mnist_images/test"),
        &["0", "1", "2"],
        &["x", "y", "z"],
        &[0, 0],
        |k| format!("{k:04}.png"),
        ColorMode::Auto,
    )
    .unwrap();
    assert_eq!(g.to_u8()[784], 4);
    assert!(matches!(
        load_ranked_folder(
            f.path(),
            &["0"],
            &["x", "y"],
            &[0],
            |k| k.to_string(),
            ColorMode::Auto
        ),
        Err(DataError::InvalidArgument(_))
    ));
}

#[test]
fn cifar10_folder_checks_classes() {
    let t = TempDir::new("cifarjpg");
    for (i, c) in CIFAR10_CLASSES.iter().enumerate() {
        let px: Vec<u8> = (0..8 * 8 * 3).map(|_| (i * 20) as u8).collect();
        rgb_image(&t.join(format!("{c}/0000.jpg")), 8, 8, px.clone());
        rgb_image(&t.join(format!("{c}/0001.jpg")), 8, 8, px);
    }
    let d = load_cifar10_folder(t.path()).unwrap();
    assert_eq!(d.dims(), [20, 3, 8, 8]);
    assert_eq!(d.class_counts(), vec![2; 10]);
    assert_eq!(d.label(19), 9);
    std::fs::create_dir_all(t.join("zebra")).unwrap();
    rgb_image(&t.join("zebra/0000.jpg"), 8, 8, vec![0; 192]);
    assert!(matches!(
        load_cifar10_folder(t.path()),
        Err(DataError::Layout { .. })
    ));
}

#[test]
fn parallel_decode_is_ordered() {
    // enough files to use several threads
    let t = TempDir::new("many");
    for i in 0..300u32 {
        gray_png(
            &t.join(format!("c{}/{i:04}.png", i % 2)),
            4,
            4,
            vec![(i % 256) as u8; 16],
        );
    }
    let d = load_image_folder(t.path(), ColorMode::Gray).unwrap();
    let u = d.to_u8();
    let expect: Vec<u8> = (0..300u32)
        .filter(|i| i % 2 == 0)
        .chain((0..300).filter(|i| i % 2 == 1))
        .map(|i| (i % 256) as u8)
        .collect();
    let got: Vec<u8> = (0..300).map(|i| u[i * 16]).collect();
    assert_eq!(got, expect);
}

#[test]
fn sixteen_bit_png_keeps_precision() {
    let t = TempDir::new("png16");
    let path = t.join("c/a.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let px: Vec<u16> = vec![0, 257, 32768, 65535];
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(2, 2, px)
        .unwrap()
        .save(&path)
        .unwrap();
    let d = load_image_folder(t.path(), ColorMode::Auto).unwrap();
    assert_eq!(d.dims(), [1, 1, 2, 2]);
    let want = [0.0, 257.0 / 65535.0, 32768.0 / 65535.0, 1.0];
    for (a, b) in d.images().iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let rgb = load_image_folder(t.path(), ColorMode::Rgb).unwrap();
    for (a, b) in rgb.images()[8..].iter().zip(d.images()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn load_image_files_checks_label_count() {
    let t = TempDir::new("lif");
    gray_png(&t.join("a.png"), 1, 1, vec![9]);
    assert!(matches!(
        load_image_files(
            &[t.join("a.png")],
            vec![],
            vec!["x".into()],
            ColorMode::Auto
        ),
        Err(DataError::InvalidArgument(_))
    ));
    let d = load_image_files(
        &[t.join("a.png")],
        vec![0],
        vec!["x".into()],
        ColorMode::Auto,
    )
    .unwrap();
    assert_eq!(d.to_u8(), vec![9]);
}

#[test]
fn error_type_is_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static + std::error::Error>() {}
    assert_send_sync::<DataError>();
}
