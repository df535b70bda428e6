//! Fig. 4: a labelled matrix of values as a heatmap with every value written
//! in its cell, such as a transfer matrix (rows: the victim an attack was
//! trained on, columns: the victim it is run against).

use std::path::Path;

use super::confusion::blues;
use super::{
    Align, Area, Canvas, DrawError, FigureError, MAX_PIXELS, MUTED, Rgb, TEXT, Typesetter,
};
use plotters::prelude::RGBColor;

/// Most rows, and most columns, a heatmap may have.
const MAX_SIDE: usize = 64;
/// Smallest side of a cell, in pixels; cells widen for the widest column
/// label or value.
const MIN_CELL: u32 = 64;
/// Room on each side of the widest column label or value in a cell.
const CELL_PAD: u32 = 6;
/// Values above this are written in white (their cells are dark).
const DARK: f64 = 0.5;
/// What a cell without a value (NaN) shows.
const MISSING_TEXT: &str = "-";

const TITLE: f64 = 18.0;
const SUBTITLE: f64 = 12.0;
const TICK: f64 = 13.0;
const AXIS: f64 = 14.0;
const VALUE: f64 = 13.0;

const MARGIN: u32 = 14;
/// Top of the band holding the heatmap, below title and subtitle.
const TOP: u32 = 66;
/// Space below the heatmap: column labels and axis title.
const BOTTOM: u32 = 58;
/// Gap between the row labels and the heatmap.
const LABEL_GAP: u32 = 8;
/// Colour bar: gap before it and its width.
const BAR_GAP: u32 = 18;
const BAR_W: u32 = 14;

const BACKGROUND: Rgb = [255, 255, 255];
const BORDER: Rgb = [120, 120, 120];
/// Fill of a cell without a value (NaN).
pub(super) const MISSING: Rgb = [200, 200, 200];

/// A labelled matrix of values to draw as a heatmap with [`value_heatmap`]
/// (row-major `values`, `row_labels.len()` rows x `col_labels.len()`
/// columns).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueHeatmap<'a> {
    /// Drawn above the heatmap.
    pub title: &'a str,
    /// Drawn under the title, in grey (say the data set and the metric).
    pub subtitle: &'a str,
    /// Title of the rows, written upwards at the left (say "source
    /// (generator trained on)").
    pub row_axis: &'a str,
    /// Title of the columns, written under the heatmap (say "target (victim
    /// clustering)").
    pub col_axis: &'a str,
    /// One label per row, written left of the heatmap.
    pub row_labels: &'a [String],
    /// One label per column, written under the heatmap.
    pub col_labels: &'a [String],
    /// The values, row after row. Cells are coloured by the value clamped to
    /// `[0, 1]`; any finite value is written in its cell with two decimals;
    /// NaN is a missing value, drawn as "-" on a grey cell.
    pub values: &'a [f64],
}

/// Writes a labelled matrix of values as a PNG heatmap (Fig. 4 of the paper:
/// how well attacks transfer from a source victim to a target victim).
///
/// Cells are at least 64 pixels square, wider when a column label or a value
/// needs it, coloured with the "Blues" map of [`confusion_matrix`] by the
/// value in `[0, 1]`, with the value written in (white on dark cells). Row
/// labels are at the left, column labels under the heatmap, each axis with
/// its title, and a colour bar from 0 to 1 on the right.
///
/// ```no_run
/// use std::path::Path;
/// use advclust_plot::figures::{ValueHeatmap, value_heatmap};
///
/// let victims = ["cc", "scan", "mice"].map(String::from);
/// let drop = [0.62, 0.31, 0.18, 0.25, 0.57, f64::NAN, 0.12, 0.20, 0.49];
/// let map = ValueHeatmap {
///     title: "Transfer of the GAN attack",
///     subtitle: "CIFAR-10, NMI drop",
///     row_axis: "source (generator trained on)",
///     col_axis: "target (victim clustering)",
///     row_labels: &victims,
///     col_labels: &victims,
///     values: &drop,
/// };
/// value_heatmap(Path::new("transfer.png"), &map)?;
/// # Ok::<(), advclust_plot::figures::FigureError>(())
/// ```
///
/// # Errors
///
/// [`FigureError::EmptyInput`] for no rows (`what: "row_labels"`) or no
/// columns (`what: "col_labels"`); [`FigureError::LengthMismatch`] when
/// `values` does not have one entry per cell (`what: "values"`);
/// [`FigureError::InvalidParameter`] for more than 64 rows or columns (named
/// `row_labels` or `col_labels`); [`FigureError::NonFinite`] for an infinite
/// value (`what: "values"`, `index` into `values`);
/// [`FigureError::TooLarge`] when the labels or values are so long that the
/// figure would exceed [`MAX_PIXELS`]; [`FigureError::Draw`] or
/// [`FigureError::Write`] when rendering or writing `path` fails.
///
/// [`confusion_matrix`]: super::confusion_matrix
pub fn value_heatmap(path: &Path, map: &ValueHeatmap<'_>) -> Result<(), FigureError> {
    validate(map)?;
    let typo = Typesetter::new()?;
    let layout = Layout::new(&typo, map)?;
    let mut canvas = Canvas::new(u64::from(layout.width), u64::from(layout.height))?;
    layout.fill(&mut canvas, map.values);
    canvas.draw(path, |area| layout.text(&typo, area, map))?;
    canvas.save(path)
}

