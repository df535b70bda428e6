//! Tests: each figure decodes back as a non-blank PNG; bad input is typed.

use std::path::{Path, PathBuf};

use advclust_core::{ImageBatch, ValueBox};
use advclust_metrics::{ConfusionMatrix, confusion_matrix as build_matrix};

use super::*;

mod panels;

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

/// Labels of victims, as in a transfer matrix.
fn victim_names(n: usize) -> Vec<String> {
    ["cc", "scan", "mice", "ruc", "idec", "dec"]
        .iter()
        .cycle()
        .take(n)
        .map(|s| s.to_string())
        .collect()
}

/// A 3 x 4 transfer matrix: 1.0 at (0, 0), 0.0 at (1, 2), NaN at (2, 3).
fn transfer_values() -> Vec<f64> {
    vec![
        1.0,
        0.62,
        0.31,
        0.18, //
        0.25,
        0.57,
        0.0,
        0.44, //
        0.12,
        0.2,
        0.49,
        f64::NAN,
    ]
}

#[test]
fn heatmap_figure() {
    let dir = temp_dir("heatmap");
    let path = dir.join("transfer.png");
    let (rows, cols) = (victim_names(3), victim_names(4));
    let values = transfer_values();
    let map = ValueHeatmap {
        title: "Transfer of the GAN attack",
        subtitle: "CIFAR-10, NMI drop",
        row_axis: "source (generator trained on)",
        col_axis: "target (victim clustering)",
        row_labels: &rows,
        col_labels: &cols,
        values: &values,
    };
    value_heatmap(&path, &map).unwrap();
    let (w, h) = assert_png(&path);
    let layout = heatmap::Layout::new(&Typesetter::new().unwrap(), &map).unwrap();
    assert_eq!((w, h), (layout.width, layout.height));
    assert!(
        (300..1200).contains(&w) && (250..800).contains(&h),
        "{w}x{h}"
    );
    assert!(layout.cell_w >= 64 && layout.cell_h >= 64);
    let image = image::open(&path).unwrap().to_rgb8();
    // A point in cell (r, c): centred across, `dy` below its top.
    let cell = |r: u32, c: u32, dy: u32| {
        let x = layout.hx + c * layout.cell_w + layout.cell_w / 2;
        image.get_pixel(x, layout.hy + r * layout.cell_h + dy).0
    };
    let centre = layout.cell_h / 2;
    // Above the written value, each cell has its colour.
    assert_eq!(cell(0, 0, 8), confusion::blues(1.0));
    assert_eq!(confusion::blues(1.0), [8, 48, 107]);
    assert_eq!(cell(1, 2, 8), confusion::blues(0.0));
    assert_eq!(confusion::blues(0.0), [247, 251, 255]);
    assert_eq!(cell(2, 3, 8), heatmap::MISSING);
    assert_eq!(cell(0, 1, 8), confusion::blues(0.62));
    // The value is written across the centre: light on the dark cell, dark
    // on the light cell.
    let text_box = |r: u32, c: u32| {
        let (x0, y0) = (
            layout.hx + c * layout.cell_w + 4,
            layout.hy + r * layout.cell_h,
        );
        let ys = y0 + centre - 8..y0 + centre + 8;
        ys.flat_map(|y| (x0..x0 + layout.cell_w - 8).map(move |x| (x, y)))
            .map(|(x, y)| image.get_pixel(x, y).0)
            .collect::<Vec<_>>()
    };
    let light = |p: &[u8; 3]| p.iter().all(|&v| v > 200);
    let dark = |p: &[u8; 3]| p.iter().all(|&v| v < 100);
    assert!(text_box(0, 0).iter().any(light), "white text");
    assert!(text_box(1, 2).iter().any(dark), "dark text");
    // The dash is thin: darker than the grey cell, if not as dark as digits.
    let darker = |p: &[u8; 3]| p.iter().all(|&v| v < 150);
    assert!(text_box(2, 3).iter().any(darker), "dash");

    // One cell, values outside [0, 1], long labels: cells widen, the band
    // is tall enough for the row-axis title.
    let long = vec!["a victim with a very long name".to_string()];
    let one = [-0.0001];
    let map = ValueHeatmap {
        title: "",
        subtitle: "",
        row_axis: "a long row-axis title, taller than one cell",
        col_axis: "",
        row_labels: &long,
        col_labels: &long,
        values: &one,
    };
    let path = dir.join("one.png");
    value_heatmap(&path, &map).unwrap();
    assert_png(&path);
    let layout = heatmap::Layout::new(&Typesetter::new().unwrap(), &map).unwrap();
    assert!(layout.cell_w > 64 && layout.cell_h == 64);
    // The most rows, with large values.
    let names = victim_names(64);
    let big: Vec<f64> = (0..64 * 3).map(|i| f64::from(i) * 1000.5).collect();
    let map = ValueHeatmap {
        row_labels: &names,
        col_labels: &names[..3],
        values: &big,
        ..map
    };
    let path = dir.join("big.png");
    value_heatmap(&path, &map).unwrap();
    assert_png(&path);
}

