//! Comparison of attacks: one line per attack of a score against a quantity
//! spanning decades (NMI against the images queried), on a log-10 x axis.
//!
//! Drawn in the style of the sweep charts, with their canvas, frame, y axis,
//! title, lines, markers and legend (see [`super::chart`]); only the x axis
//! differs.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::chart::{
    AXIS_LINE, BOTTOM, Frame, LEFT, Line, REFERENCE, RIGHT, TICK, TOP_PLAIN, dashes, draw_lines,
    legend, nice_ticks_from, render_with, titles, x_tick, y_axis,
};
use super::{Align, Area, DrawError, FigureError, TEXT, Typesetter};

/// One point of a comparison line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Position on the log-10 x axis; must be finite and positive.
    pub x: f64,
    /// Value on the linear y axis; must be finite.
    pub y: f64,
}

/// One named line of a comparison chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveSeries {
    /// The name of the line in the legend (an attack's name); names too
    /// wide for the chart are cut short with an ellipsis.
    pub name: String,
    /// The points of the line, in any order; at least one.
    pub points: Vec<CurvePoint>,
}

/// Colours of the series, in order: the first three are those of NMI, ARI
/// and ACC in the sweep charts (matplotlib's "tab10", with navy in place of
/// its grey, which the dashed reference line uses).
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(0, 0, 128),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Writes a line chart comparing several series (one per attack) as a PNG:
/// a score on a linear y axis against a quantity on a log-10 x axis, such as
/// NMI against the images queried, from `10^3` to `10^8`.
///
/// Every series is a line with markers through its points sorted by `x`
/// (ties keep their order); series `k` has colour `k` of a 10-colour palette
/// and one of six marker shapes (circle, triangle, square, diamond, downward
/// triangle, cross, cycling), and the legend names each series with its
/// colour and marker. The x axis runs from the smallest to the largest `x`,
/// widened to at least one decade about their middle and padded a little,
/// with ticks at powers of ten labelled `10³`-style (thinned to every second,
/// fifth, ... power when there are many decades; on a range of under two
/// decades `2×10³` and `5×10³` are labelled too). The y axis runs from
/// `min(0, data)` to `max(1, data)` (data including the reference), padded a
/// little, so scores in `[0, 1]` show on the whole score range. `title` is
/// drawn above the chart, shrunk to fit when it is long, and `x_label` /
/// `y_label` name the axes. With `reference` `Some((label, value))`, a dashed
/// horizontal line is drawn at `value` under the series and named `label` in
/// the legend (the NMI of the victim on clean images, say).
///
/// # Errors
///
/// [`FigureError::EmptyInput`] for no series (`what: "series"`) or a series
/// without points (`what: "points"`); [`FigureError::NonFinite`] when an `x`
/// or `y` is NaN or infinite (`index` is the point's index in its series);
/// [`FigureError::InvalidParameter`] for an `x` of zero or less (named `x`,
/// it has no place on a log axis), more than 10 series (named `series`: the
/// palette has 10 colours, so that no two lines look alike), a non-finite
/// reference value (named `reference`) or `y` values so far apart that their
/// range overflows (named `y`); [`FigureError::Draw`] or
/// [`FigureError::Write`] when rendering or writing `path` fails.
pub fn comparison_curve(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[CurveSeries],
    reference: Option<(&str, f64)>,
) -> Result<(), FigureError> {
    validate(series, reference)?;
    let frame = frame(series, reference.map(|(_, value)| value))?;
    let sorted: Vec<CurveSeries> = series
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
            s
        })
        .collect();
    render_with(path, |area, typo| {
        draw(
            area,
            typo,
            &Labels {
                title,
                x_label,
                y_label,
            },
            &frame,
            &sorted,
            reference,
        )
    })
}

fn validate(series: &[CurveSeries], reference: Option<(&str, f64)>) -> Result<(), FigureError> {
    if series.is_empty() {
        return Err(FigureError::EmptyInput { what: "series" });
    }
    super::chart::check_series_count(series.len())?;
    for s in series {
        if s.points.is_empty() {
            return Err(FigureError::EmptyInput { what: "points" });
        }
        for (index, p) in s.points.iter().enumerate() {
            for (what, value) in [("x", p.x), ("y", p.y)] {
                if !value.is_finite() {
                    return Err(FigureError::NonFinite { what, index });
                }
            }
            if p.x <= 0.0 {
                return Err(FigureError::InvalidParameter {
                    name: "x",
                    reason: format!(
                        "point {index} of series {:?} has x = {}, not positive, \
                         which a log axis cannot show",
                        s.name, p.x
                    ),
                });
            }
        }
    }
    if let Some((label, value)) = reference
        && !value.is_finite()
    {
        return Err(FigureError::InvalidParameter {
            name: "reference",
            reason: format!("the value of {label:?} is {value}, not a finite number"),
        });
    }
    Ok(())
}

