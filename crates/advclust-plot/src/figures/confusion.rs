//! Fig. 2: confusion matrices (true class x cluster) as heatmaps.

use std::path::Path;

use super::{Align, Area, Canvas, DrawError, FigureError, MUTED, Rgb, TEXT, Typesetter};
use advclust_metrics::ConfusionMatrix;
use plotters::prelude::RGBColor;

/// Side of the heatmap the cell size aims at, in pixels.
const TARGET_SIDE: u32 = 440;
/// Largest cell, in pixels.
const MAX_CELL: u32 = 44;
/// Smallest side of the heatmap, in pixels (room for the colour bar labels).
const MIN_SIDE: u32 = 120;
/// Title of the x axis.
const X_AXIS: &str = "cluster (ordered by majority class)";
/// Smallest cell that gets its count written in.
const MIN_COUNT_CELL: u32 = 18;

const TITLE: f64 = 18.0;
const SUBTITLE: f64 = 12.0;
const TICK: f64 = 12.0;
const AXIS: f64 = 14.0;
const COUNT: f64 = 12.0;

const MARGIN: u32 = 14;
/// Heatmap top, below title and subtitle.
const TOP: u32 = 62;
/// Space below the heatmap: tick labels and axis title.
const BOTTOM: u32 = 54;
/// Colour bar: gap before it, its width, and the room for its labels.
const BAR_GAP: u32 = 18;
const BAR_W: u32 = 14;
const BAR_LABELS: u32 = 56;

const BACKGROUND: Rgb = [255, 255, 255];
const BORDER: Rgb = [120, 120, 120];

/// Matplotlib's "Blues" at 0, 1/4, 1/2, 3/4 and 1.
const BLUES: [Rgb; 5] = [
    [247, 251, 255],
    [198, 219, 239],
    [107, 174, 214],
    [33, 113, 181],
    [8, 48, 107],
];

/// Writes one confusion matrix as a PNG heatmap.
///
/// Rows are the true classes, columns the clusters in the matrix's display
/// order (by majority class, so a good clustering is block diagonal). Cells
/// are coloured by the fraction of their row (class) that falls in the
/// cluster; counts are written in when the cells are large enough. The
/// subtitle gives the purity and sample count.
///
/// # Errors
///
/// [`FigureError::TooLarge`] for a matrix too large to draw,
/// [`FigureError::Draw`] or [`FigureError::Write`] when rendering or writing
/// `path` fails.
pub fn confusion_matrix(
    path: &Path,
    m: &ConfusionMatrix<usize, usize>,
    title: &str,
) -> Result<(), FigureError> {
    let typo = Typesetter::new()?;
    let panel = Panel::new(&typo, m, title, true);
    let mut canvas = Canvas::new(u64::from(panel.width), u64::from(panel.height))?;
    panel.fill(&mut canvas, 0);
    canvas.draw(path, |area| panel.text(area, 0))?;
    canvas.save(path)
}

/// Writes the clean and adversarial confusion matrices side by side as one
/// PNG (Fig. 2 of the paper), each drawn as in [`confusion_matrix`] and
/// sharing one colour bar on the right.
///
/// The matrices may differ in their clusters (an attack often merges them).
///
/// # Errors
///
/// As [`confusion_matrix`].
pub fn confusion_pair(
    path: &Path,
    clean: &ConfusionMatrix<usize, usize>,
    adversarial: &ConfusionMatrix<usize, usize>,
    title_clean: &str,
    title_adv: &str,
) -> Result<(), FigureError> {
    let typo = Typesetter::new()?;
    let left = Panel::new(&typo, clean, title_clean, false);
    let right = Panel::new(&typo, adversarial, title_adv, true);
    let width = u64::from(left.width) + u64::from(right.width);
    let height = left.height.max(right.height);
    let mut canvas = Canvas::new(width, u64::from(height))?;
    left.fill(&mut canvas, 0);
    right.fill(&mut canvas, left.width);
    canvas.draw(path, |area| {
        left.text(area, 0)?;
        right.text(area, left.width)
    })?;
    canvas.save(path)
}

