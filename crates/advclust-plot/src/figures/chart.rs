//! The drawing kit shared by the line charts, the sweep and query curves
//! ([`sweep_curves`](super::sweep_curves), [`query_curve`](super::query_curve))
//! and the comparison of attacks ([`comparison_curve`](super::comparison_curve)):
//! the canvas size and plot frame ([`Frame`]), font sizes and colours, markers
//! and dashed lines, "nice" ticks and their labels, the x tick marks, the
//! linear y axis, the titles, the lines with their markers ([`Line`]) and the
//! legend, all `pub(super)`, plus [`render_with`], which draws a chart on a
//! fresh canvas and writes it as PNG. The PCA scatter and the grouped bars
//! ([`pca_scatter`](super::pca_scatter), [`grouped_bars`](super::grouped_bars))
//! lay out their own canvases but share its fonts, colours, ticks, titles
//! ([`title_at`]) and a key drawn above the charts ([`Key`]).

use std::path::Path;

use plotters::prelude::*;

use super::{Align, Area, Canvas, DrawError, FigureError, TEXT, Typesetter};

pub(super) const WIDTH: u64 = 820;
pub(super) const HEIGHT: u64 = 540;
/// Plot frame: left, right and bottom edges in pixels; the top edge leaves
/// room for a row of point tags when there is one.
pub(super) const LEFT: i32 = 78;
pub(super) const RIGHT: i32 = WIDTH as i32 - 24;
pub(super) const TOP_TAGGED: i32 = 74;
pub(super) const TOP_PLAIN: i32 = 58;
pub(super) const BOTTOM: i32 = HEIGHT as i32 - 66;

const TITLE: f64 = 19.0;
/// Smallest size a long title is shrunk to so that it fits the canvas.
const TITLE_MIN: f64 = 11.0;
pub(super) const AXIS: f64 = 15.0;
pub(super) const TICK: f64 = 13.0;
pub(super) const TAG: f64 = 11.0;
pub(super) const LEGEND: f64 = 14.0;

/// Colour of the reference line.
pub(super) const REFERENCE: RGBColor = RGBColor(80, 80, 80);
/// Colour of the grid lines.
pub(super) const GRID: RGBColor = RGBColor(228, 228, 228);
/// Colour of minor grid lines (between the powers of ten of a log axis).
pub(super) const MINOR_GRID: RGBColor = RGBColor(242, 242, 242);
/// Colour of the frame and tick marks.
pub(super) const AXIS_LINE: RGBColor = RGBColor(90, 90, 90);

/// Runs `draw` on a fresh [`WIDTH`] x [`HEIGHT`] canvas and writes it to `path`.
pub(super) fn render_with(
    path: &Path,
    draw: impl FnOnce(&Area<'_>, &Typesetter) -> Result<(), DrawError>,
) -> Result<(), FigureError> {
    let typo = Typesetter::new()?;
    let mut canvas = Canvas::new(WIDTH, HEIGHT)?;
    canvas.draw(path, |area| draw(area, &typo))?;
    canvas.save(path)
}

/// A [`FigureError::InvalidParameter`] when `count` series are more than the palette can tell
/// apart.
pub(super) fn check_series_count(count: usize) -> Result<(), FigureError> {
    let colours = super::comparison::PALETTE.len();
    if count > colours {
        return Err(FigureError::InvalidParameter {
            name: "series",
            reason: format!("{count} series given, at most {colours} can be told apart"),
        });
    }
    Ok(())
}

/// How many distinct markers [`marker`] draws; `k` cycles through them.
pub(super) const MARKERS: usize = 6;

/// Marker `k` centred on `(x, y)`: a circle, triangle, square, diamond,
/// downward triangle or cross, for `k` modulo [`MARKERS`].
pub(super) fn marker(
    area: &Area<'_>,
    k: usize,
    (x, y): (i32, i32),
    color: RGBColor,
) -> Result<(), DrawError> {
    let style = color.filled();
    match k % MARKERS {
        0 => area.draw(&Circle::new((x, y), 5, style))?,
        1 => area.draw(&TriangleMarker::new((x, y), 6, style))?,
        2 => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style))?,
        3 => area.draw(&Polygon::new(
            vec![(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)],
            style,
        ))?,
        4 => area.draw(&Polygon::new(
            vec![(x - 6, y - 4), (x + 6, y - 4), (x, y + 6)],
            style,
        ))?,
        _ => area.draw(&Cross::new((x, y), 4, color.stroke_width(2)))?,
    }
    Ok(())
}

