//! Text layout with the embedded font.
//!
//! Plotters' ab_glyph renderer rasterises glyphs well but places each one at
//! its pen position without its left side bearing, so narrow glyphs ("1",
//! ".", ":") drift left and leave gaps ("1 000"). [`Typesetter`] reads the
//! font's horizontal metrics (`cmap`, `hmtx`, `hhea`, `kern`) itself, lays
//! out every line, and asks plotters to draw one glyph at a time at its
//! exact position. Plotters stays the only rasteriser; this module only
//! decides where glyphs go.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, DEJAVU_SANS, DrawError, FONT_FAMILY, FigureError, ensure_font};

/// Horizontal alignment of a line of text on its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Align {
    Left,
    Center,
    Right,
}

/// Lays out and draws text in the embedded font.
pub(super) struct Typesetter {
    metrics: Metrics<'static>,
}

impl Typesetter {
    /// Registers the font with plotters (once) and reads its metrics.
    pub(super) fn new() -> Result<Self, FigureError> {
        ensure_font()?;
        let metrics = Metrics::parse(DEJAVU_SANS).ok_or(FigureError::Font)?;
        Ok(Typesetter { metrics })
    }

    /// Each inked glyph of `text` with its pen offset, and the advance of the
    /// whole line, in pixels at `size`.
    fn layout(&self, text: &str, size: f64) -> (Vec<Placed>, f64) {
        let scale = size / self.metrics.height;
        let mut pen = 0.0;
        let mut previous = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for c in text.chars() {
            let id = self.metrics.glyph(c);
            if let Some(left) = previous {
                pen += f64::from(self.metrics.kern(left, id)) * scale;
            }
            if let Some((x_min, y_max)) = self.metrics.bbox(id) {
                glyphs.push(Placed {
                    c,
                    pen,
                    // Plotters draws a glyph's pixel bounds from its anchor:
                    // these are their offsets from the pen on the baseline.
                    left: (f64::from(x_min) * scale).floor() as i32,
                    top: (-f64::from(y_max) * scale).floor() as i32,
                });
            }
            pen += f64::from(self.metrics.h_metrics(id)) * scale;
            previous = Some(id);
        }
        (glyphs, pen)
    }

    /// Width of `text` at `size` pixels.
    pub(super) fn width(&self, text: &str, size: f64) -> u32 {
        self.layout(text, size).1.ceil() as u32
    }

    /// Draws `text` with its baseline at `y`, aligned on `x`.
    pub(super) fn label(
        &self,
        area: &Area<'_>,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        color: &RGBColor,
        align: Align,
    ) -> Result<(), DrawError> {
        let (glyphs, width) = self.layout(text, size);
        let start = f64::from(x)
            - match align {
                Align::Left => 0.0,
                Align::Center => width / 2.0,
                Align::Right => width,
            };
        let style = glyph_style(size, color, FontTransform::None);
        for g in glyphs {
            let gx = (start + g.pen).round() as i32 + g.left;
            let gy = y + g.top - plotters_shift(size, g.top);
            area.draw_text(g.c.encode_utf8(&mut [0; 4]), &style, (gx, gy))?;
        }
        Ok(())
    }

    /// Draws `text` reading upwards (rotated a quarter turn counter-clockwise),
    /// centred on `y`, with its baseline at `x`.
    pub(super) fn label_up(
        &self,
        area: &Area<'_>,
        text: &str,
        (x, y): (i32, i32),
        size: f64,
        color: &RGBColor,
    ) -> Result<(), DrawError> {
        let (glyphs, width) = self.layout(text, size);
        let start = f64::from(y) + width / 2.0;
        let style = glyph_style(size, color, FontTransform::Rotate270);
        for g in glyphs {
            let gx = x + g.top - plotters_shift(size, g.top);
            let gy = (start - g.pen).round() as i32 - g.left;
            area.draw_text(g.c.encode_utf8(&mut [0; 4]), &style, (gx, gy))?;
        }
        Ok(())
    }
}

