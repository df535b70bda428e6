//! Grouped vertical bars (the look of Fig. 5a of the paper): one group per
//! victim, say, one bar per series in each, the value written above every
//! bar, and an optional dashed reference line.
//!
//! The fonts, colours, ticks, title, dashed line and key come from
//! [`super::chart`] and the series colours from the comparison chart's
//! palette; the canvas is at least as wide as the line charts' and grows
//! with the number of bars, so that every value label fits above its bar.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::chart::{
    AXIS, AXIS_LINE, GRID, HEIGHT, Key, REFERENCE, Swatch, TAG, TICK, dashes, fit_at, nice_step,
    tick_labels, title_at,
};
use super::comparison::PALETTE;
use super::{Align, Area, Canvas, DrawError, FigureError, TEXT, Typesetter};

/// One group of bars (e.g. one victim), one value per series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BarGroup {
    /// The name written under the group (cut short with an ellipsis when
    /// it is very long).
    pub name: String,
    /// One value per series, in the order of the series; finite and not
    /// negative.
    pub values: Vec<f64>,
}

/// Narrowest canvas, that of the line charts.
const MIN_WIDTH: i64 = 820;
/// Gap between the frame and the right edge of the canvas.
const RIGHT_MARGIN: i64 = 24;
/// Narrowest and widest room left of the frame, for the y axis.
const MIN_LEFT: i32 = 78;
const MAX_LEFT: i32 = 240;
/// Top of the key, below the title.
const KEY_TOP: i32 = 42;
/// Room between the key and the frame, where the label of a bar reaching
/// the top of the frame goes.
const KEY_GAP: i32 = 24;
/// Bottom edge of the frame: the group names go below it.
const BOTTOM: i32 = HEIGHT as i32 - 48;
/// Bar widths: at least enough for the widest value label (and never under
/// the first bound), and no wider than the second unless a label needs it.
const MIN_BAR: i64 = 14;
const WIDE_BAR: f64 = 64.0;
/// Widest a value label may make a bar.
const MAX_BAR: i64 = 120;
/// Least gap between groups.
const MIN_GROUP_GAP: i64 = 20;
/// Widest group name, in pixels.
const MAX_NAME: i32 = 260;
/// Headroom above the highest bar (or reference line), as a share of it.
const HEADROOM: f64 = 1.08;

/// Writes grouped vertical bars as a PNG, in the look of Fig. 5a of the
/// paper: one group per entry of `groups` (a victim, say), named below it,
/// and in each group one bar per series, `series[k]` naming bar `k` in the
/// key above the chart, with colour `k` of the 10-colour palette of
/// [`comparison_curve`](super::comparison_curve).
///
/// The value of each bar is written above it: with `percent`, as a
/// percentage with one decimal (0.1169 is "11.7 %") and the y axis ticks in
/// percent (1.0 is "100 %"); otherwise with 3 decimals ("0.117"). The y axis,
/// named `y_label`, runs from 0 to a "nice" maximum a little above the
/// highest bar and reference (to 100 % at most when `percent` and no value is
/// over 1). With `reference` `Some((label, value))`, a dashed horizontal line
/// is drawn across the chart at `value`, over the bars, and named `label` in
/// the key (say `("5 % clean false-flag rate", 0.05)`). `title` is drawn above
/// the chart, shrunk to fit when it is long. The canvas is 540 pixels high
/// and 820 wide, wider when the bars and their labels need it.
///
/// # Errors
///
/// [`FigureError::EmptyInput`] for no series (`what: "series"`) or no groups
/// (`what: "groups"`); [`FigureError::LengthMismatch`] for a group with not
/// one value per series (`what: "values"`); [`FigureError::NonFinite`] for a
/// NaN or infinite value (`what: "values"`, `index` is the group's index);
/// [`FigureError::InvalidParameter`] for a negative value or one so large
/// that the axis overflows (named `values`), a non-finite or negative
/// reference value (named `reference`) or more than 10 series (named
/// `series`: the palette has 10 colours); [`FigureError::TooLarge`] for more
/// bars than a canvas can hold; [`FigureError::Draw`] or
/// [`FigureError::Write`] when rendering or writing `path` fails.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[String],
    groups: &[BarGroup],
    percent: bool,
    reference: Option<(&str, f64)>,
) -> Result<(), FigureError> {
    validate(series, groups, reference)?;
    let highest = groups
        .iter()
        .flat_map(|g| g.values.iter().copied())
        .chain(reference.map(|(_, value)| value))
        .fold(0.0, f64::max);
    let scale = YScale::new(highest, percent).ok_or_else(|| FigureError::InvalidParameter {
        name: "values",
        reason: format!("{highest} is too large to draw"),
    })?;

    let typo = Typesetter::new()?;
    let layout = Layout::new(&typo, series, groups, percent, reference, &scale)?;
    let mut canvas = Canvas::new(layout.width as u64, HEIGHT)?;
    let chart = Chart {
        typo: &typo,
        layout: &layout,
        scale: &scale,
        title,
        y_label,
        groups,
        percent,
        reference: reference.map(|(_, value)| value),
    };
    canvas.draw(path, |area| chart.draw(area))?;
    canvas.save(path)
}

