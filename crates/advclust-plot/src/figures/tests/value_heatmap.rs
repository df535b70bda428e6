//! Tests of the value heatmap (transfer matrices): values in the cells, the colour scale, the
//! labels; bad input is typed.

use super::*;

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
