//! Fig. 5b: clean and adversarial points projected on their first three
//! principal components, in three 2-D panels side by side (PC1-PC2,
//! PC1-PC3, PC2-PC3).
//!
//! Grid lines and the frames' furniture are drawn through plotters with the
//! fonts, colours, ticks and title of [`super::chart`]; the dots are blended
//! into the canvas pixel by pixel, small, soft-edged and semi-opaque, so that
//! dense regions read darker and both sets stay visible where they overlap.

use std::path::Path;

use plotters::prelude::*;

use super::chart::{AXIS, AXIS_LINE, GRID, Key, Swatch, TICK, nice_ticks, tick_labels, title_at};
use super::comparison::PALETTE;
use super::{Align, Area, Canvas, DrawError, FigureError, TEXT, Typesetter};

/// Points of each set drawn at most; beyond, an evenly strided subset.
pub(super) const MAX_POINTS: usize = 10_000;

const WIDTH: u64 = 1500;
const HEIGHT: u64 = 560;
/// Width of one panel: its y axis, its frame and the gap right of it.
const PANEL_W: i32 = WIDTH as i32 / 3;
/// Gap between a frame and the right edge of its panel.
const PANEL_RIGHT: i32 = 24;
/// Top of the key, below the title.
const KEY_TOP: i32 = 42;
/// Gap between the key and the frames.
const KEY_GAP: i32 = 14;
const BOTTOM: i32 = HEIGHT as i32 - 66;
/// Narrowest and widest room left of a frame, for its y axis.
const MIN_LEFT: i32 = 78;
const MAX_LEFT: i32 = 240;

/// Colours of the clean and the adversarial points.
pub(super) const CLEAN: RGBColor = PALETTE[0];
pub(super) const ADVERSARIAL: RGBColor = PALETTE[3];
/// Opacity of one dot at its centre, and its radius in pixels.
const ALPHA: f64 = 0.45;
const DOT_RADIUS: f64 = 1.9;

/// The components of each panel, x then y.
const PANELS: [(usize, usize); 3] = [(0, 1), (0, 2), (1, 2)];
const COMPONENTS: [&str; 3] = ["PC1", "PC2", "PC3"];