#[test]
fn heatmap_errors_are_typed() {
    let dir = temp_dir("heatmap-errors");
    let path = dir.join("never.png");
    let (rows, cols) = (victim_names(3), victim_names(4));
    let values = transfer_values();
    let map = ValueHeatmap {
        title: "t",
        subtitle: "s",
        row_axis: "source",
        col_axis: "target",
        row_labels: &rows,
        col_labels: &cols,
        values: &values,
    };
    let draw = |map: &ValueHeatmap<'_>| value_heatmap(&path, map).unwrap_err();
    assert!(matches!(
        draw(&ValueHeatmap {
            values: &values[..11],
            ..map.clone()
        }),
        FigureError::LengthMismatch {
            what: "values",
            expected: 12,
            actual: 11
        }
    ));
    assert!(matches!(
        draw(&ValueHeatmap {
            row_labels: &[],
            values: &[],
            ..map.clone()
        }),
        FigureError::EmptyInput { what: "row_labels" }
    ));
    assert!(matches!(
        draw(&ValueHeatmap {
            col_labels: &[],
            values: &[],
            ..map.clone()
        }),
        FigureError::EmptyInput { what: "col_labels" }
    ));
    let many = victim_names(65);
    let wide = vec![0.5; 65];
    assert!(matches!(
        draw(&ValueHeatmap {
            row_labels: &rows[..1],
            col_labels: &many,
            values: &wide,
            ..map.clone()
        }),
        FigureError::InvalidParameter {
            name: "col_labels",
            ..
        }
    ));
    assert!(matches!(
        draw(&ValueHeatmap {
            row_labels: &many,
            col_labels: &cols[..1],
            values: &wide,
            ..map.clone()
        }),
        FigureError::InvalidParameter {
            name: "row_labels",
            ..
        }
    ));
    let mut bad = values.clone();
    bad[5] = f64::NEG_INFINITY;
    assert!(matches!(
        draw(&ValueHeatmap {
            values: &bad,
            ..map.clone()
        }),
        FigureError::NonFinite {
            what: "values",
            index: 5
        }
    ));
    let huge = vec!["x".repeat(200_000)];
    assert!(matches!(
        draw(&ValueHeatmap {
            row_labels: &huge,
            col_labels: &huge,
            values: &[0.5],
            ..map.clone()
        }),
        FigureError::TooLarge { .. }
    ));
    assert!(!path.exists());
    // The valid map draws.
    value_heatmap(&path, &map).unwrap();
    assert_png(&path);
}

fn sweep_points() -> Vec<SweepPoint> {
    (0..8)
        .map(|k| {
            let eps = k as f32 * 0.05;
            let l2 = eps * 28.0 * 0.6;
            let decay = (-f64::from(eps) * 6.0).exp();
            SweepPoint {
                epsilon: eps,
                mean_l2: l2,
                nmi: 0.1 + 0.8 * decay,
                ari: -0.02 + 0.85 * decay * decay,
                acc: 0.12 + 0.84 * decay,
            }
        })
        .rev()
        .collect()
}

#[test]
fn sweep_figure() {
    let dir = temp_dir("sweep");
    let path = dir.join("sweep.png");
    sweep_curves(&path, &sweep_points()).unwrap();
    assert_eq!(assert_png(&path), (820, 540));
    // A single point at zero norm still draws.
    let path = dir.join("one.png");
    let point = SweepPoint {
        epsilon: 0.0,
        mean_l2: 0.0,
        nmi: 1.0,
        ari: 1.0,
        acc: 1.0,
    };
    sweep_curves(&path, &[point]).unwrap();
    assert_png(&path);
}

#[test]
fn sweep_errors_are_typed() {
    let dir = temp_dir("sweep-errors");
    let path = dir.join("never.png");
    assert!(matches!(
        sweep_curves(&path, &[]).unwrap_err(),
        FigureError::EmptyInput { what: "points" }
    ));
    let mut points = sweep_points();
    points[2].ari = f64::NAN;
    assert!(matches!(
        sweep_curves(&path, &points).unwrap_err(),
        FigureError::NonFinite {
            what: "ari",
            index: 2
        }
    ));
    points[2].ari = 0.0;
    points[1].acc = 1.5;
    assert!(matches!(
        sweep_curves(&path, &points).unwrap_err(),
        FigureError::InvalidParameter { name: "acc", .. }
    ));
    points[1].acc = 0.5;
    points[0].mean_l2 = -1.0;
    assert!(matches!(
        sweep_curves(&path, &points).unwrap_err(),
        FigureError::InvalidParameter {
            name: "mean_l2",
            ..
        }
    ));
    assert!(!path.exists());
}

