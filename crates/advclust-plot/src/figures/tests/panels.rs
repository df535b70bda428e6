//! Tests of the PCA scatter panels and the grouped bars: each decodes back as a non-blank PNG
//! with the expected colours; bad input is typed.

use super::*;

/// Clean points in three clusters along PC1 and their adversarial versions
/// pulled together towards the middle, `n` of each.
fn pca_points(n: usize) -> (Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let r = noise(6 * n, 21);
    let clean: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let cluster = (i % 3) as f64 - 1.0;
            let u = |k: usize| f64::from(r[6 * i + k]) - 0.5;
            [
                8.0 * cluster + 3.0 * u(0),
                4.0 * cluster * cluster + 2.0 * u(1),
                1.5 * u(2),
            ]
        })
        .collect();
    let adversarial = clean
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let u = |k: usize| f64::from(r[6 * i + 3 + k]) - 0.5;
            [
                0.4 * p[0] + u(0),
                0.5 * p[1] + 3.0 + u(1),
                p[2] + 2.0 * u(2),
            ]
        })
        .collect();
    (clean, adversarial)
}

#[test]
fn scatter_figure() {
    let dir = temp_dir("scatter");
    let path = dir.join("scatter.png");
    let (clean, adv) = pca_points(3_000);
    pca_scatter(&path, "MNIST: clean vs. adversarial, PCA", &clean, &adv).unwrap();
    assert_eq!(assert_png(&path), (1500, 560));
    let image = image::open(&path).unwrap().to_rgb8();
    assert!(has_color(&image, scatter::CLEAN), "clean key");
    assert!(has_color(&image, scatter::ADVERSARIAL), "adversarial key");
    // More points than are drawn: the same figure every time.
    let (clean, adv) = pca_points(25_000);
    let (first, second) = (dir.join("many-1.png"), dir.join("many-2.png"));
    pca_scatter(&first, "many points", &clean, &adv).unwrap();
    pca_scatter(&second, "many points", &clean, &adv).unwrap();
    assert_eq!(assert_png(&first), (1500, 560));
    assert_eq!(
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap()
    );
    // One point each, all coordinates equal, with a long title.
    let path = dir.join("one.png");
    let long = "A very long title for a principal component scatter plot that does not fit on \
                one line of the figure, not even on the wide canvas of three panels";
    pca_scatter(&path, long, &[[1.0, 1.0, 1.0]], &[[1.0, 1.0, 1.0]]).unwrap();
    assert_eq!(assert_png(&path), (1500, 560));
    // Tiny, huge and zero components, and an empty title.
    let path = dir.join("extremes.png");
    let clean = [[1e-7, 1e9, 0.0], [-3e-7, -2e9, 0.0]];
    let adv = [[0.0, 0.0, 0.0]];
    pca_scatter(&path, "", &clean, &adv).unwrap();
    assert_png(&path);
}

#[test]
fn scatter_errors_are_typed() {
    let dir = temp_dir("scatter-errors");
    let path = dir.join("never.png");
    let (clean, adv) = pca_points(10);
    assert!(matches!(
        pca_scatter(&path, "t", &[], &adv).unwrap_err(),
        FigureError::EmptyInput { what: "clean" }
    ));
    assert!(matches!(
        pca_scatter(&path, "t", &clean, &[]).unwrap_err(),
        FigureError::EmptyInput {
            what: "adversarial"
        }
    ));
    let mut bad = clean.clone();
    bad[5][1] = f64::NAN;
    assert!(matches!(
        pca_scatter(&path, "t", &bad, &adv).unwrap_err(),
        FigureError::NonFinite {
            what: "clean",
            index: 5
        }
    ));
    let mut bad = adv.clone();
    bad[7][2] = f64::NEG_INFINITY;
    assert!(matches!(
        pca_scatter(&path, "t", &clean, &bad).unwrap_err(),
        FigureError::NonFinite {
            what: "adversarial",
            index: 7
        }
    ));
    let mut wide = clean.clone();
    wide[0][1] = f64::MAX;
    wide[1][1] = -f64::MAX;
    assert!(matches!(
        pca_scatter(&path, "t", &wide, &adv).unwrap_err(),
        FigureError::InvalidParameter { name: "PC2", .. }
    ));
    assert!(!path.exists());
    // Unwritable path: a typed write error naming the path.
    let missing = dir.join("missing-dir").join("scatter.png");
    match pca_scatter(&missing, "t", &clean, &adv).unwrap_err() {
        FigureError::Write { path, .. } => assert_eq!(path, missing),
        other => panic!("unexpected {other:?}"),
    }
}