/// A horizontal dashed line from `x0` to `x1` at `y`.
pub(super) fn dashes(
    area: &Area<'_>,
    (x0, x1): (i32, i32),
    y: i32,
    color: RGBColor,
) -> Result<(), DrawError> {
    let (dash, gap) = (9, 5);
    let mut x = x0;
    while x < x1 {
        let end = (x + dash).min(x1);
        area.draw(&PathElement::new(
            vec![(x, y), (end, y)],
            color.stroke_width(2),
        ))?;
        x = end + gap;
    }
    Ok(())
}

/// Evenly spaced "nice" values (1, 2 or 5 times a power of ten) covering
/// `[lo, hi]` with about `target` intervals, and the decimals they need.
pub(super) fn nice_ticks(lo: f64, hi: f64, target: f64) -> (Vec<f64>, usize) {
    nice_ticks_from(lo, hi, target, 0.0)
}

/// [`nice_ticks`], with steps of at least `min_step`.
pub(super) fn nice_ticks_from(lo: f64, hi: f64, target: f64, min_step: f64) -> (Vec<f64>, usize) {
    let (step, decimals) = nice_step(((hi - lo) / target).max(min_step));
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (ticks, decimals)
}

/// The smallest "nice" step (1, 2 or 5 times a power of ten) of at least
/// `raw`, and the decimals its multiples need.
pub(super) fn nice_step(raw: f64) -> (f64, usize) {
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    (step, decimals)
}

/// Tick labels for `ticks` with `decimals` decimals. Axes of whole numbers
/// reaching 10 000 group digits by thousands with thin spaces ("5 000",
/// "120 000"), every tick alike.
pub(super) fn tick_labels(ticks: &[f64], decimals: usize) -> Vec<String> {
    let group = decimals == 0 && ticks.iter().any(|t| t.abs() >= 10_000.0);
    ticks
        .iter()
        .map(|&t| {
            let text = format!("{t:.decimals$}");
            if group { grouped(&text) } else { text }
        })
        .collect()
}

/// `text` (an optional minus sign, then digits) with a thin space before
/// each group of three digits from the right.
fn grouped(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", text),
    };
    let mut out = String::from(sign);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// Linear map of data to pixels inside the plot frame.
pub(super) struct Frame {
    pub(super) x: (f64, f64),
    pub(super) y: (f64, f64),
    /// Top edge of the frame in pixels.
    pub(super) top: i32,
}

impl Frame {
    pub(super) fn px(&self, x: f64) -> i32 {
        let t = (x - self.x.0) / (self.x.1 - self.x.0);
        LEFT + (t * f64::from(RIGHT - LEFT)).round() as i32
    }

    pub(super) fn py(&self, y: f64) -> i32 {
        let t = (y - self.y.0) / (self.y.1 - self.y.0);
        BOTTOM - (t * f64::from(BOTTOM - self.top)).round() as i32
    }
}

/// A vertical grid line at `px` from the frame's `top` to [`BOTTOM`] and a
/// tick mark below the frame, both shorter and fainter unless `major`;
/// returns `px`.
pub(super) fn x_tick(area: &Area<'_>, top: i32, px: i32, major: bool) -> Result<i32, DrawError> {
    let (grid, length) = if major { (GRID, 5) } else { (MINOR_GRID, 3) };
    area.draw(&PathElement::new(vec![(px, top), (px, BOTTOM)], grid))?;
    area.draw(&PathElement::new(
        vec![(px, BOTTOM), (px, BOTTOM + length)],
        AXIS_LINE,
    ))?;
    Ok(px)
}