/// Writes clean and adversarial points projected on the same three
/// principal components as a PNG (Fig. 5b of the paper): three panels side
/// by side, PC1 against PC2, PC1 against PC3 and PC2 against PC3, with the
/// clean points in blue and the adversarial ones in red on top of them, a
/// key naming both, and `title` above (shrunk to fit when it is long).
///
/// Each point is `[pc1, pc2, pc3]`. Both sets share each component's axis
/// limits, from the smallest to the largest value of either set padded by
/// 5 % (a component where every value is the same is widened about it), so
/// PC1 has the same range in the two panels it appears in. Axes have "nice"
/// ticks and are labelled "PC1", "PC2" and "PC3". Dots are small and
/// semi-opaque, so dense regions read darker. Of a set of more than 10 000
/// points, 10 000 evenly strided ones (always the same) are drawn. The canvas
/// is 1500 x 560 pixels.
///
/// # Errors
///
/// [`FigureError::EmptyInput`] when `clean` or `adversarial` is empty
/// (`what` names it); [`FigureError::NonFinite`] when a coordinate is NaN or
/// infinite (`what` names the set, `index` is the point's index in it);
/// [`FigureError::InvalidParameter`] when a component's values span too wide
/// a range to draw (named `PC1`, `PC2` or `PC3`); [`FigureError::Draw`] or
/// [`FigureError::Write`] when rendering or writing `path` fails.
pub fn pca_scatter(
    path: &Path,
    title: &str,
    clean: &[[f64; 3]],
    adversarial: &[[f64; 3]],
) -> Result<(), FigureError> {
    let sets = [("clean", clean), ("adversarial", adversarial)];
    for (what, points) in sets {
        if points.is_empty() {
            return Err(FigureError::EmptyInput { what });
        }
        if let Some(index) = points.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(FigureError::NonFinite { what, index });
        }
    }
    let mut limits = [(0.0, 0.0); 3];
    for (c, limit) in limits.iter_mut().enumerate() {
        let values = || clean.iter().chain(adversarial).map(|p| p[c]);
        let lo = values().fold(f64::INFINITY, f64::min);
        let hi = values().fold(f64::NEG_INFINITY, f64::max);
        *limit = axis_limits(lo, hi).ok_or_else(|| FigureError::InvalidParameter {
            name: COMPONENTS[c],
            reason: format!("values from {lo} to {hi} span too wide a range to draw"),
        })?;
    }

    let typo = Typesetter::new()?;
    let key = Key::new(
        &typo,
        [
            (Swatch::Dot(CLEAN), "clean"),
            (Swatch::Dot(ADVERSARIAL), "adversarial"),
        ],
        WIDTH as i32 - 48,
    );
    let top = KEY_TOP + key.height() + KEY_GAP;
    let panels: Vec<Panel> = PANELS
        .iter()
        .enumerate()
        .map(|(k, &(cx, cy))| Panel::new(&typo, k as i32 * PANEL_W, top, [cx, cy], &limits))
        .collect();
    let stamp = dot_stamp();

    let mut canvas = Canvas::new(WIDTH, HEIGHT)?;
    canvas.draw(path, |area| {
        panels.iter().try_for_each(|panel| panel.grid(area))
    })?;
    for (points, color) in [(clean, CLEAN), (adversarial, ADVERSARIAL)] {
        let RGBColor(r, g, b) = color;
        for point in strided(points, MAX_POINTS) {
            for panel in &panels {
                let (x, y) = panel.position(point);
                for &(dx, dy, alpha) in &stamp {
                    canvas.blend(x + dx, y + dy, [r, g, b], alpha);
                }
            }
        }
    }
    canvas.draw(path, |area| {
        for panel in &panels {
            panel.axes(area, &typo)?;
        }
        let center = WIDTH as i32 / 2;
        title_at(area, &typo, title, center, WIDTH as i32)?;
        key.draw(area, &typo, center, KEY_TOP)
    })?;
    canvas.save(path)
}

/// `[lo, hi]` padded by 5 % on either side; a range of (next to) nothing is
/// first widened about its middle, by a tenth of its magnitude (by 1 about
/// zero). `None` when the limits or their span overflow.
fn axis_limits(lo: f64, hi: f64) -> Option<(f64, f64)> {
    let scale = lo.abs().max(hi.abs());
    let span = hi - lo;
    if !span.is_finite() {
        return None;
    }
    // Below this span, ticks would need more decimals than a label can hold.
    let (lo, hi) = if span < (1e-9 * scale).max(1e-100) {
        let half = if scale > 1e-100 { 0.1 * scale } else { 1.0 };
        let mid = 0.5 * lo + 0.5 * hi;
        (mid - half, mid + half)
    } else {
        (lo, hi)
    };
    let pad = 0.05 * (hi - lo);
    let (lo, hi) = (lo - pad, hi + pad);
    (lo.is_finite() && hi.is_finite() && (hi - lo).is_finite()).then_some((lo, hi))
}

/// All of `points` when there are at most `max` of them, else `max` of them
/// evenly strided from the first.
fn strided(points: &[[f64; 3]], max: usize) -> impl Iterator<Item = &[f64; 3]> {
    let n = points.len();
    let shown = n.min(max);
    (0..shown).map(move |i| {
        // Exact in u128 for any slice length.
        let at = (i as u128 * n as u128 / shown as u128) as usize;
        &points[at]
    })
}