fn validate(
    series: &[String],
    groups: &[BarGroup],
    reference: Option<(&str, f64)>,
) -> Result<(), FigureError> {
    if series.is_empty() {
        return Err(FigureError::EmptyInput { what: "series" });
    }
    if groups.is_empty() {
        return Err(FigureError::EmptyInput { what: "groups" });
    }
    super::chart::check_series_count(series.len())?;
    for (index, group) in groups.iter().enumerate() {
        if group.values.len() != series.len() {
            return Err(FigureError::LengthMismatch {
                what: "values",
                expected: series.len(),
                actual: group.values.len(),
            });
        }
        for (value, name) in group.values.iter().zip(series) {
            if !value.is_finite() {
                return Err(FigureError::NonFinite {
                    what: "values",
                    index,
                });
            }
            if *value < 0.0 {
                return Err(FigureError::InvalidParameter {
                    name: "values",
                    reason: format!(
                        "group {index} ({:?}) has {value} for series {name:?}, below zero",
                        group.name
                    ),
                });
            }
        }
    }
    if let Some((label, value)) = reference
        && !(value.is_finite() && value >= 0.0)
    {
        return Err(FigureError::InvalidParameter {
            name: "reference",
            reason: format!("the value of {label:?} is {value}, not a finite number of at least 0"),
        });
    }
    Ok(())
}

/// The label of a bar of `value`: "11.7 %" for 0.1169 with `percent`, else
/// "0.117".
fn value_label(value: f64, percent: bool) -> String {
    if percent {
        format!("{:.1} %", value * 100.0)
    } else {
        format!("{value:.3}")
    }
}

