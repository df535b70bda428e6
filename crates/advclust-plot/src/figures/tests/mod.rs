//! Tests: each figure decodes back as a non-blank PNG; bad input is typed.

use std::path::{Path, PathBuf};

use advclust_core::{ImageBatch, ValueBox};
use advclust_metrics::{ConfusionMatrix, confusion_matrix as build_matrix};

use super::*;

mod curves;
mod panels;
mod value_heatmap;

/// A fresh directory under the system temp dir, unique per test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "advclust-plot-figures-{}-{test}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decodes `path` and checks that it is a non-empty, non-uniform image.
fn assert_png(path: &Path) -> (u32, u32) {
    let image = image::open(path).expect("decodable PNG").to_rgb8();
    let (w, h) = image.dimensions();
    assert!(w > 0 && h > 0);
    let first = image.get_pixel(0, 0);
    assert!(image.pixels().any(|p| p != first), "blank image");
    (w, h)
}

/// Deterministic pseudo-random values in `[0, 1)`.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Digit-like strokes: `n` images of `c x s x s`, plus a perturbed copy.
fn batches(n: usize, c: usize, s: usize) -> (ImageBatch, ImageBatch) {
    let mut clean = vec![0.0f32; n * c * s * s];
    for i in 0..n {
        for ch in 0..c {
            for y in 0..s {
                for x in 0..s {
                    let (fx, fy) = (x as f32 / s as f32 - 0.5, y as f32 / s as f32 - 0.5);
                    let r = (fx * fx + fy * fy).sqrt();
                    let ring = (r - 0.15 - 0.02 * i as f32).abs() < 0.07;
                    let bar = (fx - 0.1 * ch as f32).abs() < 0.05 && i % 2 == 1;
                    clean[((i * c + ch) * s + y) * s + x] = if ring || bar { 1.0 } else { 0.0 };
                }
            }
        }
    }
    let delta = noise(clean.len(), 7);
    let adv = clean
        .iter()
        .zip(&delta)
        .map(|(&v, &d)| (v + 0.2 * (d - 0.5)).clamp(0.0, 1.0))
        .collect();
    let dims = [n, c, s, s];
    (
        ImageBatch::unit(clean, dims).unwrap(),
        ImageBatch::unit(adv, dims).unwrap(),
    )
}

fn digit_names() -> Vec<String> {
    [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ]
    .map(String::from)
    .to_vec()
}

/// An 820 x 540 PNG with the first `series` palette colours (and no other) and the
/// reference line.
fn assert_series_colours(path: &std::path::Path, series: usize) {
    assert_eq!(assert_png(path), (820, 540));
    let image = image::open(path).unwrap().to_rgb8();
    for (k, &color) in comparison::PALETTE.iter().enumerate() {
        assert_eq!(has_color(&image, color), k < series, "colour {k}");
    }
    assert!(has_color(&image, chart::REFERENCE), "reference line");
}

/// Whether `image` has a pixel of exactly `color`.
fn has_color(image: &image::RgbImage, color: RGBColor) -> bool {
    let RGBColor(r, g, b) = color;
    image.pixels().any(|p| p.0 == [r, g, b])
}

#[test]
fn grid_grey_and_rgb() {
    let dir = temp_dir("grid");
    let cifar: Vec<String> = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck (a very long class name)",
    ]
    .map(String::from)
    .to_vec();
    for (c, s, n) in [(1, 28, 20), (3, 32, 10)] {
        let names = if c == 1 { digit_names() } else { cifar.clone() };
        let (clean, adv) = batches(n, c, s);
        let clusters: Vec<usize> = (0..n).map(|i| i % 10).collect();
        let adv_clusters: Vec<usize> = (0..n)
            .map(|i| if i % 3 == 0 { (i + 4) % 10 } else { i % 10 })
            .collect();
        let labels: Vec<usize> = (0..n).map(|i| (i + 1) % 10).collect();
        let path = dir.join(format!("grid-{c}.png"));
        image_grid(
            &path,
            &clean,
            &adv,
            &clusters,
            &adv_clusters,
            Some(&labels),
            Some(&names),
            8,
        )
        .unwrap();
        let (w, h) = assert_png(&path);
        assert!(w >= 8 * 84 && h >= 2 * 84, "{w}x{h}");
    }
    // Without labels or perturbation row, one column.
    let (clean, adv) = batches(3, 1, 28);
    let options = GridOptions {
        columns: 1,
        show_perturbation: false,
        ..GridOptions::default()
    };
    let samples = GridSamples {
        clean: &clean,
        adversarial: &adv,
        clean_clusters: &[0, 1, 2],
        adv_clusters: &[0, 1, 2],
        true_labels: None,
        class_names: None,
    };
    let path = dir.join("grid-plain.png");
    image_grid_with(&path, &samples, &options).unwrap();
    assert_png(&path);
}

