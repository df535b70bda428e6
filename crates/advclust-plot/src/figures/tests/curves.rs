//! Tests of the line charts: epsilon sweeps, scores against victim calls and the attack
//! comparison on a log axis; each decodes back with the expected colours; bad input is typed.

use super::*;

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