/// The frame of validated `series`, x in log-10 space.
fn frame(series: &[CurveSeries], reference: Option<f64>) -> Result<Frame, FigureError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let x_lo = points().map(|p| p.x.log10()).fold(f64::INFINITY, f64::min);
    let x_hi = points()
        .map(|p| p.x.log10())
        .fold(f64::NEG_INFINITY, f64::max);
    let x = widen(x_lo, x_hi);
    let ys = || points().map(|p| p.y).chain(reference);
    let y_lo = ys().fold(0.0, f64::min);
    let y_hi = ys().fold(1.0, f64::max);
    let pad = 0.04 * (y_hi - y_lo);
    let y = (y_lo - pad, y_hi + pad);
    if !(y.0.is_finite() && y.1.is_finite() && (y.1 - y.0).is_finite()) {
        return Err(FigureError::InvalidParameter {
            name: "y",
            reason: format!("values from {y_lo} to {y_hi} span too wide a range to draw"),
        });
    }
    Ok(Frame {
        x,
        y,
        top: TOP_PLAIN,
    })
}

/// `[lo, hi]` (decimal logarithms) widened to at least one decade about its
/// middle, then padded by 3% on either side.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if hi - lo < 1.0 {
        let mid = 0.5 * (lo + hi);
        (mid - 0.5, mid + 0.5)
    } else {
        (lo, hi)
    };
    let pad = 0.03 * (hi - lo);
    (lo - pad, hi + pad)
}

/// One tick of the log axis: `mantissa × 10^exponent`, labelled or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogTick {
    /// 1 for a power of ten, 2 to 9 between them.
    mantissa: u8,
    exponent: i32,
    label: bool,
}

impl LogTick {
    /// The tick's position, a decimal logarithm.
    fn position(self) -> f64 {
        f64::from(self.exponent) + f64::from(self.mantissa).log10()
    }
}

/// Ticks of a log axis over `[lo, hi]` (decimal logarithms): labelled
/// powers of ten, about eight of them at most (every second, fifth, ...
/// decade when there are more), unlabelled ticks at 2 to 9 times each power
/// when there are at most 12 decades, and of those, labels at 2 and 5 times
/// each power when fewer than three powers are in range.
fn log_ticks(lo: f64, hi: f64) -> Vec<LogTick> {
    let (powers, _) = nice_ticks_from(lo, hi, 8.0, 1.0);
    let mut ticks: Vec<LogTick> = powers
        .iter()
        .map(|&e| LogTick {
            mantissa: 1,
            exponent: e.round() as i32,
            label: true,
        })
        .collect();
    if hi - lo <= 12.0 {
        let label_minor = ticks.len() < 3;
        let (first, last) = (lo.floor() as i32, hi.ceil() as i32);
        for exponent in first..=last {
            for mantissa in 2..=9u8 {
                let tick = LogTick {
                    mantissa,
                    exponent,
                    label: label_minor && (mantissa == 2 || mantissa == 5),
                };
                if (lo..=hi).contains(&tick.position()) {
                    ticks.push(tick);
                }
            }
        }
    }
    ticks.sort_by(|a, b| a.position().total_cmp(&b.position()));
    ticks
}

/// The label of a tick and its exponent: ("10", "3") for `10³`, ("2×10",
/// "−3") for `2×10⁻³`.
fn tick_text(tick: LogTick) -> (String, String) {
    let base = if tick.mantissa == 1 {
        "10".to_string()
    } else {
        format!("{}\u{d7}10", tick.mantissa)
    };
    (base, tick.exponent.to_string().replace('-', "\u{2212}"))
}

/// Size of an exponent, and how far its baseline is raised.
const EXPONENT: f64 = 9.5;
const RAISE: i32 = 6;

