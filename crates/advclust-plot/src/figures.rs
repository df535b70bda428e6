//! PNG figures of the paper: the clean/adversarial image grid (Fig. 1), the
//! clean/adversarial confusion matrices (Fig. 2) and the epsilon-sweep score
//! curves (Fig. 3), plus the training curve of an attack, its scores against
//! the victim queries it made ([`query_curve`]), and a comparison of attacks,
//! one line per attack of a score against a quantity spanning decades on a
//! log-10 x axis, such as NMI against the images queried
//! ([`comparison_curve`]), clean and adversarial points projected on three
//! principal components in three panels side by side (Fig. 5b,
//! [`pca_scatter`]), grouped bars with their values written above them
//! and an optional reference line, such as the share of images a detector
//! flags on each victim (Fig. 5a, [`grouped_bars`]), and a labelled matrix of
//! values with each value written in its cell, such as how well attacks
//! transfer from one victim to another (Fig. 4, [`value_heatmap`]).
//!
//! Every figure is drawn into an in-memory RGB buffer (images, heatmap
//! cells and scatter dots pixel by pixel, lines, bars, markers and text through [`plotters`]' bitmap
//! backend) and encoded as PNG with the [`image`] crate. All text is DejaVu
//! Sans, embedded in the binary and registered with plotters once, so no
//! system font is ever needed; lines of text are laid out from the font's own
//! metrics and rasterised glyph by glyph by plotters. Bad input gives a
//! [`FigureError`], never a panic.
//!
//! ```no_run
//! use std::path::Path;
//! use advclust_plot::figures::{
//!     BarGroup, CurvePoint, CurveSeries, QueryPoint, SweepPoint, comparison_curve, grouped_bars,
//!     pca_scatter, query_curve, sweep_curves,
//! };
//!
//! let points = [
//!     SweepPoint { epsilon: 0.0, mean_l2: 0.0, nmi: 0.91, ari: 0.89, acc: 0.95 },
//!     SweepPoint { epsilon: 0.1, mean_l2: 2.4, nmi: 0.52, ari: 0.41, acc: 0.60 },
//! ];
//! sweep_curves(Path::new("sweep.png"), &points)?;
//!
//! let training = [
//!     QueryPoint { batch_calls: 0, nmi: 0.90, ari: Some(0.88), acc: None },
//!     QueryPoint { batch_calls: 5_000, nmi: 0.41, ari: Some(0.30), acc: None },
//! ];
//! query_curve(Path::new("queries.png"), "Scores vs. victim queries", &training, Some(0.91))?;
//!
//! let line = |name: &str, nmi: [f64; 3]| CurveSeries {
//!     name: name.into(),
//!     points: [1e3, 1e5, 1e8]
//!         .into_iter()
//!         .zip(nmi)
//!         .map(|(x, y)| CurvePoint { x, y })
//!         .collect(),
//! };
//! let attacks = [line("GAN attack", [0.85, 0.40, 0.12]), line("random noise", [0.90, 0.88, 0.87])];
//! comparison_curve(
//!     Path::new("attacks.png"),
//!     "NMI vs. images queried",
//!     "images queried",
//!     "NMI",
//!     &attacks,
//!     Some(("clean NMI", 0.91)),
//! )?;
//!
//! let clean = [[-4.1, 0.3, 1.2], [3.8, -1.0, 0.4], [0.2, 4.4, -0.9]];
//! let adversarial = [[-0.6, 0.1, 1.0], [0.9, -0.4, 0.6], [0.1, 1.2, -0.5]];
//! pca_scatter(Path::new("pca.png"), "Clean vs. adversarial, PCA", &clean, &adversarial)?;
//!
//! let series = ["clean".to_string(), "GAN attack".to_string()];
//! let victims = [
//!     BarGroup { name: "DEC".into(), values: vec![0.048, 0.1169] },
//!     BarGroup { name: "IDEC".into(), values: vec![0.051, 0.093] },
//! ];
//! grouped_bars(
//!     Path::new("flagged.png"),
//!     "Images flagged by the detector",
//!     "images flagged",
//!     &series,
//!     &victims,
//!     true,
//!     Some(("5 % clean false-flag rate", 0.05)),
//! )?;
//! # Ok::<(), advclust_plot::figures::FigureError>(())
//! ```

