//! Fig. 3, clustering scores against the size of the perturbation, and the
//! training curve of an attack, clustering scores against the victim queries
//! it made. Both are one line chart ([`Chart`]) drawn by [`render`].
//!
//! The canvas size, frame, fonts, markers, ticks, title, y axis, lines and
//! legend come from [`super::chart`], shared with the other line chart,
//! [`comparison_curve`](super::comparison_curve).

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::chart::{
    AXIS_LINE, BOTTOM, Frame, LEFT, Line, REFERENCE, RIGHT, TAG, TICK, TOP_PLAIN, TOP_TAGGED,
    dashes, draw_lines, legend, nice_ticks_from, render_with, tick_labels, titles, x_tick, y_axis,
};
use super::{Align, Area, DrawError, FigureError, MUTED, TEXT, Typesetter};

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
    validate_sweep(points)?;
    let mut points = points.to_vec();
    points.sort_by(|a, b| {
        a.mean_l2
            .total_cmp(&b.mean_l2)
            .then(a.epsilon.total_cmp(&b.epsilon))
    });
    let chart = Chart {
        title: "Clustering scores vs. perturbation size",
        x_label: "mean per-sample L2 norm of the perturbation",
        integer_x: false,
        tag_heading: Some("ε"),
        points: points
            .iter()
            .map(|p| ChartPoint {
                x: f64::from(p.mean_l2),
                scores: [Some(p.nmi), Some(p.ari), Some(p.acc)],
                tag: Some(format_epsilon(p.epsilon)),
            })
            .collect(),
        reference: None,
    };
    render(path, &chart)
}

fn validate_sweep(points: &[SweepPoint]) -> Result<(), FigureError> {
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
        check_scores(index, [("nmi", p.nmi), ("ari", p.ari), ("acc", p.acc)])?;
        if p.mean_l2 < 0.0 {
            return Err(FigureError::InvalidParameter {
                name: "mean_l2",
                reason: format!("point {index} has a negative norm {}", p.mean_l2),
            });
        }
    }
    Ok(())
}

/// One point of an attack's training curve: how many victim calls it had made, and the scores then.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QueryPoint {
    /// Cumulative training batch calls to the victim.
    pub batch_calls: u64,
    /// NMI of the adversarial clusters then.
    pub nmi: f64,
    /// ARI then, when known.
    pub ari: Option<f64>,
    /// ACC then, when known.
    pub acc: Option<f64>,
}

/// Writes the clustering scores of an attack's adversarial images against
/// the victim batch calls it had made during training as a PNG: how fast a
/// black-box attack learns to hurt the victim, for the queries it spends.
///
/// Points are sorted by `batch_calls` (ties keep their order). NMI is always
/// drawn; ARI and ACC are drawn through the points that have them, and a
/// metric no point has is left out of the chart and its legend. Each metric
/// has its own colour and marker, as in [`sweep_curves`]. With `clean_nmi`,
/// the NMI of the victim on clean images is drawn as a dashed horizontal
/// reference line, "clean NMI" in the legend. `title` is drawn above the
/// chart, shrunk to fit when it is long.
///
/// # Errors
///
/// [`FigureError::EmptyInput`] for no points, [`FigureError::NonFinite`]
/// when a score is NaN or infinite, [`FigureError::InvalidParameter`] for a
/// score outside `[-1, 1]` or a `clean_nmi` that is not a number in
/// `[0, 1]`, [`FigureError::Draw`] or [`FigureError::Write`] when rendering
/// or writing `path` fails.
pub fn query_curve(
    path: &Path,
    title: &str,
    points: &[QueryPoint],
    clean_nmi: Option<f64>,
) -> Result<(), FigureError> {
    validate_queries(points, clean_nmi)?;
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.batch_calls);
    let chart = Chart {
        title,
        x_label: "victim batch calls during training",
        integer_x: true,
        tag_heading: None,
        points: points
            .iter()
            .map(|p| ChartPoint {
                // Exact up to 2^53 calls, far beyond any run.
                x: p.batch_calls as f64,
                scores: [Some(p.nmi), p.ari, p.acc],
                tag: None,
            })
            .collect(),
        reference: clean_nmi.map(|value| Reference {
            label: "clean NMI",
            value,
        }),
    };
    render(path, &chart)
}

fn validate_queries(points: &[QueryPoint], clean_nmi: Option<f64>) -> Result<(), FigureError> {
    if points.is_empty() {
        return Err(FigureError::EmptyInput { what: "points" });
    }
    for (index, p) in points.iter().enumerate() {
        let fields = [("nmi", Some(p.nmi)), ("ari", p.ari), ("acc", p.acc)];
        for (what, value) in fields {
            if value.is_some_and(|v| !v.is_finite()) {
                return Err(FigureError::NonFinite { what, index });
            }
        }
        check_scores(
            index,
            fields.map(|(name, value)| (name, value.unwrap_or(0.0))),
        )?;
    }
    if let Some(value) = clean_nmi
        && !(0.0..=1.0).contains(&value)
    {
        return Err(FigureError::InvalidParameter {
            name: "clean_nmi",
            reason: format!("{value} is not a score in [0, 1]"),
        });
    }
    Ok(())
}

