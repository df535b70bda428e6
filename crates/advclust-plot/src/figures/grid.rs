//! Fig. 1: clean images above their adversarial versions, with clusters.

use std::path::Path;

use plotters::style::RGBColor;

use super::{ALERT, Align, Canvas, FigureError, MUTED, Rgb, TEXT, Typesetter};
use advclust_core::ImageBatch;

/// Samples [`image_grid`] shows at most.
pub const DEFAULT_MAX_SAMPLES: usize = 16;

/// Images shorter than this (longer side, pixels) are upscaled by default.
const MIN_DISPLAY: usize = 80;
/// Longest class name shown, in characters.
const MAX_NAME_CHARS: usize = 16;

const MARGIN: i64 = 16;
/// Horizontal gap between samples.
const GAP: i64 = 14;
const CAPTION: f64 = 13.0;
const CAPTION_LINE: i64 = 17;
const TITLE: f64 = 17.0;
/// Height of the title block.
const HEADER: i64 = 52;
const SUBTITLE: f64 = 12.0;

const FRAME: Rgb = [190, 190, 190];
const CHANGED: Rgb = [200, 30, 30];
const SEPARATOR: Rgb = [225, 225, 225];

/// The images and labels of an image grid (see [`image_grid_with`]).
#[derive(Debug, Clone, Copy)]
pub struct GridSamples<'a> {
    /// Clean images, 1 or 3 channels.
    pub clean: &'a ImageBatch,
    /// Adversarial images, same shape as `clean`.
    pub adversarial: &'a ImageBatch,
    /// Cluster of each clean image.
    pub clean_clusters: &'a [usize],
    /// Cluster of each adversarial image.
    pub adv_clusters: &'a [usize],
    /// Ground-truth class of each image, if known.
    pub true_labels: Option<&'a [usize]>,
    /// Name of each class (indexed by class label); labels without a name
    /// are shown as numbers.
    pub class_names: Option<&'a [String]>,
}

/// Layout options of [`image_grid_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridOptions {
    /// Samples per grid row (at least 1; fewer when fewer samples are shown).
    pub columns: usize,
    /// Samples shown at most, the first ones of the batch (at least 1).
    pub max_samples: usize,
    /// Integer nearest-neighbour zoom; `None` picks the smallest one that
    /// makes the longer side at least 80 pixels (28 -> 84).
    pub scale: Option<usize>,
    /// Adds a row per sample with the perturbation `adversarial - clean`,
    /// rescaled per image so that zero is mid-grey and the largest absolute
    /// change is black or white.
    pub show_perturbation: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            columns: 8,
            max_samples: DEFAULT_MAX_SAMPLES,
            scale: None,
            show_perturbation: true,
        }
    }
}

/// Writes a PNG grid of clean images above their adversarial versions
/// (Fig. 1 of the paper).
///
/// Each of the first [`DEFAULT_MAX_SAMPLES`] samples shows its true label
/// (and class name) when given, the clean image with its cluster, the
/// adversarial image with its cluster (red caption and frame when the attack
/// changed it), and the amplified perturbation. `columns` samples go in each
/// row. See [`image_grid_with`] for the other options.
///
/// # Errors
///
/// [`FigureError::ShapeMismatch`] when the batches differ in shape,
/// [`FigureError::UnsupportedChannels`] unless they have 1 or 3 channels,
/// [`FigureError::LengthMismatch`] when a label slice does not have one entry
/// per image, [`FigureError::InvalidParameter`] when `columns` is 0, and
/// [`FigureError::Draw`] or [`FigureError::Write`] when rendering or writing
/// `path` fails.
#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the figure's inputs; image_grid_with bundles them"
)]
pub fn image_grid(
    path: &Path,
    clean: &ImageBatch,
    adversarial: &ImageBatch,
    clean_clusters: &[usize],
    adv_clusters: &[usize],
    true_labels: Option<&[usize]>,
    class_names: Option<&[String]>,
    columns: usize,
) -> Result<(), FigureError> {
    let samples = GridSamples {
        clean,
        adversarial,
        clean_clusters,
        adv_clusters,
        true_labels,
        class_names,
    };
    let options = GridOptions {
        columns,
        ..GridOptions::default()
    };
    image_grid_with(path, &samples, &options)
}

