//! Fig. 3: clustering scores against the size of the perturbation.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Align, Area, Canvas, DrawError, FigureError, MUTED, TEXT, Typesetter};

const WIDTH: u64 = 820;
const HEIGHT: u64 = 540;
/// Plot frame: left, right, top and bottom edges in pixels.
const LEFT: i32 = 78;
const RIGHT: i32 = WIDTH as i32 - 24;
const TOP: i32 = 74;
const BOTTOM: i32 = HEIGHT as i32 - 66;

const TITLE: f64 = 19.0;
const AXIS: f64 = 15.0;
const TICK: f64 = 13.0;
const EPSILON: f64 = 11.0;
const LEGEND: f64 = 14.0;

/// One attack strength of an epsilon sweep and the scores it left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// The attack's budget parameter.
    pub epsilon: f32,
    /// Mean per-sample L2 norm of the perturbation actually applied.
    pub mean_l2: f32,
    /// Normalised mutual information on the adversarial images.
    pub nmi: f64,
    /// Adjusted Rand index on the adversarial images.
    pub ari: f64,
    /// Clustering accuracy on the adversarial images.
    pub acc: f64,
}

/// Writes the NMI, ARI and ACC curves of an epsilon sweep against the mean
/// per-sample L2 norm of the perturbation as a PNG (Fig. 3 of the paper).
///
/// Points are sorted by `mean_l2` (then `epsilon`); each metric has its own
/// colour and marker, and a legend names them.
///
/// # Errors
///
/// [`FigureError::EmptyInput`] for no points, [`FigureError::NonFinite`]
/// when a value is NaN or infinite, [`FigureError::InvalidParameter`] for a
/// negative `mean_l2` or a score outside `[-1, 1]`, [`FigureError::Draw`] or
/// [`FigureError::Write`] when rendering or writing `path` fails.
pub fn sweep_curves(path: &Path, points: &[SweepPoint]) -> Result<(), FigureError> {
    validate(points)?;
    let mut points = points.to_vec();
    points.sort_by(|a, b| {
        a.mean_l2
            .total_cmp(&b.mean_l2)
            .then(a.epsilon.total_cmp(&b.epsilon))
    });
    let typo = Typesetter::new()?;
    let mut canvas = Canvas::new(WIDTH, HEIGHT)?;
    canvas.draw(path, |area| draw(area, &typo, &points))?;
    canvas.save(path)
}

fn validate(points: &[SweepPoint]) -> Result<(), FigureError> {
    if points.is_empty() {
        return Err(FigureError::EmptyInput { what: "points" });
    }
    for (index, p) in points.iter().enumerate() {
        let fields = [
            ("epsilon", f64::from(p.epsilon)),
            ("mean_l2", f64::from(p.mean_l2)),
            ("nmi", p.nmi),
            ("ari", p.ari),
            ("acc", p.acc),
        ];
        for (what, value) in fields {
            if !value.is_finite() {
                return Err(FigureError::NonFinite { what, index });
            }
        }
        for (name, value) in [("nmi", p.nmi), ("ari", p.ari), ("acc", p.acc)] {
            if !(-1.0..=1.0).contains(&value) {
                return Err(FigureError::InvalidParameter {
                    name,
                    reason: format!("point {index} has a score of {value}, outside [-1, 1]"),
                });
            }
        }
        if p.mean_l2 < 0.0 {
            return Err(FigureError::InvalidParameter {
                name: "mean_l2",
                reason: format!("point {index} has a negative norm {}", p.mean_l2),
            });
        }
    }
    Ok(())
}

/// A metric's name, colour, value and marker.
struct Metric {
    name: &'static str,
    color: RGBColor,
    value: fn(&SweepPoint) -> f64,
}

const METRICS: [Metric; 3] = [
    Metric {
        name: "NMI",
        color: RGBColor(31, 119, 180),
        value: |p| p.nmi,
    },
    Metric {
        name: "ARI",
        color: RGBColor(255, 127, 14),
        value: |p| p.ari,
    },
    Metric {
        name: "ACC",
        color: RGBColor(44, 160, 44),
        value: |p| p.acc,
    },
];