/// One glyph of a laid-out line.
struct Placed {
    c: char,
    /// Pen position from the start of the line, in pixels.
    pen: f64,
    /// Offset of the glyph's pixel bounds from the pen, right and down.
    left: i32,
    top: i32,
}

/// How far below a top-anchored position plotters' ab_glyph renderer puts
/// the first pixel row of a glyph whose bounds start `top` pixels below the
/// baseline (this mirrors its `(size / 2 + top) as i32`).
fn plotters_shift(size: f64, top: i32) -> i32 {
    (size as f32 / 2.0 + top as f32) as i32
}

/// Style of one glyph: top-left anchored, so its ink starts at the anchor.
fn glyph_style<'a>(size: f64, color: &'a RGBColor, transform: FontTransform) -> TextStyle<'a> {
    TextStyle::from((FONT_FAMILY, size).into_font())
        .color(color)
        .transform(transform)
        .pos(Pos::new(HPos::Left, VPos::Top))
}

/// The horizontal metrics of a TrueType font, read straight from its tables.
struct Metrics<'f> {
    /// Ascender minus descender, in font units: the size plotters scales to.
    height: f64,
    hmtx: &'f [u8],
    /// Glyphs with their own advance in `hmtx`.
    n_hmetrics: u16,
    /// A format-4 (BMP) `cmap` subtable.
    cmap4: &'f [u8],
    /// Pairs of a format-0 `kern` subtable, 6 bytes each, if any.
    kern_pairs: &'f [u8],
    loca: &'f [u8],
    /// Whether `loca` holds 32-bit offsets (else 16-bit halves).
    long_loca: bool,
    glyf: &'f [u8],
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn i16_at(data: &[u8], at: usize) -> Option<i16> {
    u16_at(data, at).map(|v| v as i16)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl<'f> Metrics<'f> {
    fn parse(font: &'f [u8]) -> Option<Self> {
        let table = |tag: &[u8; 4]| -> Option<&'f [u8]> {
            let count = usize::from(u16_at(font, 4)?);
            (0..count).find_map(|i| {
                let record = 12 + 16 * i;
                (font.get(record..record + 4)? == tag).then_some(())?;
                let offset = u32_at(font, record + 8)? as usize;
                let len = u32_at(font, record + 12)? as usize;
                font.get(offset..offset.checked_add(len)?)
            })
        };
        let hhea = table(b"hhea")?;
        let height = f64::from(i16_at(hhea, 4)?) - f64::from(i16_at(hhea, 6)?);
        let n_hmetrics = u16_at(hhea, 34)?;
        let hmtx = table(b"hmtx")?;
        let cmap = table(b"cmap")?;
        // Prefer Windows Unicode BMP (3, 1), then any Unicode (0, *) format 4.
        let subtables = usize::from(u16_at(cmap, 2)?);
        let mut cmap4 = None;
        for i in 0..subtables {
            let record = 4 + 8 * i;
            let (platform, encoding) = (u16_at(cmap, record)?, u16_at(cmap, record + 2)?);
            let offset = u32_at(cmap, record + 4)? as usize;
            let sub = cmap.get(offset..)?;
            if u16_at(sub, 0)? == 4 && (platform == 0 || (platform, encoding) == (3, 1)) {
                let len = usize::from(u16_at(sub, 2)?);
                cmap4 = Some(sub.get(..len)?);
                if platform == 3 {
                    break;
                }
            }
        }
        let kern_pairs = table(b"kern")
            .and_then(|kern| {
                // Version 0, first subtable, horizontal format 0.
                let coverage = u16_at(kern, 4 + 4)?;
                if u16_at(kern, 0)? != 0 || coverage & 0x0001 == 0 || coverage >> 8 != 0 {
                    return None;
                }
                let pairs = usize::from(u16_at(kern, 4 + 6)?);
                kern.get(4 + 14..4 + 14 + 6 * pairs)
            })
            .unwrap_or(&[]);
        let long_loca = i16_at(table(b"head")?, 50)? != 0;
        (height > 0.0 && n_hmetrics > 0).then_some(Metrics {
            height,
            hmtx,
            n_hmetrics,
            cmap4: cmap4?,
            kern_pairs,
            loca: table(b"loca")?,
            long_loca,
            glyf: table(b"glyf")?,
        })
    }

    /// Glyph of `c`, 0 (`.notdef`) when the font lacks it.
    fn glyph(&self, c: char) -> u16 {
        u16::try_from(u32::from(c))
            .ok()
            .and_then(|code| self.cmap4_lookup(code))
            .unwrap_or(0)
    }

    fn cmap4_lookup(&self, code: u16) -> Option<u16> {
        let t = self.cmap4;
        let segments = usize::from(u16_at(t, 6)? / 2);
        let ends = 14;
        let starts = ends + 2 * segments + 2;
        let deltas = starts + 2 * segments;
        let range_offsets = deltas + 2 * segments;
        // Binary search for the first segment whose end is >= code.
        let (mut lo, mut hi) = (0, segments);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if u16_at(t, ends + 2 * mid)? < code {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let seg = lo;
        if seg == segments || u16_at(t, starts + 2 * seg)? > code {
            return None;
        }
        let delta = u16_at(t, deltas + 2 * seg)?;
        let range_offset = usize::from(u16_at(t, range_offsets + 2 * seg)?);
        let glyph = if range_offset == 0 {
            code.wrapping_add(delta)
        } else {
            let start = u16_at(t, starts + 2 * seg)?;
            let at = range_offsets + 2 * seg + range_offset + 2 * usize::from(code - start);
            match u16_at(t, at)? {
                0 => 0,
                g => g.wrapping_add(delta),
            }
        };
        (glyph != 0).then_some(glyph)
    }

    /// Advance width of glyph `id`, in font units.
    fn h_metrics(&self, id: u16) -> u16 {
        let last = usize::from(self.n_hmetrics) - 1;
        u16_at(self.hmtx, 4 * usize::from(id).min(last)).unwrap_or(0)
    }

    /// `xMin` and `yMax` of glyph `id`'s outline, in font units; `None` for
    /// a glyph without ink (a space).
    fn bbox(&self, id: u16) -> Option<(i16, i16)> {
        let id = usize::from(id);
        let (start, end) = if self.long_loca {
            (
                u32_at(self.loca, 4 * id)? as usize,
                u32_at(self.loca, 4 * id + 4)? as usize,
            )
        } else {
            (
                2 * usize::from(u16_at(self.loca, 2 * id)?),
                2 * usize::from(u16_at(self.loca, 2 * id + 2)?),
            )
        };
        if end <= start {
            return None;
        }
        let header = self.glyf.get(start..end)?;
        Some((i16_at(header, 2)?, i16_at(header, 8)?))
    }

    /// Kerning between glyphs `left` and `right`, in font units.
    fn kern(&self, left: u16, right: u16) -> i16 {
        let key = (u32::from(left) << 16) | u32::from(right);
        let pairs = self.kern_pairs;
        let (mut lo, mut hi) = (0, pairs.len() / 6);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match u32_at(pairs, 6 * mid).map(|k| k.cmp(&key)) {
                Some(std::cmp::Ordering::Less) => lo = mid + 1,
                Some(std::cmp::Ordering::Greater) => hi = mid,
                Some(std::cmp::Ordering::Equal) => return i16_at(pairs, 6 * mid + 4).unwrap_or(0),
                None => return 0,
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_plotters() {
        let typesetter = Typesetter::new().unwrap();
        let m = &typesetter.metrics;
        assert_eq!(m.glyph('A'), 36);
        assert_eq!(m.glyph('\u{10FFFF}'), 0);
        assert!(m.kern_pairs.len() >= 6);
        // Advances agree with plotters' own layout (which uses ab_glyph).
        for text in [
            "cluster 10",
            "purity 0.877, 1000 samples",
            "true: seven",
            "AV Te",
        ] {
            let ours = typesetter.width(text, 13.0);
            let theirs = (FONT_FAMILY, 13.0).into_font().box_size(text).unwrap().0;
            assert!(ours.abs_diff(theirs) <= 1, "{text}: {ours} vs {theirs}");
        }
    }
}