/// Detection rates of two detectors on three victims.
fn bar_groups() -> (Vec<String>, Vec<BarGroup>) {
    let series = vec!["detector A".to_string(), "detector B".to_string()];
    let groups = [
        ("DEC", [0.1169, 0.412]),
        ("IDEC", [0.083, 0.0]),
        ("DCN", [0.9, 0.55]),
    ]
    .into_iter()
    .map(|(name, values)| BarGroup {
        name: name.into(),
        values: values.to_vec(),
    })
    .collect();
    (series, groups)
}

#[test]
fn bars_figure() {
    let dir = temp_dir("bars");
    let path = dir.join("bars.png");
    let (series, groups) = bar_groups();
    grouped_bars(
        &path,
        "Adversarial images flagged",
        "flagged",
        &series,
        &groups,
        true,
        Some(("5 % clean false-flag rate", 0.05)),
    )
    .unwrap();
    assert_series_colours(&path, series.len());
    // Many groups and series with long names, plain values: a wider canvas.
    let series: Vec<String> = (0..10)
        .map(|k| format!("series {k} with a rather long name, {}", "y".repeat(k * 30)))
        .collect();
    let groups: Vec<BarGroup> = (0..14)
        .map(|g| BarGroup {
            name: format!("victim {g} {}", "x".repeat(g * 10)),
            values: (0..10).map(|k| 0.37 * (g * k) as f64 + 1234.5).collect(),
        })
        .collect();
    let path = dir.join("many.png");
    let long = "A very long title for grouped bars that would never fit on one line, \
                not even on a canvas made wider for its many bars and their labels";
    grouped_bars(&path, long, "score", &series, &groups, false, None).unwrap();
    let (w, h) = assert_png(&path);
    assert!(w > 820 && h == 540, "{w}x{h}");
    let image = image::open(&path).unwrap().to_rgb8();
    assert!(comparison::PALETTE.iter().all(|&c| has_color(&image, c)));
    // One zero bar, empty texts, a reference above 100 %.
    let path = dir.join("one.png");
    let one = [BarGroup {
        name: String::new(),
        values: vec![0.0],
    }];
    grouped_bars(&path, "", "", &[String::new()], &one, true, Some(("", 1.5))).unwrap();
    assert_eq!(assert_png(&path), (820, 540));
}

#[test]
fn bars_errors_are_typed() {
    let dir = temp_dir("bars-errors");
    let path = dir.join("never.png");
    let (series, groups) = bar_groups();
    let draw = |series: &[String], groups: &[BarGroup], reference| {
        grouped_bars(&path, "t", "y", series, groups, true, reference).unwrap_err()
    };
    assert!(matches!(
        draw(&series, &[], None),
        FigureError::EmptyInput { what: "groups" }
    ));
    assert!(matches!(
        draw(&[], &groups, None),
        FigureError::EmptyInput { what: "series" }
    ));
    let mut short = groups.clone();
    short[1].values.pop();
    assert!(matches!(
        draw(&series, &short, None),
        FigureError::LengthMismatch {
            what: "values",
            expected: 2,
            actual: 1
        }
    ));
    for (bad, nan) in [(f64::NAN, true), (f64::INFINITY, true), (-0.01, false)] {
        let mut groups = groups.clone();
        groups[2].values[1] = bad;
        let err = draw(&series, &groups, None);
        if nan {
            assert!(
                matches!(
                    err,
                    FigureError::NonFinite {
                        what: "values",
                        index: 2
                    }
                ),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err, FigureError::InvalidParameter { name: "values", .. }),
                "{err:?}"
            );
        }
    }
    for bad in [f64::NAN, f64::INFINITY, -0.05] {
        assert!(matches!(
            draw(&series, &groups, Some(("ref", bad))),
            FigureError::InvalidParameter {
                name: "reference",
                ..
            }
        ));
    }
    let mut huge = groups.clone();
    huge[0].values[0] = f64::MAX;
    assert!(matches!(
        draw(&series, &huge, None),
        FigureError::InvalidParameter { name: "values", .. }
    ));
    let eleven: Vec<String> = (0..11).map(|k| k.to_string()).collect();
    let wide = [BarGroup {
        name: "g".into(),
        values: vec![0.5; 11],
    }];
    assert!(matches!(
        draw(&eleven, &wide, None),
        FigureError::InvalidParameter { name: "series", .. }
    ));
    let many: Vec<BarGroup> = (0..1_000_000)
        .map(|_| BarGroup {
            name: String::new(),
            values: vec![0.5],
        })
        .collect();
    assert!(matches!(
        draw(&eleven[..1], &many, None),
        FigureError::TooLarge { .. }
    ));
    assert!(!path.exists());
    // With the bad values gone, the same bars draw.
    grouped_bars(&path, "t", "y", &series, &groups, false, Some(("ref", 0.3))).unwrap();
    assert_png(&path);
}