/// Marker `k` (circle, triangle, square) centred on `(x, y)`.
fn marker(area: &Area<'_>, k: usize, (x, y): (i32, i32), color: RGBColor) -> Result<(), DrawError> {
    let style = color.filled();
    match k {
        0 => area.draw(&Circle::new((x, y), 5, style))?,
        1 => area.draw(&TriangleMarker::new((x, y), 6, style))?,
        _ => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style))?,
    }
    Ok(())
}

/// Evenly spaced "nice" values (1, 2 or 5 times a power of ten) covering
/// `[lo, hi]` with about `target` intervals, and the decimals they need.
fn nice_ticks(lo: f64, hi: f64, target: f64) -> (Vec<f64>, usize) {
    let raw = (hi - lo) / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (ticks, decimals)
}

/// `epsilon` with at most four decimals and no trailing zeros.
fn format_epsilon(epsilon: f32) -> String {
    let text = format!("{epsilon:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Linear map of data to pixels inside the plot frame.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> i32 {
        let t = (x - self.x.0) / (self.x.1 - self.x.0);
        LEFT + (t * f64::from(RIGHT - LEFT)).round() as i32
    }

    fn py(&self, y: f64) -> i32 {
        let t = (y - self.y.0) / (self.y.1 - self.y.0);
        BOTTOM - (t * f64::from(BOTTOM - TOP)).round() as i32
    }
}

fn draw(area: &Area<'_>, typo: &Typesetter, points: &[SweepPoint]) -> Result<(), DrawError> {
    let max_l2 = points
        .iter()
        .map(|p| f64::from(p.mean_l2))
        .fold(0.0, f64::max);
    let x_hi = if max_l2 > 0.0 { max_l2 * 1.04 } else { 1.0 };
    let values = || {
        points
            .iter()
            .flat_map(|p| METRICS.iter().map(move |m| (m.value)(p)))
    };
    let y_lo = values().fold(0.0, f64::min);
    let y_hi = values().fold(1.0, f64::max);
    let pad = 0.04 * (y_hi - y_lo);
    let frame = Frame {
        x: (-0.02 * x_hi, x_hi),
        y: (y_lo - pad, y_hi + pad),
    };

    let grid = RGBColor(228, 228, 228);
    let axis = RGBColor(90, 90, 90);
    let (x_ticks, x_decimals) = nice_ticks(0.0, frame.x.1, 8.0);
    for &x in &x_ticks {
        let px = frame.px(x);
        area.draw(&PathElement::new(vec![(px, TOP), (px, BOTTOM)], grid))?;
        area.draw(&PathElement::new(
            vec![(px, BOTTOM), (px, BOTTOM + 5)],
            axis,
        ))?;
        let text = format!("{x:.x_decimals$}");
        typo.label(area, &text, (px, BOTTOM + 20), TICK, &TEXT, Align::Center)?;
    }
    let (y_ticks, y_decimals) = nice_ticks(frame.y.0, frame.y.1, 6.0);
    for &y in &y_ticks {
        let py = frame.py(y);
        area.draw(&PathElement::new(vec![(LEFT, py), (RIGHT, py)], grid))?;
        area.draw(&PathElement::new(vec![(LEFT - 5, py), (LEFT, py)], axis))?;
        let text = format!("{y:.y_decimals$}");
        typo.label(area, &text, (LEFT - 9, py + 5), TICK, &TEXT, Align::Right)?;
    }
    area.draw(&Rectangle::new([(LEFT, TOP), (RIGHT, BOTTOM)], axis))?;

    let center = (LEFT + RIGHT) / 2;
    typo.label(
        area,
        "Clustering scores vs. perturbation size",
        (center, 30),
        TITLE,
        &TEXT,
        Align::Center,
    )?;
    let x_desc = "mean per-sample L2 norm of the perturbation";
    typo.label(
        area,
        x_desc,
        (center, BOTTOM + 48),
        AXIS,
        &TEXT,
        Align::Center,
    )?;
    typo.label_up(area, "score", (26, (TOP + BOTTOM) / 2), AXIS, &TEXT)?;

    // The attack budget of each point, above the frame, where there is room.
    typo.label(
        area,
        "ε",
        (LEFT - 9, TOP - 9),
        EPSILON + 2.0,
        &MUTED,
        Align::Right,
    )?;
    let mut free_from = LEFT - 4;
    for p in points {
        let text = format_epsilon(p.epsilon);
        let half = typo.width(&text, EPSILON) as i32 / 2;
        let px = frame.px(f64::from(p.mean_l2));
        if px - half >= free_from && px + half <= RIGHT + 20 {
            typo.label(area, &text, (px, TOP - 9), EPSILON, &MUTED, Align::Center)?;
            area.draw(&PathElement::new(vec![(px, TOP - 5), (px, TOP)], MUTED))?;
            free_from = px + half + 6;
        }
    }

    // Curves, then markers on top.
    let paths: Vec<Vec<(i32, i32)>> = METRICS
        .iter()
        .map(|m| {
            points
                .iter()
                .map(|p| (frame.px(f64::from(p.mean_l2)), frame.py((m.value)(p))))
                .collect()
        })
        .collect();
    for (metric, path) in METRICS.iter().zip(&paths) {
        area.draw(&PathElement::new(
            path.clone(),
            metric.color.stroke_width(2),
        ))?;
    }
    for (k, (metric, path)) in METRICS.iter().zip(&paths).enumerate() {
        for &p in path {
            marker(area, k, p, metric.color)?;
        }
    }
    legend(area, typo, &paths)
}