mod bars;
mod chart;
mod comparison;
mod confusion;
mod grid;
mod heatmap;
mod scatter;
mod sweep;
mod text;

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::{ImageFormat, RgbImage};
use plotters::backend::RGBPixel;
use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

pub use bars::{BarGroup, grouped_bars};
pub use comparison::{CurvePoint, CurveSeries, comparison_curve};
pub use confusion::{confusion_matrix, confusion_pair};
pub use grid::{DEFAULT_MAX_SAMPLES, GridOptions, GridSamples, image_grid, image_grid_with};
pub use heatmap::{ValueHeatmap, value_heatmap};
pub use scatter::pca_scatter;
pub use sweep::{QueryPoint, SweepPoint, query_curve, sweep_curves};
use text::{Align, Typesetter};

/// Largest canvas any figure may have, in pixels (`2^26`, 192 MiB of RGB).
pub const MAX_PIXELS: u64 = 1 << 26;

/// DejaVu Sans 2.37 (licence: `assets/fonts/LICENSE-DejaVu.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The family the embedded font is registered under (plotters' default
/// family, so any plotters default text would find it too).
const FONT_FAMILY: &str = "sans-serif";

/// Why a figure could not be drawn.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FigureError {
    /// There is nothing to plot.
    #[error("nothing to plot: {what} is empty")]
    EmptyInput {
        /// The empty input.
        what: &'static str,
    },
    /// A per-sample slice does not have one entry per image.
    #[error("{what} has {actual} entries, expected {expected}")]
    LengthMismatch {
        /// The offending input.
        what: &'static str,
        /// Entries expected (the number of images).
        expected: usize,
        /// Entries given.
        actual: usize,
    },
    /// Clean and adversarial batches differ in shape.
    #[error("clean images have shape {clean:?} but adversarial images {adversarial:?}")]
    ShapeMismatch {
        /// `[N, C, H, W]` of the clean batch.
        clean: [usize; 4],
        /// `[N, C, H, W]` of the adversarial batch.
        adversarial: [usize; 4],
    },
    /// Only grey-scale (1) and RGB (3) images can be shown.
    #[error("cannot show images with {channels} channels (need 1 or 3)")]
    UnsupportedChannels {
        /// Channels of the batch.
        channels: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{what} of point {index} is not finite")]
    NonFinite {
        /// The field.
        what: &'static str,
        /// Index of the offending entry.
        index: usize,
    },
    /// An option is out of range.
    #[error("invalid {name}: {reason}")]
    InvalidParameter {
        /// The option.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The figure would exceed [`MAX_PIXELS`].
    #[error("figure of {width} x {height} pixels exceeds the limit of {MAX_PIXELS} pixels")]
    TooLarge {
        /// Width the layout asked for.
        width: u64,
        /// Height the layout asked for.
        height: u64,
    },
    /// The embedded font could not be registered with plotters.
    #[error("the embedded font could not be loaded")]
    Font,
    /// Drawing failed.
    #[error("drawing {}: {message}", path.display())]
    Draw {
        /// The figure being drawn.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Encoding or writing the PNG failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: image::ImageError,
    },
}

/// Registers the embedded font with plotters, once per process.
fn ensure_font() -> Result<(), FigureError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok { Ok(()) } else { Err(FigureError::Font) }
}

/// Error type of drawing closures: any plotters error.
type DrawError = Box<dyn StdError + Send + Sync>;

/// The drawing area of a canvas.
type Area<'a> = DrawingArea<BitMapBackend<'a, RGBPixel>, Shift>;