/// Checks the shape of `map` and that no value is infinite.
fn validate(map: &ValueHeatmap<'_>) -> Result<(), FigureError> {
    let (rows, cols) = (map.row_labels.len(), map.col_labels.len());
    if rows == 0 {
        return Err(FigureError::EmptyInput { what: "row_labels" });
    }
    if cols == 0 {
        return Err(FigureError::EmptyInput { what: "col_labels" });
    }
    let expected = rows
        .checked_mul(cols)
        .ok_or_else(|| FigureError::InvalidParameter {
            name: "values",
            reason: format!("{rows} rows x {cols} columns overflow"),
        })?;
    if map.values.len() != expected {
        return Err(FigureError::LengthMismatch {
            what: "values",
            expected,
            actual: map.values.len(),
        });
    }
    for (name, n) in [("row_labels", rows), ("col_labels", cols)] {
        if n > MAX_SIDE {
            return Err(FigureError::InvalidParameter {
                name,
                reason: format!("{n} labels, at most {MAX_SIDE} can be drawn"),
            });
        }
    }
    if let Some(index) = map.values.iter().position(|v| v.is_infinite()) {
        return Err(FigureError::NonFinite {
            what: "values",
            index,
        });
    }
    Ok(())
}

/// The text of a cell: the value with two decimals, "-" for NaN.
fn value_text(value: f64) -> String {
    if value.is_nan() {
        return MISSING_TEXT.into();
    }
    let text = format!("{value:.2}");
    // A tiny negative value rounds to "-0.00".
    if text == "-0.00" { "0.00".into() } else { text }
}

/// Layout of a heatmap, in pixels.
pub(super) struct Layout {
    rows: usize,
    cols: usize,
    /// The text of each cell, row-major.
    texts: Vec<String>,
    /// Cell width and height (the filled part is one pixel less: a gutter).
    pub(super) cell_w: u32,
    pub(super) cell_h: u32,
    /// Top-left corner of the heatmap.
    pub(super) hx: u32,
    pub(super) hy: u32,
    /// The canvas.
    pub(super) width: u32,
    pub(super) height: u32,
}

impl Layout {
    /// Lays out a validated `map`; [`FigureError::TooLarge`] if the canvas
    /// would exceed [`MAX_PIXELS`].
    pub(super) fn new(typo: &Typesetter, map: &ValueHeatmap<'_>) -> Result<Self, FigureError> {
        let w = |text: &str, size: f64| u64::from(typo.width(text, size));
        let widest =
            |labels: &[String], size: f64| labels.iter().map(|l| w(l, size)).max().unwrap_or(0);
        let (rows, cols) = (map.row_labels.len(), map.col_labels.len());
        let texts: Vec<String> = map.values.iter().map(|&v| value_text(v)).collect();
        let pad = u64::from(2 * CELL_PAD);
        let cell_w = u64::from(MIN_CELL)
            .max(widest(map.col_labels, TICK) + pad)
            .max(widest(&texts, VALUE) + pad);
        let cell_h = u64::from(MIN_CELL);
        let map_w = cols as u64 * cell_w;
        let map_h = rows as u64 * cell_h;

        // The band of the heatmap is tall enough for the row-axis title
        // written upwards beside it, the heatmap centred in it.
        let row_axis_w = w(map.row_axis, AXIS);
        let band = map_h.max(row_axis_w + 8);
        let hy = u64::from(TOP) + (band - map_h) / 2;
        let height = u64::from(TOP) + band + u64::from(BOTTOM);

        // Left: row-axis title and row labels, more if the column-axis title
        // centred under the heatmap would stick out; right: the colour bar.
        let col_axis_w = w(map.col_axis, AXIS);
        let left = u64::from(MARGIN + AXIS as u32 + 10 + LABEL_GAP) + widest(map.row_labels, TICK);
        let hx = left.max((u64::from(MARGIN) + col_axis_w / 2).saturating_sub(map_w / 2));
        let right = u64::from(BAR_GAP + BAR_W + 5 + MARGIN) + w("0.5", TICK);
        let header_w = w(map.title, TITLE).max(w(map.subtitle, SUBTITLE)) + 2 * u64::from(MARGIN);
        let width = (hx + map_w + right)
            .max(header_w)
            .max(hx + map_w / 2 + col_axis_w / 2 + u64::from(MARGIN));

        if width.saturating_mul(height) > MAX_PIXELS {
            return Err(FigureError::TooLarge { width, height });
        }
        // Each of these is below MAX_PIXELS, so it fits in a u32.
        let fit = |v: u64| u32::try_from(v).map_err(|_| FigureError::TooLarge { width, height });
        Ok(Layout {
            rows,
            cols,
            texts,
            cell_w: fit(cell_w)?,
            cell_h: fit(cell_h)?,
            hx: fit(hx)?,
            hy: fit(hy)?,
            width: fit(width)?,
            height: fit(height)?,
        })
    }