/// Layout of one heatmap panel.
struct Panel<'a> {
    typo: &'a Typesetter,
    m: &'a ConfusionMatrix<usize, usize>,
    title: &'a str,
    subtitle: String,
    colorbar: bool,
    rows: usize,
    cols: usize,
    /// Samples of each class.
    row_totals: Vec<usize>,
    /// Cell width and height in pixels (cells need not be square).
    cell_w: u32,
    cell_h: u32,
    /// Heatmap origin inside the panel.
    hx: u32,
    /// Label every `row_step`-th row and `col_step`-th column.
    row_step: usize,
    col_step: usize,
    show_counts: bool,
    width: u32,
    height: u32,
}

/// Cell size along an axis of `n` cells: about [`TARGET_SIDE`] in all,
/// at most [`MAX_CELL`] each, and at least [`MIN_SIDE`] in all.
fn cell_size(n: usize) -> u32 {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    (TARGET_SIDE / n)
        .clamp(1, MAX_CELL)
        .max(MIN_SIDE.div_ceil(n))
}

impl<'a> Panel<'a> {
    fn new(
        typo: &'a Typesetter,
        m: &'a ConfusionMatrix<usize, usize>,
        title: &'a str,
        colorbar: bool,
    ) -> Self {
        let text_width = |text: &str, size: f64| typo.width(text, size);
        let (rows, cols) = (m.classes().len(), m.clusters().len());
        let (cell_w, cell_h) = (cell_size(cols), cell_size(rows));

        let widest = |labels: &[usize]| {
            labels
                .iter()
                .map(|l| text_width(&l.to_string(), TICK))
                .max()
                .unwrap_or(0)
        };
        let row_label_w = widest(m.classes());
        let col_label_w = widest(m.clusters());
        let row_step = (TICK as u32 + 2).div_ceil(cell_h).max(1) as usize;
        let col_step = (col_label_w + 6).div_ceil(cell_w).max(1) as usize;
        let max_count = m.counts().iter().max().copied().unwrap_or(0);
        let show_counts = cell_w.min(cell_h) >= MIN_COUNT_CELL
            && text_width(&max_count.to_string(), COUNT) + 4 <= cell_w;

        let subtitle = format!(
            "purity {:.3}, {} samples, {} cluster{}",
            m.purity(),
            m.n_samples(),
            cols,
            if cols == 1 { "" } else { "s" }
        );
        let map_w = (cols as u32).saturating_mul(cell_w);
        let map_h = (rows as u32).saturating_mul(cell_h);
        // Left: axis title and row labels, more if the x-axis title centred
        // under the heatmap would stick out; right: colour bar or margin.
        let axis_w = text_width(X_AXIS, AXIS);
        let hx = (MARGIN + AXIS as u32 + 10 + row_label_w + 8)
            .max((MARGIN + axis_w / 2).saturating_sub(map_w / 2));
        let right = if colorbar {
            BAR_GAP + BAR_W + BAR_LABELS
        } else {
            MARGIN + 10
        };
        let header_w = text_width(title, TITLE).max(text_width(&subtitle, SUBTITLE)) + 2 * MARGIN;
        let width = hx
            .saturating_add(map_w)
            .saturating_add(right)
            .max(header_w)
            .max(hx + map_w / 2 + axis_w / 2 + MARGIN);
        let height = TOP.saturating_add(map_h).saturating_add(BOTTOM);
        Panel {
            typo,
            m,
            title,
            subtitle,
            colorbar,
            rows,
            cols,
            row_totals: m
                .counts()
                .chunks(cols.max(1))
                .map(|row| row.iter().sum())
                .collect(),
            cell_w,
            cell_h,
            hx,
            row_step,
            col_step,
            show_counts,
            width,
            height,
        }
    }

    /// Fraction of row `r` in column `c`.
    fn share(&self, r: usize, c: usize) -> f64 {
        match self.row_totals[r] {
            0 => 0.0,
            total => self.m.counts()[r * self.cols + c] as f64 / total as f64,
        }
    }