/// A training curve: NMI falls as the attack learns; ARI and ACC are only
/// known at every other checkpoint.
fn query_points() -> Vec<QueryPoint> {
    (0..10u64)
        .map(|k| {
            let calls = k * 2_500;
            let decay = (-(k as f64) / 3.0).exp();
            QueryPoint {
                batch_calls: calls,
                nmi: 0.2 + 0.65 * decay,
                ari: (k % 2 == 0).then_some(-0.01 + 0.7 * decay * decay),
                acc: (k % 2 == 0).then_some(0.15 + 0.75 * decay),
            }
        })
        .rev()
        .collect()
}

#[test]
fn query_figure() {
    let dir = temp_dir("query");
    let path = dir.join("query.png");
    query_curve(
        &path,
        "MNIST: scores vs. victim queries",
        &query_points(),
        Some(0.87),
    )
    .unwrap();
    let (w, h) = assert_png(&path);
    assert_eq!((w, h), (820, 540));
    // NMI alone, no reference line, and a title too long for the canvas.
    let nmi_only: Vec<QueryPoint> = query_points()
        .into_iter()
        .map(|p| QueryPoint {
            ari: None,
            acc: None,
            ..p
        })
        .collect();
    let path = dir.join("nmi-only.png");
    let long =
        "A very long title for a training curve that does not fit on one line of the figure at all";
    query_curve(&path, long, &nmi_only, None).unwrap();
    assert_eq!(assert_png(&path), (820, 540));
    // A single point at zero calls, with an empty title, still draws.
    let path = dir.join("one.png");
    let point = QueryPoint {
        batch_calls: 0,
        nmi: 0.9,
        ari: Some(0.8),
        acc: None,
    };
    query_curve(&path, "", &[point], Some(0.9)).unwrap();
    assert_png(&path);
}

#[test]
fn query_errors_are_typed() {
    let dir = temp_dir("query-errors");
    let path = dir.join("never.png");
    let title = "never drawn";
    assert!(matches!(
        query_curve(&path, title, &[], None).unwrap_err(),
        FigureError::EmptyInput { what: "points" }
    ));
    let mut points = query_points();
    points[3].nmi = f64::NAN;
    assert!(matches!(
        query_curve(&path, title, &points, None).unwrap_err(),
        FigureError::NonFinite {
            what: "nmi",
            index: 3
        }
    ));
    points[3].nmi = 0.5;
    points[4].acc = Some(f64::INFINITY);
    assert!(matches!(
        query_curve(&path, title, &points, None).unwrap_err(),
        FigureError::NonFinite {
            what: "acc",
            index: 4
        }
    ));
    points[4].acc = None;
    points[2].ari = Some(-1.5);
    assert!(matches!(
        query_curve(&path, title, &points, None).unwrap_err(),
        FigureError::InvalidParameter { name: "ari", .. }
    ));
    points[2].ari = Some(-1.0);
    points[0].nmi = 1.01;
    assert!(matches!(
        query_curve(&path, title, &points, None).unwrap_err(),
        FigureError::InvalidParameter { name: "nmi", .. }
    ));
    points[0].nmi = 1.0;
    for bad in [-0.1, 1.2, f64::NAN] {
        assert!(matches!(
            query_curve(&path, title, &points, Some(bad)).unwrap_err(),
            FigureError::InvalidParameter {
                name: "clean_nmi",
                ..
            }
        ));
    }
    assert!(!path.exists());
    // With the bad values gone, the same points draw.
    query_curve(&path, title, &points, Some(1.0)).unwrap();
    assert_png(&path);
}

/// Three attacks: NMI against the images they queried, 10^3 to 10^8, one
/// of them given out of order.
fn attack_series() -> Vec<CurveSeries> {
    let line = |name: &str, rate: f64, floor: f64| CurveSeries {
        name: name.into(),
        points: (0..6)
            .rev()
            .map(|k| {
                let x = 10f64.powi(3 + k);
                CurvePoint {
                    x,
                    y: floor + (0.88 - floor) * (-rate * f64::from(k)).exp(),
                }
            })
            .collect(),
    };
    vec![
        line("GAN attack (ours)", 0.9, 0.08),
        line("black-box transfer", 0.35, 0.3),
        line("random noise", 0.05, 0.8),
    ]
}