/// The y axis: from 0 to `max`, ticks every `step`.
#[derive(Debug, PartialEq)]
struct YScale {
    max: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl YScale {
    /// The axis for bars up to `highest` (not negative): up to a multiple of
    /// a nice step a little above it, 100 % at most with `percent` unless
    /// `highest` is over 1; 0 to 1 when everything is (next to) zero. `None`
    /// when the axis would overflow.
    fn new(highest: f64, percent: bool) -> Option<Self> {
        let target = if highest > 1e-100 {
            highest * HEADROOM
        } else {
            1.0
        };
        let target = if percent && highest <= 1.0 {
            target.min(1.0)
        } else {
            target
        };
        let (step, decimals) = nice_step(target / 5.0);
        let steps = (target / step - 1e-9).ceil().max(1.0);
        let max = steps * step;
        if !(max.is_finite() && step > 0.0 && steps <= 100.0) {
            return None;
        }
        let ticks: Vec<f64> = (0..=steps as u32).map(|i| f64::from(i) * step).collect();
        let labels = if percent {
            let decimals = decimals.saturating_sub(2);
            ticks
                .iter()
                .map(|t| format!("{:.decimals$} %", t * 100.0))
                .collect()
        } else {
            tick_labels(&ticks, decimals)
        };
        Some(YScale { max, ticks, labels })
    }
}

/// Where everything goes.
struct Layout {
    /// Canvas width.
    width: i32,
    /// The frame.
    left: i32,
    right: i32,
    top: i32,
    /// Width of each group's slot, and of each bar in it.
    slot: f64,
    bar: f64,
    /// Width of the widest y tick label.
    y_label_w: i32,
    /// Group names, cut to fit their slots.
    names: Vec<String>,
    key: Key,
}

impl Layout {
    fn new(
        typo: &Typesetter,
        series: &[String],
        groups: &[BarGroup],
        percent: bool,
        reference: Option<(&str, f64)>,
        scale: &YScale,
    ) -> Result<Self, FigureError> {
        let y_label_w = scale
            .labels
            .iter()
            .map(|l| typo.width(l, TICK) as i32)
            .max()
            .unwrap_or(0);
        let left = (y_label_w + 52).clamp(MIN_LEFT, MAX_LEFT);
        let label_w = groups
            .iter()
            .flat_map(|g| &g.values)
            .map(|&v| i64::from(typo.width(&value_label(v, percent), TAG)) + 4)
            .max()
            .unwrap_or(0);
        let min_bar = label_w.clamp(MIN_BAR, MAX_BAR);
        let n_series = series.len() as i64;
        let name_w = groups
            .iter()
            .map(|g| i64::from(typo.width(&g.name, TICK)).min(i64::from(MAX_NAME)))
            .max()
            .unwrap_or(0);
        let min_slot = (n_series * min_bar + MIN_GROUP_GAP.max(min_bar)).max(name_w + 16);
        let n_groups = i64::try_from(groups.len()).unwrap_or(i64::MAX);
        let room = MIN_WIDTH - i64::from(left) - RIGHT_MARGIN;
        let frame_w = n_groups.saturating_mul(min_slot).max(room);
        let width = i64::from(left)
            .saturating_add(frame_w)
            .saturating_add(RIGHT_MARGIN);
        let too_large = FigureError::TooLarge {
            width: width as u64,
            height: HEIGHT,
        };
        if (width as u64).saturating_mul(HEIGHT) > super::MAX_PIXELS {
            return Err(too_large);
        }
        let width = i32::try_from(width).map_err(|_| too_large)?;
        let slot = frame_w as f64 / n_groups as f64;
        // Bars grow with a roomy slot, to WIDE_BAR at most, leaving a gap.
        let bar = (min_bar as f64).max((0.8 * slot / n_series as f64).min(WIDE_BAR));

        let names = groups
            .iter()
            .map(|g| {
                let room = (slot as i32 - 6).min(MAX_NAME);
                fit_at(typo, &g.name, room, TICK)
            })
            .collect();
        let entries = series
            .iter()
            .zip(PALETTE)
            .map(|(name, color)| (Swatch::Block(color), name.as_str()))
            .chain(reference.map(|(label, _)| (Swatch::Dashes(REFERENCE), label)));
        let key = Key::new(typo, entries, width - 48);
        let top = KEY_TOP + key.height() + KEY_GAP;
        Ok(Layout {
            width,
            left,
            right: left + frame_w as i32,
            top,
            slot,
            bar,
            y_label_w,
            names,
            key,
        })
    }
}

/// A laid-out chart, ready to draw.
struct Chart<'a> {
    typo: &'a Typesetter,
    layout: &'a Layout,
    scale: &'a YScale,
    title: &'a str,
    y_label: &'a str,
    groups: &'a [BarGroup],
    percent: bool,
    reference: Option<f64>,
}