/// An RGB colour.
type Rgb = [u8; 3];

const TEXT: RGBColor = RGBColor(30, 30, 30);
const MUTED: RGBColor = RGBColor(100, 100, 100);
const ALERT: RGBColor = RGBColor(200, 30, 30);

/// A white RGB buffer that figures are drawn into, then saved as PNG.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A white canvas, refusing sizes over [`MAX_PIXELS`].
    fn new(width: u64, height: u64) -> Result<Self, FigureError> {
        let too_large = FigureError::TooLarge { width, height };
        if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS {
            return Err(too_large);
        }
        let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
            return Err(too_large);
        };
        Ok(Canvas {
            width: w,
            height: h,
            pixels: vec![255; (width * height * 3) as usize],
        })
    }

    /// Sets one pixel; outside the canvas is ignored.
    fn put(&mut self, x: i64, y: i64, rgb: Rgb) {
        if x >= 0 && y >= 0 && x < i64::from(self.width) && y < i64::from(self.height) {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&rgb);
        }
    }

    /// Blends `rgb` over one pixel with opacity `alpha` (in `[0, 1]`);
    /// outside the canvas is ignored.
    fn blend(&mut self, x: i64, y: i64, rgb: Rgb, alpha: f64) {
        if x >= 0 && y >= 0 && x < i64::from(self.width) && y < i64::from(self.height) {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            let alpha = alpha.clamp(0.0, 1.0);
            for (old, new) in self.pixels[i..i + 3].iter_mut().zip(rgb) {
                let mixed = f64::from(*old) * (1.0 - alpha) + f64::from(new) * alpha;
                *old = mixed.round() as u8;
            }
        }
    }

    /// Fills `[x, x + w) x [y, y + h)`, clipped to the canvas.
    fn fill(&mut self, x: i64, y: i64, w: i64, h: i64, rgb: Rgb) {
        for yy in y.max(0)..(y + h).min(i64::from(self.height)) {
            for xx in x.max(0)..(x + w).min(i64::from(self.width)) {
                self.put(xx, yy, rgb);
            }
        }
    }

    /// Draws a frame of `thickness` pixels just outside `[x, x + w) x [y, y + h)`.
    fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, thickness: i64, rgb: Rgb) {
        let t = thickness;
        self.fill(x - t, y - t, w + 2 * t, t, rgb);
        self.fill(x - t, y + h, w + 2 * t, t, rgb);
        self.fill(x - t, y, t, h, rgb);
        self.fill(x + w, y, t, h, rgb);
    }

    /// Runs plotters drawing code on the canvas.
    fn draw(
        &mut self,
        path: &Path,
        f: impl FnOnce(&Area<'_>) -> Result<(), DrawError>,
    ) -> Result<(), FigureError> {
        ensure_font()?;
        let fail = |e: &dyn std::fmt::Display| FigureError::Draw {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(
            &mut self.pixels,
            (self.width, self.height),
        )
        .map_err(|e| fail(&e))?;
        let root = backend.into_drawing_area();
        f(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))
    }

    /// Encodes the canvas as PNG and writes it to `path` atomically (temporary file, sync,
    /// rename: a figure is never left half-written).
    fn save(self, path: &Path) -> Result<(), FigureError> {
        let image = RgbImage::from_raw(self.width, self.height, self.pixels).ok_or_else(|| {
            FigureError::Draw {
                path: path.to_path_buf(),
                message: "canvas buffer does not match its size".into(),
            }
        })?;
        let mut png = std::io::Cursor::new(Vec::new());
        image
            .write_to(&mut png, ImageFormat::Png)
            .map_err(|source| FigureError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        advclust_core::write_atomic(path, png.get_ref()).map_err(|e| FigureError::Write {
            path: path.to_path_buf(),
            source: image::ImageError::IoError(e),
        })
    }
}

#[cfg(test)]
mod tests;