/// The legend box, in the frame corner that covers the fewest data points.
fn legend(area: &Area<'_>, typo: &Typesetter, paths: &[Vec<(i32, i32)>]) -> Result<(), DrawError> {
    let row = 22;
    let text_w = METRICS
        .iter()
        .map(|m| typo.width(m.name, LEGEND) as i32)
        .max()
        .unwrap_or(0);
    let (w, h) = (12 + 28 + 8 + text_w + 12, 8 + row * METRICS.len() as i32);
    let inset = 12;
    let corners = [
        (RIGHT - inset - w, TOP + inset),
        (LEFT + inset, BOTTOM - inset - h),
        (RIGHT - inset - w, BOTTOM - inset - h),
        (LEFT + inset, TOP + inset),
    ];
    // Points and segment midpoints inside each candidate box.
    let samples: Vec<(i32, i32)> = paths
        .iter()
        .flat_map(|path| {
            let mids = path
                .windows(2)
                .map(|s| ((s[0].0 + s[1].0) / 2, (s[0].1 + s[1].1) / 2));
            path.iter().copied().chain(mids).collect::<Vec<_>>()
        })
        .collect();
    let covered = |&(x, y): &(i32, i32)| {
        samples
            .iter()
            .filter(|&&(px, py)| px >= x - 6 && px <= x + w + 6 && py >= y - 6 && py <= y + h + 6)
            .count()
    };
    let (x, y) = corners
        .iter()
        .copied()
        .min_by_key(covered)
        .unwrap_or(corners[0]);
    area.draw(&Rectangle::new([(x, y), (x + w, y + h)], WHITE.filled()))?;
    area.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        RGBColor(170, 170, 170),
    ))?;
    for (k, metric) in METRICS.iter().enumerate() {
        let cy = y + 4 + row * k as i32 + row / 2;
        let line = vec![(x + 12, cy), (x + 40, cy)];
        area.draw(&PathElement::new(line, metric.color.stroke_width(2)))?;
        marker(area, k, (x + 26, cy), metric.color)?;
        typo.label(
            area,
            metric.name,
            (x + 48, cy + 5),
            LEGEND,
            &TEXT,
            Align::Left,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels() {
        let (ticks, decimals) = nice_ticks(0.0, 6.1, 8.0);
        assert_eq!(ticks, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(decimals, 0);
        let (ticks, decimals) = nice_ticks(-0.04, 1.04, 6.0);
        assert_eq!(ticks.len(), 6);
        assert_eq!(decimals, 1);
        assert_eq!(format_epsilon(8.0 / 255.0), "0.0314");
        assert_eq!(format_epsilon(0.1), "0.1");
        assert_eq!(format_epsilon(0.0), "0");
        assert_eq!(format_epsilon(16.0), "16");
    }
}