/// The linear y axis of `frame`: grid lines and labelled ticks, and `label`
/// reading upwards left of them.
pub(super) fn y_axis(
    area: &Area<'_>,
    typo: &Typesetter,
    frame: &Frame,
    label: &str,
) -> Result<(), DrawError> {
    let (y_ticks, y_decimals) = nice_ticks(frame.y.0, frame.y.1, 6.0);
    for (&y, text) in y_ticks.iter().zip(tick_labels(&y_ticks, y_decimals)) {
        let py = frame.py(y);
        area.draw(&PathElement::new(vec![(LEFT, py), (RIGHT, py)], GRID))?;
        area.draw(&PathElement::new(
            vec![(LEFT - 5, py), (LEFT, py)],
            AXIS_LINE,
        ))?;
        typo.label(area, &text, (LEFT - 9, py + 5), TICK, &TEXT, Align::Right)?;
    }
    typo.label_up(area, label, (26, (frame.top + BOTTOM) / 2), AXIS, &TEXT)
}

/// `title` centred above the chart, shrunk to fit the canvas when it is
/// long, and `x_label` centred below the x tick labels.
pub(super) fn titles(
    area: &Area<'_>,
    typo: &Typesetter,
    title: &str,
    x_label: &str,
) -> Result<(), DrawError> {
    let center = (LEFT + RIGHT) / 2;
    title_at(area, typo, title, center, WIDTH as i32)?;
    typo.label(
        area,
        x_label,
        (center, BOTTOM + 48),
        AXIS,
        &TEXT,
        Align::Center,
    )
}

/// `title` centred on `center` near the top of a canvas `width` pixels
/// wide, shrunk to fit between its edges (12 px margins) when it is long.
pub(super) fn title_at(
    area: &Area<'_>,
    typo: &Typesetter,
    title: &str,
    center: i32,
    width: i32,
) -> Result<(), DrawError> {
    let room = 2 * center.min(width - center) - 24;
    let natural = i64::from(typo.width(title, TITLE));
    let size = if natural > i64::from(room) {
        (TITLE * f64::from(room) / natural as f64).max(TITLE_MIN)
    } else {
        TITLE
    };
    typo.label(area, title, (center, 30), size, &TEXT, Align::Center)
}

/// One line of a chart: its legend name, colour and marker, and its points
/// in pixels, in drawing order.
pub(super) struct Line<'a> {
    pub(super) name: &'a str,
    pub(super) color: RGBColor,
    /// Marker index, see [`marker`].
    pub(super) marker: usize,
    pub(super) path: Vec<(i32, i32)>,
}

/// Every line, then every marker on top of all of them.
pub(super) fn draw_lines(area: &Area<'_>, lines: &[Line<'_>]) -> Result<(), DrawError> {
    for line in lines {
        area.draw(&PathElement::new(
            line.path.clone(),
            line.color.stroke_width(2),
        ))?;
    }
    for line in lines {
        for &p in &line.path {
            marker(area, line.marker, p, line.color)?;
        }
    }
    Ok(())
}