#[test]
fn grid_errors_are_typed() {
    let dir = temp_dir("grid-errors");
    let path = dir.join("never.png");
    let (clean, adv) = batches(4, 1, 8);
    let c = [0, 1, 2, 3];
    let err = image_grid(&path, &clean, &adv, &c[..3], &c, None, None, 4).unwrap_err();
    assert!(matches!(
        err,
        FigureError::LengthMismatch {
            what: "clean_clusters",
            expected: 4,
            actual: 3
        }
    ));
    let err = image_grid(&path, &clean, &adv, &c, &c, Some(&[1]), None, 4).unwrap_err();
    assert!(matches!(
        err,
        FigureError::LengthMismatch {
            what: "true_labels",
            ..
        }
    ));
    let (small, _) = batches(4, 1, 7);
    let err = image_grid(&path, &clean, &small, &c, &c, None, None, 4).unwrap_err();
    assert!(matches!(err, FigureError::ShapeMismatch { .. }));
    let err = image_grid(&path, &clean, &adv, &c, &c, None, None, 0).unwrap_err();
    assert!(matches!(
        err,
        FigureError::InvalidParameter {
            name: "columns",
            ..
        }
    ));
    let two = ImageBatch::unit(vec![0.5; 4 * 2 * 8 * 8], [4, 2, 8, 8]).unwrap();
    let err = image_grid(&path, &two, &two, &c, &c, None, None, 4).unwrap_err();
    assert!(matches!(
        err,
        FigureError::UnsupportedChannels { channels: 2 }
    ));
    // Unwritable path: a typed write error naming the path.
    let bad = dir.join("missing-dir").join("grid.png");
    let err = image_grid(&bad, &clean, &adv, &c, &c, None, None, 4).unwrap_err();
    match err {
        FigureError::Write { path, .. } => assert_eq!(path, bad),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!path.exists());
}

#[test]
fn grid_respects_value_box() {
    // Pixels in [-1, 1] are shown like their [0, 1] equivalents.
    let dir = temp_dir("grid-box");
    let data: Vec<f32> = noise(2 * 16 * 16, 3)
        .iter()
        .map(|v| 2.0 * v - 1.0)
        .collect();
    let vbox = ValueBox::new(-1.0, 1.0).unwrap();
    let batch = ImageBatch::new(data, [2, 1, 16, 16], vbox).unwrap();
    let path = dir.join("box.png");
    image_grid(&path, &batch, &batch, &[0, 1], &[0, 1], None, None, 2).unwrap();
    assert_png(&path);
    // Non-square images keep their aspect ratio.
    let wide = ImageBatch::unit(noise(2 * 12 * 20, 5), [2, 1, 12, 20]).unwrap();
    let path = dir.join("non-square.png");
    image_grid(
        &path,
        &wide,
        &wide,
        &[0, 1],
        &[1, 1],
        Some(&[0, 1]),
        None,
        2,
    )
    .unwrap();
    assert_png(&path);
}

fn matrices() -> (ConfusionMatrix<usize, usize>, ConfusionMatrix<usize, usize>) {
    let truth: Vec<usize> = (0..1000).map(|i| i % 10).collect();
    let r = noise(1000, 11);
    let clean: Vec<usize> = truth
        .iter()
        .zip(&r)
        .map(|(&t, &u)| {
            if u < 0.85 {
                (t * 3 + 1) % 10
            } else {
                (u * 1000.0) as usize % 10
            }
        })
        .collect();
    let adv: Vec<usize> = truth
        .iter()
        .zip(&r)
        .map(|(&t, &u)| {
            if u < 0.35 {
                (t * 3 + 1) % 10
            } else {
                (u * 977.0) as usize % 4
            }
        })
        .collect();
    (
        build_matrix(&truth, &clean).unwrap().1,
        build_matrix(&truth, &adv).unwrap().1,
    )
}

#[test]
fn confusion_figures() {
    let dir = temp_dir("confusion");
    let (clean, adv) = matrices();
    let path = dir.join("pair.png");
    confusion_pair(&path, &clean, &adv, "Clean", "Adversarial (eps = 0.1)").unwrap();
    let (w, h) = assert_png(&path);
    assert!(w > h, "side by side: {w}x{h}");
    let path = dir.join("single.png");
    confusion_matrix(&path, &clean, "Clean").unwrap();
    assert_png(&path);
    // Large matrix: no counts, thinned labels.
    let truth: Vec<usize> = (0..5000).map(|i| i % 40).collect();
    let pred: Vec<usize> = (0..5000).map(|i| (i * 7 + i / 40) % 120).collect();
    let (_, big) = build_matrix(&truth, &pred).unwrap();
    let path = dir.join("big.png");
    confusion_matrix(&path, &big, "40 classes x 120 clusters").unwrap();
    assert_png(&path);
    // Few classes, many clusters: tall cells, thinned column labels.
    let truth: Vec<usize> = (0..600).map(|i| i % 2).collect();
    let pred: Vec<usize> = (0..600).map(|i| (i * 13) % 60).collect();
    let (_, wide) = build_matrix(&truth, &pred).unwrap();
    let path = dir.join("wide.png");
    confusion_matrix(&path, &wide, "2 classes x 60 clusters").unwrap();
    assert_png(&path);
    // One class, one cluster.
    let (_, tiny) = build_matrix(&[3usize, 3], &[9usize, 9]).unwrap();
    let path = dir.join("tiny.png");
    confusion_matrix(&path, &tiny, "tiny").unwrap();
    assert_png(&path);
}

#[test]
fn font_registration_is_idempotent() {
    for _ in 0..3 {
        ensure_font().unwrap();
    }
    assert!(Typesetter::new().unwrap().width("cluster 3", 13.0) > 30);
}

#[test]
fn oversized_canvas_is_refused() {
    assert!(matches!(
        Canvas::new(1 << 20, 1 << 20),
        Err(FigureError::TooLarge { .. })
    ));
    assert!(matches!(
        Canvas::new(0, 5),
        Err(FigureError::TooLarge { .. })
    ));
}