    /// Width and height of the heatmap.
    fn map_size(&self) -> (u32, u32) {
        (
            self.cols as u32 * self.cell_w,
            self.rows as u32 * self.cell_h,
        )
    }

    /// Cells, frame and colour bar.
    fn fill(&self, canvas: &mut Canvas, values: &[f64]) {
        let (hx, hy) = (i64::from(self.hx), i64::from(self.hy));
        let (cw, ch) = (i64::from(self.cell_w), i64::from(self.cell_h));
        let (map_w, map_h) = self.map_size();
        let (map_w, map_h) = (i64::from(map_w), i64::from(map_h));
        canvas.fill(hx, hy, map_w, map_h, BACKGROUND);
        for (i, &value) in values.iter().enumerate() {
            let (r, c) = ((i / self.cols) as i64, (i % self.cols) as i64);
            let color = if value.is_nan() {
                MISSING
            } else {
                blues(value)
            };
            // A 1 px gutter between cells.
            canvas.fill(hx + c * cw, hy + r * ch, cw - 1, ch - 1, color);
        }
        canvas.frame(hx, hy, map_w, map_h, 1, BORDER);
        let bx = hx + map_w + i64::from(BAR_GAP);
        for y in 0..map_h {
            let t = 1.0 - y as f64 / (map_h - 1).max(1) as f64;
            canvas.fill(bx, hy + y, i64::from(BAR_W), 1, blues(t));
        }
        canvas.frame(bx, hy, i64::from(BAR_W), map_h, 1, BORDER);
    }

    /// Titles, labels, values and colour bar ticks.
    fn text(
        &self,
        typo: &Typesetter,
        area: &Area<'_>,
        map: &ValueHeatmap<'_>,
    ) -> Result<(), DrawError> {
        let at = |x: u32, y: u32| (x as i32, y as i32);
        let (hx, hy, cw, ch) = (self.hx, self.hy, self.cell_w, self.cell_h);
        let (map_w, map_h) = self.map_size();
        let center = self.width / 2;
        typo.label(area, map.title, at(center, 26), TITLE, &TEXT, Align::Center)?;
        typo.label(
            area,
            map.subtitle,
            at(center, 46),
            SUBTITLE,
            &MUTED,
            Align::Center,
        )?;

        let tick_offset = (TICK * 0.36).round() as u32;
        for (r, label) in map.row_labels.iter().enumerate() {
            let y = hy + r as u32 * ch + ch / 2 + tick_offset;
            let pos = at(hx - LABEL_GAP, y);
            typo.label(area, label, pos, TICK, &TEXT, Align::Right)?;
        }
        for (c, label) in map.col_labels.iter().enumerate() {
            let pos = at(hx + c as u32 * cw + cw / 2, hy + map_h + 20);
            typo.label(area, label, pos, TICK, &TEXT, Align::Center)?;
        }
        let pos = at(hx + map_w / 2, hy + map_h + 46);
        typo.label(area, map.col_axis, pos, AXIS, &TEXT, Align::Center)?;
        let pos = at(MARGIN + (AXIS * 0.8) as u32, hy + map_h / 2);
        typo.label_up(area, map.row_axis, pos, AXIS, &TEXT)?;

        let value_offset = (VALUE * 0.36).round() as u32;
        for (i, (text, &value)) in self.texts.iter().zip(map.values).enumerate() {
            let (r, c) = ((i / self.cols) as u32, (i % self.cols) as u32);
            let color = if value > DARK {
                RGBColor(255, 255, 255)
            } else {
                TEXT
            };
            let pos = at(hx + c * cw + cw / 2, hy + r * ch + ch / 2 + value_offset);
            typo.label(area, text, pos, VALUE, &color, Align::Center)?;
        }

        let lx = hx + map_w + BAR_GAP + BAR_W + 5;
        for (t, text) in [(1.0, "1"), (0.5, "0.5"), (0.0, "0")] {
            let y = hy + ((1.0 - t) * f64::from(map_h - 1)) as u32 + tick_offset;
            typo.label(area, text, at(lx, y), TICK, &TEXT, Align::Left)?;
        }
        Ok(())
    }
}