/// The legend box, in the frame corner that covers the fewest data points
/// (and pieces of the reference line, a dashed line at pixel row `y` named
/// `label`). Names wider than about half the frame are cut short with an
/// ellipsis, so that the box leaves the data in view.
pub(super) fn legend(
    area: &Area<'_>,
    typo: &Typesetter,
    frame: &Frame,
    lines: &[Line<'_>],
    reference: Option<(&str, i32)>,
) -> Result<(), DrawError> {
    let row = 22;
    let inset = 12;
    // Room for names: half the frame, less the swatch and padding.
    let room = (RIGHT - LEFT) / 2 - (12 + 28 + 8 + 12);
    let names: Vec<String> = lines
        .iter()
        .map(|line| line.name)
        .chain(reference.map(|(label, _)| label))
        .map(|name| fit(typo, name, room))
        .collect();
    let text_w = names
        .iter()
        .map(|name| typo.width(name, LEGEND) as i32)
        .max()
        .unwrap_or(0);
    let rows = names.len();
    let (w, h) = (12 + 28 + 8 + text_w + 12, 8 + row * rows as i32);
    let top = frame.top;
    let corners = [
        (RIGHT - inset - w, top + inset),
        (LEFT + inset, BOTTOM - inset - h),
        (RIGHT - inset - w, BOTTOM - inset - h),
        (LEFT + inset, top + inset),
    ];
    // Points and segment midpoints inside each candidate box.
    let mut samples: Vec<(i32, i32)> = lines
        .iter()
        .flat_map(|Line { path, .. }| {
            let mids = path
                .windows(2)
                .map(|s| ((s[0].0 + s[1].0) / 2, (s[0].1 + s[1].1) / 2));
            path.iter().copied().chain(mids).collect::<Vec<_>>()
        })
        .collect();
    if let Some((_, py)) = reference {
        samples.extend((LEFT..=RIGHT).step_by(16).map(|px| (px, py)));
    }
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
    let row_y = |i: usize| y + 4 + row * i as i32 + row / 2;
    for (i, (line, name)) in lines.iter().zip(&names).enumerate() {
        let cy = row_y(i);
        let swatch = vec![(x + 12, cy), (x + 40, cy)];
        area.draw(&PathElement::new(swatch, line.color.stroke_width(2)))?;
        marker(area, line.marker, (x + 26, cy), line.color)?;
        typo.label(area, name, (x + 48, cy + 5), LEGEND, &TEXT, Align::Left)?;
    }
    if let (Some(_), Some(name)) = (reference, names.last()) {
        let cy = row_y(lines.len());
        dashes(area, (x + 12, x + 40), cy, REFERENCE)?;
        typo.label(area, name, (x + 48, cy + 5), LEGEND, &TEXT, Align::Left)?;
    }
    Ok(())
}

/// `name`, cut short with an ellipsis when it is wider than `room` pixels
/// at the legend size.
fn fit(typo: &Typesetter, name: &str, room: i32) -> String {
    fit_at(typo, name, room, LEGEND)
}

/// `name`, cut short with an ellipsis when it is wider than `room` pixels
/// at `size`.
pub(super) fn fit_at(typo: &Typesetter, name: &str, room: i32, size: f64) -> String {
    if i64::from(typo.width(name, size)) <= i64::from(room) {
        return name.to_string();
    }
    // No glyph is narrower than a pixel, so `room` characters are enough.
    let mut cut: String = name.chars().take(room.max(0) as usize).collect();
    while cut.pop().is_some() {
        let candidate = format!("{}\u{2026}", cut.trim_end());
        if i64::from(typo.width(&candidate, size)) <= i64::from(room) {
            return candidate;
        }
    }
    "\u{2026}".into()
}

/// What a [`Key`] entry shows left of its name.
#[derive(Debug, Clone, Copy)]
pub(super) enum Swatch {
    /// A filled disc, for points.
    Dot(RGBColor),
    /// A filled square, for bars.
    Block(RGBColor),
    /// A short dashed line, for a reference line.
    Dashes(RGBColor),
}

/// Height of a row of a [`Key`].
const KEY_ROW: i32 = 22;
/// Width of a swatch, and the gap between it and its name.
const KEY_SWATCH: i32 = 24;
const KEY_PAD: i32 = 6;
/// Horizontal gap between entries of a row.
const KEY_GAP: i32 = 26;

/// A key (legend) drawn outside the plot frames, between the title and the
/// charts: its entries side by side in centred rows, as many rows as they
/// need, so that it never hides data.
pub(super) struct Key {
    entries: Vec<(Swatch, String)>,
    /// The entries of each row, and the row's width in pixels.
    rows: Vec<(std::ops::Range<usize>, i32)>,
}

impl Key {
    /// Lays out `entries` in rows at most `room` pixels wide (names too wide
    /// for a row of their own are cut short with an ellipsis).
    pub(super) fn new<'n>(
        typo: &Typesetter,
        entries: impl IntoIterator<Item = (Swatch, &'n str)>,
        room: i32,
    ) -> Self {
        let entries: Vec<(Swatch, String)> = entries
            .into_iter()
            .map(|(swatch, name)| (swatch, fit(typo, name, room - KEY_SWATCH - KEY_PAD)))
            .collect();
        let mut rows = Vec::new();
        let (mut start, mut width) = (0, 0);
        for (i, (_, name)) in entries.iter().enumerate() {
            let w = KEY_SWATCH + KEY_PAD + typo.width(name, LEGEND) as i32;
            if i > start && width + KEY_GAP + w > room {
                rows.push((start..i, width));
                (start, width) = (i, w);
            } else {
                width += if i > start { KEY_GAP + w } else { w };
            }
        }
        if start < entries.len() {
            rows.push((start..entries.len(), width));
        }
        Key { entries, rows }
    }

    /// Height of the key in pixels.
    pub(super) fn height(&self) -> i32 {
        KEY_ROW * self.rows.len() as i32
    }

    /// Draws the key with its rows centred on `center`, from `top` down.
    pub(super) fn draw(
        &self,
        area: &Area<'_>,
        typo: &Typesetter,
        center: i32,
        top: i32,
    ) -> Result<(), DrawError> {
        for (r, (range, width)) in self.rows.iter().enumerate() {
            let cy = top + KEY_ROW * r as i32 + KEY_ROW / 2;
            let mut x = center - width / 2;
            for (swatch, name) in &self.entries[range.clone()] {
                let mid = x + KEY_SWATCH / 2;
                match *swatch {
                    Swatch::Dot(color) => area.draw(&Circle::new((mid, cy), 5, color.filled()))?,
                    Swatch::Block(color) => area.draw(&Rectangle::new(
                        [(mid - 7, cy - 7), (mid + 7, cy + 7)],
                        color.filled(),
                    ))?,
                    Swatch::Dashes(color) => dashes(area, (x, x + KEY_SWATCH), cy, color)?,
                }
                let text_x = x + KEY_SWATCH + KEY_PAD;
                typo.label(area, name, (text_x, cy + 5), LEGEND, &TEXT, Align::Left)?;
                x = text_x + typo.width(name, LEGEND) as i32 + KEY_GAP;
            }
        }
        Ok(())
    }
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
    }

    #[test]
    fn whole_number_ticks() {
        // Counts never get fractional ticks, however few there are.
        let (ticks, decimals) = nice_ticks_from(0.0, 3.12, 8.0, 1.0);
        assert_eq!(ticks, [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(decimals, 0);
        let (ticks, _) = nice_ticks_from(0.0, 1.0, 8.0, 1.0);
        assert_eq!(ticks, [0.0, 1.0]);
        assert_eq!(tick_labels(&[0.0, 0.4], 1), ["0.0", "0.4"]);
        assert_eq!(tick_labels(&[0.0, 5000.0], 0), ["0", "5000"]);
        let thin = |s: &str| s.replace(' ', "\u{2009}");
        assert_eq!(
            tick_labels(&[5000.0, 10_000.0, 1_500_000.0], 0),
            [thin("5 000"), thin("10 000"), thin("1 500 000")]
        );
        assert_eq!(
            tick_labels(&[-20_000.0, 0.0], 0),
            [thin("-20 000"), thin("0")]
        );
    }
}