/// [`image_grid`] with all layout options.
///
/// # Errors
///
/// As [`image_grid`], and [`FigureError::InvalidParameter`] for a zero
/// `max_samples` or `scale`, [`FigureError::TooLarge`] when the images are so
/// large that the figure would exceed [`MAX_PIXELS`](super::MAX_PIXELS).
pub fn image_grid_with(
    path: &Path,
    samples: &GridSamples<'_>,
    options: &GridOptions,
) -> Result<(), FigureError> {
    validate(samples, options)?;
    let typo = Typesetter::new()?;
    let n = samples.clean.len();
    let shown = n.min(options.max_samples);
    let captions: Vec<Captions> = (0..shown).map(|i| Captions::new(samples, i)).collect();
    let changed = captions.iter().filter(|c| c.changed).count();

    let title = format!("Clean vs. adversarial images: {changed} of {shown} change cluster");
    let mut subtitle = String::from("red: cluster changed by the attack");
    if options.show_perturbation {
        subtitle.push_str("; perturbation rescaled per image, grey = 0");
    }
    if shown < n {
        subtitle.push_str(&format!("; first {shown} of {n} samples"));
    }
    let row_names: &[&str] = if options.show_perturbation {
        &["clean", "adversarial", "perturbation"]
    } else {
        &["clean", "adversarial"]
    };

    let layout = Layout::new(
        &typo,
        samples,
        options,
        &captions,
        row_names,
        [&title, &subtitle],
    )?;
    let mut canvas = Canvas::new(layout.canvas_w as u64, layout.canvas_h as u64)?;
    draw_images(
        &mut canvas,
        &layout,
        samples,
        &captions,
        options.show_perturbation,
    );
    canvas.draw(path, |area| {
        let center = (layout.canvas_w / 2) as i32;
        typo.label(area, &title, (center, 24), TITLE, &TEXT, Align::Center)?;
        let pos = (center, 42);
        typo.label(area, &subtitle, pos, SUBTITLE, &MUTED, Align::Center)?;
        for grid_row in 0..layout.rows {
            let cy = HEADER + grid_row as i64 * layout.cell_h;
            for (row, name) in row_names.iter().enumerate() {
                let mid = cy + layout.blocks[row].1 + layout.ih / 2 + (CAPTION * 0.3) as i64;
                let pos = ((layout.x0 + layout.gutter - GAP) as i32, mid as i32);
                typo.label(area, name, pos, CAPTION, &MUTED, Align::Right)?;
            }
        }
        for (i, caption) in captions.iter().enumerate() {
            let (cx, cy) = layout.cell(i);
            let mid = (cx + (layout.cell_w - GAP) / 2) as i32;
            let put = |text: &str, baseline: i64, color: &RGBColor| {
                let pos = (mid, baseline as i32);
                typo.label(area, text, pos, CAPTION, color, Align::Center)
            };
            let clean_baseline = cy + layout.blocks[0].0;
            if let Some(truth) = &caption.truth {
                put(truth, clean_baseline - CAPTION_LINE, &MUTED)?;
            }
            put(&caption.clean, clean_baseline, &TEXT)?;
            let color = if caption.changed { &ALERT } else { &TEXT };
            put(&caption.adv, cy + layout.blocks[1].0, color)?;
            if let Some(&(baseline, _)) = layout.blocks.get(2) {
                put(&caption.delta, cy + baseline, &MUTED)?;
            }
        }
        Ok(())
    })?;
    canvas.save(path)
}

/// Pixel geometry of a grid.
struct Layout {
    /// Nearest-neighbour zoom and the zoomed image size.
    scale: usize,
    iw: i64,
    ih: i64,
    columns: usize,
    rows: usize,
    /// Width of the row labels on the left.
    gutter: i64,
    cell_w: i64,
    cell_h: i64,
    /// Per image row of a cell: caption baseline and image top, from the
    /// cell's top.
    blocks: Vec<(i64, i64)>,
    /// Left edge of the grid (gutter included).
    x0: i64,
    canvas_w: i64,
    canvas_h: i64,
}