/// The pixels of a dot around its centre pixel and their opacity: the share
/// of each pixel inside a disc of [`DOT_RADIUS`] (4 x 4 samples per pixel)
/// times [`ALPHA`].
fn dot_stamp() -> Vec<(i64, i64, f64)> {
    let reach = DOT_RADIUS.ceil() as i64;
    let mut stamp = Vec::new();
    for dy in -reach..=reach {
        for dx in -reach..=reach {
            let mut inside = 0u32;
            for sy in 0..4 {
                for sx in 0..4 {
                    let x = dx as f64 + (f64::from(sx) + 0.5) / 4.0 - 0.5;
                    let y = dy as f64 + (f64::from(sy) + 0.5) / 4.0 - 0.5;
                    if x * x + y * y <= DOT_RADIUS * DOT_RADIUS {
                        inside += 1;
                    }
                }
            }
            if inside > 0 {
                stamp.push((dx, dy, ALPHA * f64::from(inside) / 16.0));
            }
        }
    }
    stamp
}

/// One axis of a panel: its component, limits, ticks and their labels.
struct Axis {
    component: usize,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    labels: Vec<String>,
}

impl Axis {
    fn new(component: usize, (lo, hi): (f64, f64)) -> Self {
        let (ticks, decimals) = nice_ticks(lo, hi, 6.0);
        let labels = tick_labels(&ticks, decimals);
        Axis {
            component,
            lo,
            hi,
            ticks,
            labels,
        }
    }

    /// Where `value` falls from `a` (at `lo`) to `b` (at `hi`), in pixels.
    fn map(&self, value: f64, a: i32, b: i32) -> f64 {
        let t = (value - self.lo) / (self.hi - self.lo);
        f64::from(a) + t * f64::from(b - a)
    }
}

/// The layout of one panel.
struct Panel {
    /// Left edge of the panel.
    x0: i32,
    /// The frame.
    left: i32,
    right: i32,
    top: i32,
    x: Axis,
    y: Axis,
    /// Width of the widest y tick label.
    y_label_w: i32,
}

impl Panel {
    fn new(
        typo: &Typesetter,
        x0: i32,
        top: i32,
        [cx, cy]: [usize; 2],
        limits: &[(f64, f64); 3],
    ) -> Self {
        let (x, y) = (Axis::new(cx, limits[cx]), Axis::new(cy, limits[cy]));
        let y_label_w = y
            .labels
            .iter()
            .map(|l| typo.width(l, TICK) as i32)
            .max()
            .unwrap_or(0);
        Panel {
            x0,
            left: x0 + (y_label_w + 52).clamp(MIN_LEFT, MAX_LEFT),
            right: x0 + PANEL_W - PANEL_RIGHT,
            top,
            x,
            y,
            y_label_w,
        }
    }

    fn px(&self, value: f64) -> i32 {
        self.x.map(value, self.left, self.right).round() as i32
    }

    fn py(&self, value: f64) -> i32 {
        self.y.map(value, BOTTOM, self.top).round() as i32
    }

    /// The centre pixel of the dot of `point`.
    fn position(&self, point: &[f64; 3]) -> (i64, i64) {
        let x = self.x.map(point[self.x.component], self.left, self.right);
        let y = self.y.map(point[self.y.component], BOTTOM, self.top);
        (x.round() as i64, y.round() as i64)
    }

    /// The grid lines, under the dots.
    fn grid(&self, area: &Area<'_>) -> Result<(), DrawError> {
        for &t in &self.x.ticks {
            let px = self.px(t);
            area.draw(&PathElement::new(vec![(px, self.top), (px, BOTTOM)], GRID))?;
        }
        for &t in &self.y.ticks {
            let py = self.py(t);
            area.draw(&PathElement::new(
                vec![(self.left, py), (self.right, py)],
                GRID,
            ))?;
        }
        Ok(())
    }