/// Draws the label of `tick` centred on `px` below the frame, its exponent
/// raised and smaller.
fn power_label(
    area: &Area<'_>,
    typo: &Typesetter,
    tick: LogTick,
    px: i32,
) -> Result<(), DrawError> {
    let (base, exponent) = tick_text(tick);
    let base_w = typo.width(&base, TICK) as i32;
    let width = base_w + typo.width(&exponent, EXPONENT) as i32;
    let x = px - width / 2;
    let y = BOTTOM + 20;
    typo.label(area, &base, (x, y), TICK, &TEXT, Align::Left)?;
    typo.label(
        area,
        &exponent,
        (x + base_w, y - RAISE),
        EXPONENT,
        &TEXT,
        Align::Left,
    )
}

/// The texts around the chart.
struct Labels<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
}

fn draw(
    area: &Area<'_>,
    typo: &Typesetter,
    labels: &Labels<'_>,
    frame: &Frame,
    series: &[CurveSeries],
    reference: Option<(&str, f64)>,
) -> Result<(), DrawError> {
    let top = frame.top;
    for tick in log_ticks(frame.x.0, frame.x.1) {
        let px = x_tick(area, top, frame.px(tick.position()), tick.mantissa == 1)?;
        if tick.label {
            power_label(area, typo, tick, px)?;
        }
    }
    y_axis(area, typo, frame, labels.y_label)?;
    area.draw(&Rectangle::new([(LEFT, top), (RIGHT, BOTTOM)], AXIS_LINE))?;
    titles(area, typo, labels.title, labels.x_label)?;

    // The reference line under the series.
    let reference = reference.map(|(label, value)| (label, frame.py(value)));
    if let Some((_, py)) = reference {
        dashes(area, (LEFT + 1, RIGHT), py, REFERENCE)?;
    }
    let lines: Vec<Line<'_>> = series
        .iter()
        .zip(PALETTE)
        .enumerate()
        .map(|(k, (s, color))| Line {
            name: &s.name,
            color,
            marker: k,
            path: s
                .points
                .iter()
                .map(|p| (frame.px(p.x.log10()), frame.py(p.y)))
                .collect(),
        })
        .collect();
    draw_lines(area, &lines)?;
    legend(area, typo, frame, &lines, reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(ticks: &[LogTick]) -> Vec<(u8, i32)> {
        ticks
            .iter()
            .filter(|t| t.label)
            .map(|t| (t.mantissa, t.exponent))
            .collect()
    }

    #[test]
    fn decades_from_1e3_to_1e8() {
        let (lo, hi) = widen(3.0, 8.0);
        assert!(lo < 3.0 && hi > 8.0 && hi - lo < 5.5);
        let ticks = log_ticks(lo, hi);
        assert_eq!(
            labelled(&ticks),
            (3..=8).map(|e| (1, e)).collect::<Vec<_>>()
        );
        // 2..9 times each power in range, unlabelled: 8 and 9 times 10^2
        // fall in the padding left of 10^3, none right of 10^8.
        assert_eq!(ticks.len(), 6 + 5 * 8 + 2);
        assert!(ticks.windows(2).all(|w| w[0].position() < w[1].position()));
        let first = ticks.iter().find(|t| t.label).copied();
        assert_eq!(first.map(tick_text), Some(("10".into(), "3".into())));
    }

    #[test]
    fn narrow_and_wide_ranges() {
        // One point: one decade about it, 2× and 5× labelled.
        let (lo, hi) = widen(4.0, 4.0);
        assert!((hi - lo - 1.06).abs() < 1e-12);
        assert_eq!(labelled(&log_ticks(lo, hi)), [(5, 3), (1, 4), (2, 4)]);
        let tick = LogTick {
            mantissa: 2,
            exponent: -3,
            label: true,
        };
        assert_eq!(tick_text(tick), ("2\u{d7}10".into(), "\u{2212}3".into()));
        // Forty decades: every fifth power, no minor ticks.
        let ticks = log_ticks(-20.0, 20.0);
        assert_eq!(
            labelled(&ticks),
            (-4..=4).map(|k| (1, 5 * k)).collect::<Vec<_>>()
        );
        assert_eq!(ticks.len(), 9);
        // The whole range of f64 still gives a handful of ticks.
        let ticks = log_ticks(f64::MIN_POSITIVE.log10(), f64::MAX.log10());
        assert!((3..=12).contains(&ticks.len()), "{}", ticks.len());
    }
}