impl Layout {
    fn new(
        typo: &Typesetter,
        samples: &GridSamples<'_>,
        options: &GridOptions,
        captions: &[Captions],
        row_names: &[&str],
        [title, subtitle]: [&str; 2],
    ) -> Result<Self, FigureError> {
        let [_, _, height, width] = samples.clean.dims();
        let shown = captions.len();
        let columns = options.columns.min(shown);
        let rows = shown.div_ceil(columns);
        let scale = options
            .scale
            .unwrap_or_else(|| MIN_DISPLAY.div_ceil(height.max(width)).max(1));
        let too_large = || FigureError::TooLarge {
            width: (width as u64).saturating_mul(scale as u64),
            height: (height as u64).saturating_mul(scale as u64),
        };
        let zoomed = |side: usize| {
            side.checked_mul(scale)
                .and_then(|px| i64::try_from(px).ok())
                .filter(|&px| px <= 1 << 20)
                .ok_or_else(too_large)
        };
        let (iw, ih) = (zoomed(width)?, zoomed(height)?);
        if (iw as u64).saturating_mul(ih as u64) > super::MAX_PIXELS {
            return Err(too_large());
        }

        let widest = |texts: &mut dyn Iterator<Item = &str>| {
            texts
                .map(|s| i64::from(typo.width(s, CAPTION)))
                .max()
                .unwrap_or(0)
        };
        let gutter = widest(&mut row_names.iter().copied()) + GAP;
        let caption_w = widest(&mut captions.iter().flat_map(Captions::lines));
        let cell_w = iw.max(caption_w) + 6 + GAP;
        let truth_lines = i64::from(samples.true_labels.is_some());
        let mut blocks = Vec::with_capacity(row_names.len());
        let mut y = 0;
        for row in 0..row_names.len() {
            let lines = if row == 0 { 1 + truth_lines } else { 1 };
            y += 6 + lines * CAPTION_LINE;
            blocks.push((y - 5, y + 3));
            y += ih + 6;
        }
        let cell_h = y + 16;

        let header_w = i64::from(typo.width(title, TITLE).max(typo.width(subtitle, SUBTITLE)));
        let grid_w = gutter + columns as i64 * cell_w;
        let canvas_w = grid_w.max(header_w) + 2 * MARGIN;
        Ok(Layout {
            scale,
            iw,
            ih,
            columns,
            rows,
            gutter,
            cell_w,
            cell_h,
            blocks,
            x0: MARGIN + (canvas_w - 2 * MARGIN - grid_w) / 2,
            canvas_w,
            canvas_h: HEADER + rows as i64 * cell_h + MARGIN,
        })
    }

    /// Top-left corner of sample `i`'s cell.
    fn cell(&self, i: usize) -> (i64, i64) {
        (
            self.x0 + self.gutter + (i % self.columns) as i64 * self.cell_w,
            HEADER + (i / self.columns) as i64 * self.cell_h,
        )
    }
}

/// Draws every shown image with its frame.
fn draw_images(
    canvas: &mut Canvas,
    layout: &Layout,
    samples: &GridSamples<'_>,
    captions: &[Captions],
    show_perturbation: bool,
) {
    let [_, channels, height, width] = samples.clean.dims();
    let image_len = samples.clean.image_len();
    for grid_row in 1..layout.rows {
        let y = HEADER + grid_row as i64 * layout.cell_h - 6;
        let w = layout.gutter + layout.columns as i64 * layout.cell_w - GAP;
        canvas.fill(layout.x0, y, w, 1, SEPARATOR);
    }
    for (i, caption) in captions.iter().enumerate() {
        let (cx, cy) = layout.cell(i);
        let ix = cx + (layout.cell_w - GAP - layout.iw) / 2;
        let range = i * image_len..(i + 1) * image_len;
        let mut images = vec![
            normalized(samples.clean, range.clone()),
            normalized(samples.adversarial, range.clone()),
        ];
        if show_perturbation {
            images.push(amplified(
                &samples.clean.data()[range.clone()],
                &samples.adversarial.data()[range],
            ));
        }
        for ((_, top), (row, image)) in layout.blocks.iter().zip(images.iter().enumerate()) {
            let iy = cy + top;
            let (color, thickness) = if row == 1 && caption.changed {
                (CHANGED, 3)
            } else {
                (FRAME, 1)
            };
            canvas.frame(ix, iy, layout.iw, layout.ih, thickness, color);
            let shape = [channels, height, width];
            blit(canvas, image, shape, layout.scale, ix, iy);
        }
    }
}