    /// Frame, tick marks and labels, and the axis names, over the dots.
    fn axes(&self, area: &Area<'_>, typo: &Typesetter) -> Result<(), DrawError> {
        let (left, right, top) = (self.left, self.right, self.top);
        area.draw(&Rectangle::new([(left, top), (right, BOTTOM)], AXIS_LINE))?;
        // X tick labels, each where it does not run into the one before.
        let mut free_from = i32::MIN;
        for (&t, text) in self.x.ticks.iter().zip(&self.x.labels) {
            let px = self.px(t);
            area.draw(&PathElement::new(
                vec![(px, BOTTOM), (px, BOTTOM + 5)],
                AXIS_LINE,
            ))?;
            let half = typo.width(text, TICK) as i32 / 2;
            if px - half >= free_from {
                typo.label(area, text, (px, BOTTOM + 20), TICK, &TEXT, Align::Center)?;
                free_from = px + half + 8;
            }
        }
        for (&t, text) in self.y.ticks.iter().zip(&self.y.labels) {
            let py = self.py(t);
            area.draw(&PathElement::new(
                vec![(left - 5, py), (left, py)],
                AXIS_LINE,
            ))?;
            typo.label(area, text, (left - 9, py + 5), TICK, &TEXT, Align::Right)?;
        }
        let center = (left + right) / 2;
        let x_name = COMPONENTS[self.x.component];
        typo.label(
            area,
            x_name,
            (center, BOTTOM + 48),
            AXIS,
            &TEXT,
            Align::Center,
        )?;
        let baseline = (left - 9 - self.y_label_w - 14).max(self.x0 + 20);
        let y_name = COMPONENTS[self.y.component];
        typo.label_up(area, y_name, (baseline, (top + BOTTOM) / 2), AXIS, &TEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_padded_and_never_empty() {
        let (lo, hi) = axis_limits(-2.0, 8.0).unwrap();
        assert!((lo + 2.5).abs() < 1e-12 && (hi - 8.5).abs() < 1e-12);
        let (lo, hi) = axis_limits(0.0, 0.0).unwrap();
        assert!((lo + 1.1).abs() < 1e-12 && (hi - 1.1).abs() < 1e-12);
        let (lo, hi) = axis_limits(5.0, 5.0).unwrap();
        assert!(lo < 5.0 && hi > 5.0 && hi - lo > 0.5);
        let (lo, hi) = axis_limits(0.0, 5e-324).unwrap();
        assert!(lo < 0.0 && hi > 0.0);
        // Ticks stay few on every range that passes.
        for (lo, hi) in [
            (0.0, 5e-324),
            (1e300, 1e300),
            (-8e307, 8e307),
            (3.0, 3.0 + 1e-15),
        ] {
            let (lo, hi) = axis_limits(lo, hi).unwrap();
            let (ticks, _) = nice_ticks(lo, hi, 6.0);
            assert!(
                (2..=12).contains(&ticks.len()),
                "{lo} {hi}: {}",
                ticks.len()
            );
        }
        assert_eq!(axis_limits(-f64::MAX, f64::MAX), None);
        assert_eq!(axis_limits(f64::MAX, f64::MAX), None);
    }

    #[test]
    fn subsets_are_even_and_deterministic() {
        let points: Vec<[f64; 3]> = (0..25).map(|i| [f64::from(i), 0.0, 0.0]).collect();
        let firsts = |max| -> Vec<f64> { strided(&points, max).map(|p| p[0]).collect() };
        assert_eq!(firsts(5), [0.0, 5.0, 10.0, 15.0, 20.0]);
        assert_eq!(firsts(100).len(), 25);
        assert_eq!(firsts(10), firsts(10));
        assert_eq!(firsts(10)[..3], [0.0, 2.0, 5.0]);
    }

    #[test]
    fn dots_are_small_and_soft() {
        let stamp = dot_stamp();
        assert!((9..=25).contains(&stamp.len()));
        let centre = stamp.iter().find(|s| (s.0, s.1) == (0, 0)).unwrap();
        assert!((centre.2 - ALPHA).abs() < 1e-12);
        assert!(stamp.iter().all(|s| s.2 > 0.0 && s.2 <= ALPHA));
    }
}