    /// Cells, frame and colour bar, with the panel's left edge at `x0`.
    fn fill(&self, canvas: &mut Canvas, x0: u32) {
        let (hx, hy) = (i64::from(x0 + self.hx), i64::from(TOP));
        let (cw, ch) = (i64::from(self.cell_w), i64::from(self.cell_h));
        let (map_w, map_h) = (self.cols as i64 * cw, self.rows as i64 * ch);
        canvas.fill(hx, hy, map_w, map_h, BACKGROUND);
        // A 1 px gutter between cells when they are large enough to afford it.
        let gutter = |size: i64| if size >= 12 { size - 1 } else { size };
        for r in 0..self.rows {
            for c in 0..self.cols {
                let color = blues(self.share(r, c));
                let (x, y) = (hx + c as i64 * cw, hy + r as i64 * ch);
                canvas.fill(x, y, gutter(cw), gutter(ch), color);
            }
        }
        canvas.frame(hx, hy, map_w, map_h, 1, BORDER);
        if self.colorbar {
            let bx = hx + map_w + i64::from(BAR_GAP);
            for y in 0..map_h {
                let t = 1.0 - y as f64 / (map_h - 1).max(1) as f64;
                canvas.fill(bx, hy + y, i64::from(BAR_W), 1, blues(t));
            }
            canvas.frame(bx, hy, i64::from(BAR_W), map_h, 1, BORDER);
        }
    }

    /// Titles, labels and counts, with the panel's left edge at `x0`.
    fn text(&self, area: &Area<'_>, x0: u32) -> Result<(), DrawError> {
        let typo = self.typo;
        let at = |x: u32, y: u32| (x as i32, y as i32);
        let (hx, hy, cw, ch) = (x0 + self.hx, TOP, self.cell_w, self.cell_h);
        let (map_w, map_h) = (self.cols as u32 * cw, self.rows as u32 * ch);
        let center = x0 + self.width / 2;
        typo.label(
            area,
            self.title,
            at(center, 26),
            TITLE,
            &TEXT,
            Align::Center,
        )?;
        typo.label(
            area,
            &self.subtitle,
            at(center, 46),
            SUBTITLE,
            &MUTED,
            Align::Center,
        )?;

        // Row labels (classes) and column labels (clusters).
        let tick_offset = (TICK * 0.36).round() as u32;
        for (r, class) in self.m.classes().iter().enumerate().step_by(self.row_step) {
            let y = hy + r as u32 * ch + ch / 2 + tick_offset;
            typo.label(
                area,
                &class.to_string(),
                at(hx - 6, y),
                TICK,
                &TEXT,
                Align::Right,
            )?;
        }
        for (c, cluster) in self.m.clusters().iter().enumerate().step_by(self.col_step) {
            let x = hx + c as u32 * cw + cw / 2;
            let pos = at(x, hy + map_h + 16);
            typo.label(area, &cluster.to_string(), pos, TICK, &TEXT, Align::Center)?;
        }
        let pos = at(hx + map_w / 2, hy + map_h + 40);
        typo.label(area, X_AXIS, pos, AXIS, &TEXT, Align::Center)?;
        let pos = at(x0 + MARGIN + (AXIS * 0.8) as u32, hy + map_h / 2);
        typo.label_up(area, "true class", pos, AXIS, &TEXT)?;

        if self.show_counts {
            let offset = (COUNT * 0.36).round() as u32;
            for r in 0..self.rows {
                for c in 0..self.cols {
                    let count = self.m.counts()[r * self.cols + c];
                    let color = if self.share(r, c) > 0.5 {
                        RGBColor(255, 255, 255)
                    } else {
                        TEXT
                    };
                    let pos = at(
                        hx + c as u32 * cw + cw / 2,
                        hy + r as u32 * ch + ch / 2 + offset,
                    );
                    typo.label(area, &count.to_string(), pos, COUNT, &color, Align::Center)?;
                }
            }
        }

        if self.colorbar {
            let bx = hx + map_w + BAR_GAP;
            let lx = bx + BAR_W + 5;
            for (t, text) in [(1.0, "1"), (0.5, "0.5"), (0.0, "0")] {
                let y = hy + ((1.0 - t) * f64::from(map_h - 1)) as u32 + tick_offset;
                typo.label(area, text, at(lx, y), TICK, &TEXT, Align::Left)?;
            }
            let pos = at(lx + 26 + (AXIS * 0.8) as u32, hy + map_h / 2);
            typo.label_up(area, "share of class", pos, AXIS, &MUTED)?;
        }
        Ok(())
    }
}

/// The "Blues" colour map at `t` in `[0, 1]` (NaN and infinities are 0).
pub(super) fn blues(t: f64) -> Rgb {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (BLUES.len() - 1) as f64;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f64;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    std::array::from_fn(|k| {
        (f64::from(a[k]) + f * (f64::from(b[k]) - f64::from(a[k]))).round() as u8
    })
}