/// Checks shapes, label lengths and options.
fn validate(samples: &GridSamples<'_>, options: &GridOptions) -> Result<(), FigureError> {
    let dims = samples.clean.dims();
    if samples.adversarial.dims() != dims {
        return Err(FigureError::ShapeMismatch {
            clean: dims,
            adversarial: samples.adversarial.dims(),
        });
    }
    if !matches!(dims[1], 1 | 3) {
        return Err(FigureError::UnsupportedChannels { channels: dims[1] });
    }
    let n = dims[0];
    let lengths = [
        ("clean_clusters", Some(samples.clean_clusters.len())),
        ("adv_clusters", Some(samples.adv_clusters.len())),
        ("true_labels", samples.true_labels.map(<[usize]>::len)),
    ];
    for (what, len) in lengths {
        if let Some(actual) = len
            && actual != n
        {
            return Err(FigureError::LengthMismatch {
                what,
                expected: n,
                actual,
            });
        }
    }
    let positive = [
        ("columns", options.columns),
        ("max_samples", options.max_samples),
        ("scale", options.scale.unwrap_or(1)),
    ];
    for (name, value) in positive {
        if value == 0 {
            return Err(FigureError::InvalidParameter {
                name,
                reason: "must be at least 1".into(),
            });
        }
    }
    Ok(())
}

/// The texts around one sample.
struct Captions {
    truth: Option<String>,
    clean: String,
    adv: String,
    delta: String,
    changed: bool,
}

impl Captions {
    fn new(samples: &GridSamples<'_>, i: usize) -> Self {
        let (c, a) = (samples.clean_clusters[i], samples.adv_clusters[i]);
        let truth = samples.true_labels.map(|labels| {
            let class = labels[i];
            match samples.class_names.and_then(|names| names.get(class)) {
                Some(name) => format!("true: {}", shorten(name)),
                None => format!("true: {class}"),
            }
        });
        let len = samples.clean.image_len();
        let range = i * len..(i + 1) * len;
        let l2 = samples.clean.data()[range.clone()]
            .iter()
            .zip(&samples.adversarial.data()[range])
            .map(|(&x, &y)| f64::from(y - x).powi(2))
            .sum::<f64>()
            .sqrt();
        Captions {
            truth,
            clean: format!("cluster {c}"),
            adv: if a == c {
                format!("cluster {a}")
            } else {
                format!("cluster {a} (was {c})")
            },
            delta: format!("L2 = {l2:.2}"),
            changed: a != c,
        }
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        self.truth.as_deref().into_iter().chain([
            self.clean.as_str(),
            self.adv.as_str(),
            self.delta.as_str(),
        ])
    }
}

/// `name` cut to [`MAX_NAME_CHARS`] characters, with an ellipsis when cut.
fn shorten(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        name.to_string()
    } else {
        let mut short: String = name.chars().take(MAX_NAME_CHARS - 1).collect();
        short.push('…');
        short
    }
}

/// Pixels `range` of a batch mapped from its value box to `[0, 1]`.
fn normalized(batch: &ImageBatch, range: std::ops::Range<usize>) -> Vec<f32> {
    let vbox = batch.value_box();
    let (lo, span) = (vbox.min(), vbox.max() - vbox.min());
    batch.data()[range]
        .iter()
        .map(|&v| ((v - lo) / span).clamp(0.0, 1.0))
        .collect()
}

/// `adversarial - clean` mapped to `[0, 1]`: 0.5 for no change, 0 and 1 for
/// the largest absolute change of the image.
fn amplified(clean: &[f32], adversarial: &[f32]) -> Vec<f32> {
    let delta: Vec<f32> = clean.iter().zip(adversarial).map(|(c, a)| a - c).collect();
    let peak = delta.iter().fold(0.0f32, |m, d| m.max(d.abs()));
    if peak > 0.0 && peak.is_finite() {
        delta
            .iter()
            .map(|d| (0.5 + 0.5 * d / peak).clamp(0.0, 1.0))
            .collect()
    } else {
        vec![0.5; delta.len()]
    }
}

/// Copies one CHW image in `[0, 1]` onto the canvas at `(x, y)`, each pixel
/// repeated `scale` times in both directions.
fn blit(canvas: &mut Canvas, image: &[f32], [c, h, w]: [usize; 3], scale: usize, x: i64, y: i64) {
    let plane = h * w;
    let byte = |v: f32| (v * 255.0).round() as u8;
    for row in 0..h * scale {
        for col in 0..w * scale {
            let p = (row / scale) * w + col / scale;
            let rgb = if c == 3 {
                [
                    byte(image[p]),
                    byte(image[plane + p]),
                    byte(image[2 * plane + p]),
                ]
            } else {
                [byte(image[p]); 3]
            };
            canvas.put(x + col as i64, y + row as i64, rgb);
        }
    }
}