impl Chart<'_> {
    fn py(&self, value: f64) -> i32 {
        let (top, max) = (self.layout.top, self.scale.max);
        BOTTOM - (value / max * f64::from(BOTTOM - top)).round() as i32
    }

    fn draw(&self, area: &Area<'_>) -> Result<(), DrawError> {
        let (typo, l) = (self.typo, self.layout);
        let (left, right, top) = (l.left, l.right, l.top);

        // Grid and y axis under the bars.
        for (&t, text) in self.scale.ticks.iter().zip(&self.scale.labels) {
            let py = self.py(t);
            area.draw(&PathElement::new(vec![(left, py), (right, py)], GRID))?;
            area.draw(&PathElement::new(
                vec![(left - 5, py), (left, py)],
                AXIS_LINE,
            ))?;
            typo.label(area, text, (left - 9, py + 5), TICK, &TEXT, Align::Right)?;
        }
        let baseline = (left - 9 - l.y_label_w - 14).max(20);
        typo.label_up(
            area,
            self.y_label,
            (baseline, (top + BOTTOM) / 2),
            AXIS,
            &TEXT,
        )?;

        // Bars, in slots centred on their group's name.
        let mut labels = Vec::new();
        for (g, (group, name)) in self.groups.iter().zip(&l.names).enumerate() {
            let center = f64::from(left) + (g as f64 + 0.5) * l.slot;
            let start = center - 0.5 * l.bar * group.values.len() as f64;
            for (k, (&value, color)) in group.values.iter().zip(PALETTE).enumerate() {
                let x0 = (start + k as f64 * l.bar).round() as i32;
                let x1 = (start + (k + 1) as f64 * l.bar).round() as i32;
                // A pixel of white between neighbours.
                let x1 = if x1 - x0 >= 8 { x1 - 1 } else { x1 };
                let y = self.py(value);
                if y < BOTTOM {
                    area.draw(&Rectangle::new([(x0, y), (x1, BOTTOM)], color.filled()))?;
                }
                labels.push(((x0 + x1) / 2, y - 5, value_label(value, self.percent)));
            }
            let cx = center.round() as i32;
            area.draw(&PathElement::new(
                vec![(cx, BOTTOM), (cx, BOTTOM + 5)],
                AXIS_LINE,
            ))?;
            typo.label(area, name, (cx, BOTTOM + 22), TICK, &TEXT, Align::Center)?;
        }

        // The reference line over the bars, then the values over it, each
        // on a patch of white where the line runs through it.
        let reference = self.reference.map(|value| self.py(value));
        if let Some(py) = reference {
            dashes(area, (left + 1, right), py, REFERENCE)?;
        }
        for (x, y, text) in labels {
            if let Some(py) = reference
                && (y - 11..=y + 3).contains(&py)
            {
                let half = typo.width(&text, TAG) as i32 / 2 + 2;
                area.draw(&Rectangle::new(
                    [(x - half, y - 11), (x + half, y + 3)],
                    WHITE.filled(),
                ))?;
            }
            typo.label(area, &text, (x, y), TAG, &TEXT, Align::Center)?;
        }
        area.draw(&Rectangle::new([(left, top), (right, BOTTOM)], AXIS_LINE))?;
        let center = l.width / 2;
        title_at(area, typo, self.title, center, l.width)?;
        l.key.draw(area, typo, center, KEY_TOP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_labels() {
        assert_eq!(value_label(0.1169, true), "11.7 %");
        assert_eq!(value_label(0.05, true), "5.0 %");
        assert_eq!(value_label(1.0, true), "100.0 %");
        assert_eq!(value_label(0.0, true), "0.0 %");
        assert_eq!(value_label(0.1169, false), "0.117");
        assert_eq!(value_label(12.0, false), "12.000");
    }

    #[test]
    fn y_scales() {
        // Rates up to 11.7 %: ticks every 5 %, to 15 %.
        let scale = YScale::new(0.1169, true).unwrap();
        assert!((scale.max - 0.15).abs() < 1e-12, "{}", scale.max);
        assert_eq!(scale.labels, ["0 %", "5 %", "10 %", "15 %"]);
        // A rate near 1 stops at 100 %.
        let scale = YScale::new(0.97, true).unwrap();
        assert!((scale.max - 1.0).abs() < 1e-12);
        assert_eq!(
            scale.labels,
            ["0 %", "20 %", "40 %", "60 %", "80 %", "100 %"]
        );
        // Half-percent steps keep their decimal.
        let scale = YScale::new(0.02, true).unwrap();
        assert!(
            scale.labels.contains(&"0.5 %".to_string()),
            "{:?}",
            scale.labels
        );
        // Plain values, and nothing at all.
        let scale = YScale::new(3.2, false).unwrap();
        assert!(scale.max >= 3.2 * HEADROOM && scale.max <= 4.0);
        assert_eq!(scale.labels[0], "0");
        let scale = YScale::new(0.0, false).unwrap();
        assert!((scale.max - 1.0).abs() < 1e-12);
        assert_eq!(YScale::new(0.0, true), YScale::new(5e-324, true));
        // Every finite value gives a few ticks, or none.
        for highest in [1e-99, 1e-50, 7.0, 1e300, f64::MAX / 2.0] {
            let scale = YScale::new(highest, false).unwrap();
            assert!((3..=12).contains(&scale.ticks.len()), "{highest}");
            assert!(scale.max >= highest);
        }
        assert_eq!(YScale::new(f64::MAX, false), None);
    }
}