/// Refuses a score of point `index` outside `[-1, 1]`.
fn check_scores(index: usize, scores: [(&'static str, f64); 3]) -> Result<(), FigureError> {
    for (name, value) in scores {
        if !(-1.0..=1.0).contains(&value) {
            return Err(FigureError::InvalidParameter {
                name,
                reason: format!("point {index} has a score of {value}, outside [-1, 1]"),
            });
        }
    }
    Ok(())
}

/// A line chart of up to three clustering scores against one quantity.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    /// Whether x counts something, so ticks are whole numbers.
    integer_x: bool,
    /// What the point tags are, drawn left of their row ("ε").
    tag_heading: Option<&'a str>,
    /// Sorted by `x`; `x` finite and non-negative, scores finite.
    points: Vec<ChartPoint>,
    /// A horizontal line at a score, named in the legend.
    reference: Option<Reference>,
}

/// One x value and the scores there, in [`METRICS`] order.
struct ChartPoint {
    x: f64,
    scores: [Option<f64>; 3],
    /// A short label drawn above the frame at `x`, where there is room.
    tag: Option<String>,
}

/// A dashed horizontal line at `value`.
struct Reference {
    label: &'static str,
    value: f64,
}

/// A metric's name and colour; its index picks its marker.
struct Metric {
    name: &'static str,
    color: RGBColor,
}

const METRICS: [Metric; 3] = [
    Metric {
        name: "NMI",
        color: RGBColor(31, 119, 180),
    },
    Metric {
        name: "ARI",
        color: RGBColor(255, 127, 14),
    },
    Metric {
        name: "ACC",
        color: RGBColor(44, 160, 44),
    },
];

/// Draws `chart` on a fresh canvas and writes it to `path`.
fn render(path: &Path, chart: &Chart<'_>) -> Result<(), FigureError> {
    render_with(path, |area, typo| draw(area, typo, chart))
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

fn draw(area: &Area<'_>, typo: &Typesetter, chart: &Chart<'_>) -> Result<(), DrawError> {
    let points = &chart.points;
    let tagged = points.iter().any(|p| p.tag.is_some());
    let top = if tagged { TOP_TAGGED } else { TOP_PLAIN };
    let max_x = points.iter().map(|p| p.x).fold(0.0, f64::max);
    let x_hi = if max_x > 0.0 { max_x * 1.04 } else { 1.0 };
    let values = || {
        points
            .iter()
            .flat_map(|p| p.scores.iter().flatten().copied())
            .chain(chart.reference.as_ref().map(|r| r.value))
    };
    let y_lo = values().fold(0.0, f64::min);
    let y_hi = values().fold(1.0, f64::max);
    let pad = 0.04 * (y_hi - y_lo);
    let frame = Frame {
        x: (-0.02 * x_hi, x_hi),
        y: (y_lo - pad, y_hi + pad),
        top,
    };

    let min_step = if chart.integer_x { 1.0 } else { 0.0 };
    let (x_ticks, x_decimals) = nice_ticks_from(0.0, frame.x.1, 8.0, min_step);
    for (&x, text) in x_ticks.iter().zip(tick_labels(&x_ticks, x_decimals)) {
        let px = x_tick(area, top, frame.px(x), true)?;
        typo.label(area, &text, (px, BOTTOM + 20), TICK, &TEXT, Align::Center)?;
    }
    y_axis(area, typo, &frame, "score")?;
    area.draw(&Rectangle::new([(LEFT, top), (RIGHT, BOTTOM)], AXIS_LINE))?;
    titles(area, typo, chart.title, chart.x_label)?;

    // The tag of each point, above the frame, where there is room.
    if tagged {
        if let Some(heading) = chart.tag_heading {
            typo.label(
                area,
                heading,
                (LEFT - 9, top - 9),
                TAG + 2.0,
                &MUTED,
                Align::Right,
            )?;
        }
        let mut free_from = LEFT - 4;
        for p in points {
            let Some(text) = &p.tag else { continue };
            let half = typo.width(text, TAG) as i32 / 2;
            let px = frame.px(p.x);
            if px - half >= free_from && px + half <= RIGHT + 20 {
                typo.label(area, text, (px, top - 9), TAG, &MUTED, Align::Center)?;
                area.draw(&PathElement::new(vec![(px, top - 5), (px, top)], MUTED))?;
                free_from = px + half + 6;
            }
        }
    }

    // The reference line under the curves.
    let reference = chart.reference.as_ref().map(|r| (r, frame.py(r.value)));
    if let Some((_, py)) = reference {
        dashes(area, (LEFT + 1, RIGHT), py, REFERENCE)?;
    }

    // Curves through the points that have each metric, then markers on top.
    let lines: Vec<Line<'_>> = METRICS
        .iter()
        .enumerate()
        .map(|(k, metric)| Line {
            name: metric.name,
            color: metric.color,
            marker: k,
            path: points
                .iter()
                .filter_map(|p| p.scores[k].map(|v| (frame.px(p.x), frame.py(v))))
                .collect(),
        })
        .filter(|line| !line.path.is_empty())
        .collect();
    draw_lines(area, &lines)?;
    legend(
        area,
        typo,
        &frame,
        &lines,
        reference.map(|(r, py)| (r.label, py)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_labels() {
        assert_eq!(format_epsilon(8.0 / 255.0), "0.0314");
        assert_eq!(format_epsilon(0.1), "0.1");
        assert_eq!(format_epsilon(0.0), "0");
        assert_eq!(format_epsilon(16.0), "16");
    }
}