/// Whether `image` has a pixel of exactly `color`.
fn has_color(image: &image::RgbImage, color: RGBColor) -> bool {
    let RGBColor(r, g, b) = color;
    image.pixels().any(|p| p.0 == [r, g, b])
}

#[test]
fn comparison_figure() {
    let dir = temp_dir("comparison");
    let path = dir.join("comparison.png");
    let series = attack_series();
    comparison_curve(
        &path,
        "MNIST: NMI vs. images queried",
        "images queried",
        "NMI",
        &series,
        Some(("clean NMI", 0.88)),
    )
    .unwrap();
    assert_series_colours(&path, series.len());
    // Ten series (every colour and marker), long names and title, no
    // reference, a single point, x spanning under a decade and y beyond [0, 1].
    let many: Vec<CurveSeries> = (0..10)
        .map(|k| CurveSeries {
            name: format!(
                "attack {k} with a name far too long for the legend box of the chart, {}",
                "x".repeat(400)
            ),
            points: vec![
                CurvePoint {
                    x: 2e4,
                    y: 0.1 * f64::from(k),
                },
                CurvePoint {
                    x: 6e4,
                    y: 1.2 - 0.15 * f64::from(k),
                },
            ],
        })
        .collect();
    let path = dir.join("many.png");
    let long =
        "A very long title for a comparison of attacks that does not fit on one line of the figure";
    comparison_curve(&path, long, "images queried", "NMI", &many, None).unwrap();
    assert_eq!(assert_png(&path), (820, 540));
    let image = image::open(&path).unwrap().to_rgb8();
    assert!(comparison::PALETTE.iter().all(|&c| has_color(&image, c)));
    let path = dir.join("one.png");
    let one = [CurveSeries {
        name: String::new(),
        points: vec![CurvePoint { x: 1e-3, y: -0.2 }],
    }];
    comparison_curve(&path, "", "", "", &one, Some(("", 0.5))).unwrap();
    assert_eq!(assert_png(&path), (820, 540));
    // The full range of f64 still draws.
    let path = dir.join("extremes.png");
    let extremes = [CurveSeries {
        name: "extremes".into(),
        points: vec![
            CurvePoint {
                x: f64::MIN_POSITIVE,
                y: 1e6,
            },
            CurvePoint {
                x: f64::MAX,
                y: -1e6,
            },
        ],
    }];
    comparison_curve(&path, "extremes", "x", "y", &extremes, None).unwrap();
    assert_png(&path);
}

#[test]
fn comparison_errors_are_typed() {
    let dir = temp_dir("comparison-errors");
    let path = dir.join("never.png");
    let draw = |series: &[CurveSeries], reference| {
        comparison_curve(&path, "never drawn", "x", "y", series, reference).unwrap_err()
    };
    assert!(matches!(
        draw(&[], None),
        FigureError::EmptyInput { what: "series" }
    ));
    let mut series = attack_series();
    series[1].points.clear();
    assert!(matches!(
        draw(&series, None),
        FigureError::EmptyInput { what: "points" }
    ));
    let mut series = attack_series();
    series[2].points[4].y = f64::NAN;
    assert!(matches!(
        draw(&series, None),
        FigureError::NonFinite {
            what: "y",
            index: 4
        }
    ));
    let mut series = attack_series();
    series[0].points[1].x = f64::INFINITY;
    assert!(matches!(
        draw(&series, None),
        FigureError::NonFinite {
            what: "x",
            index: 1
        }
    ));
    for bad in [0.0, -1e3, -0.0] {
        let mut series = attack_series();
        series[1].points[3].x = bad;
        assert!(matches!(
            draw(&series, None),
            FigureError::InvalidParameter { name: "x", .. }
        ));
    }
    let series = attack_series();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            draw(&series, Some(("clean NMI", bad))),
            FigureError::InvalidParameter {
                name: "reference",
                ..
            }
        ));
    }
    let eleven: Vec<CurveSeries> = (0..11).map(|_| series[0].clone()).collect();
    assert!(matches!(
        draw(&eleven, None),
        FigureError::InvalidParameter { name: "series", .. }
    ));
    let mut wide = attack_series();
    wide[0].points[0].y = f64::MAX;
    wide[0].points[1].y = -f64::MAX;
    assert!(matches!(
        draw(&wide, None),
        FigureError::InvalidParameter { name: "y", .. }
    ));
    assert!(!path.exists());
    // Ten series are fine, and the same points draw.
    comparison_curve(&path, "ten", "x", "y", &eleven[..10], Some(("ref", 1.0))).unwrap();
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
