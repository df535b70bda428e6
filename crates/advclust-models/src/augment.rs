//! Seeded, batched image augmentations on the host (NCHW f32 in `[0, 1]`).
//!
//! One call to [`augment_batch`] draws every random choice from the `SeededRng` it is given, image
//! by image in order, so a seed fixes the result. Per image, in this order:
//! random resized crop with optional flip, rotation and shear (one bilinear resampling),
//! optional stroke thickening / thinning (grayscale), colour jitter (brightness,
//! contrast, and for colour images saturation and hue) with probability `jitter_prob`,
//! random grayscale (colour images), additive Gaussian noise, and a clamp to `[0, 1]`.

use advclust_core::SeededRng;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Parameters of the contrastive augmentations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Range of the crop's area as a fraction of the image (`[min, max]`, `0 < min <= max <= 1`).
    pub crop_scale: [f32; 2],
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub crop_ratio: [f32; 2],
    /// Mirror left-right with probability 0.5 (not for digits or text).
    pub horizontal_flip: bool,
    /// Rotation drawn from `[-r, r]` degrees (about the crop centre, borders replicated).
    pub rotation_degrees: f32,
    /// Horizontal shear factor drawn from `[-s, s]`.
    pub shear: f32,
    /// Probability of thickening or thinning strokes (3x3 grey dilation or erosion, 50/50);
    /// 1-channel images only.
    pub stroke_prob: f32,
    /// Probability of applying the colour jitter.
    pub jitter_prob: f32,
    /// Brightness factor drawn from `[1 - b, 1 + b]`.
    pub brightness: f32,
    /// Contrast factor drawn from `[1 - c, 1 + c]` (blend with the image mean).
    pub contrast: f32,
    /// Saturation factor drawn from `[1 - s, 1 + s]` (3-channel images only).
    pub saturation: f32,
    /// Hue rotation drawn from `[-h, h]` turns (3-channel images only, `h <= 0.5`).
    pub hue: f32,
    /// Probability of converting a 3-channel image to gray (kept as 3 channels).
    pub grayscale_prob: f32,
    /// Standard deviation of additive Gaussian pixel noise (0 for none).
    pub noise_std: f32,
}

impl AugmentConfig {
    /// For handwritten digits (MNIST): crops of 50-100 % of the area with aspect ratio 0.8-1.25,
    /// no flip, rotations up to 15 degrees, shear up to 0.2, stroke thickening / thinning with
    /// probability 0.3, brightness / contrast jitter 0.4 (probability 0.8).
    pub fn digits() -> Self {
        AugmentConfig {
            crop_scale: [0.5, 1.0],
            crop_ratio: [0.8, 1.25],
            horizontal_flip: false,
            rotation_degrees: 15.0,
            shear: 0.2,
            stroke_prob: 0.3,
            jitter_prob: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.0,
            hue: 0.0,
            grayscale_prob: 0.0,
            noise_std: 0.0,
        }
    }

    /// For grayscale objects (Fashion-MNIST): like [`AugmentConfig::digits`] with a wider crop
    /// range (0.3-1), horizontal flips, and no rotation, shear or stroke changes.
    pub fn grayscale() -> Self {
        AugmentConfig {
            crop_scale: [0.3, 1.0],
            crop_ratio: [0.75, 1.333],
            horizontal_flip: true,
            rotation_degrees: 0.0,
            shear: 0.0,
            stroke_prob: 0.0,
            ..AugmentConfig::digits()
        }
    }

    /// For colour photographs (CIFAR-10), as in SimCLR / CC: crops of 20-100 % (ratio 3/4-4/3),
    /// flips, colour jitter 0.4 / 0.4 / 0.4 / 0.1 with probability 0.8, grayscale with
    /// probability 0.2.
    pub fn color() -> Self {
        AugmentConfig {
            crop_scale: [0.2, 1.0],
            crop_ratio: [0.75, 1.333],
            horizontal_flip: true,
            rotation_degrees: 0.0,
            shear: 0.0,
            stroke_prob: 0.0,
            jitter_prob: 0.8,
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            grayscale_prob: 0.2,
            noise_std: 0.0,
        }
    }

    /// The weak augmentation that goes with this one (FixMatch's and SPICE's "weak"): crops of
    /// 80-100 % of the area, this preset's flip, nothing else.
    pub fn weak(&self) -> Self {
        AugmentConfig {
            crop_scale: [0.8, 1.0],
            crop_ratio: [0.9, 1.111],
            horizontal_flip: self.horizontal_flip,
            rotation_degrees: 0.0,
            shear: 0.0,
            stroke_prob: 0.0,
            jitter_prob: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            grayscale_prob: 0.0,
            noise_std: 0.0,
        }
    }

    /// A sensible preset for `channels`-channel images (1: [`AugmentConfig::grayscale`],
    /// otherwise [`AugmentConfig::color`]).
    pub fn for_channels(channels: usize) -> Self {
        if channels == 1 {
            AugmentConfig::grayscale()
        } else {
            AugmentConfig::color()
        }
    }

    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        let [s0, s1] = self.crop_scale;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(ModelError::invalid(
                "augment.crop_scale",
                format!("need 0 < min <= max <= 1, got {:?}", self.crop_scale),
            ));
        }
        let [r0, r1] = self.crop_ratio;
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(ModelError::invalid(
                "augment.crop_ratio",
                format!("need 0 < min <= max, got {:?}", self.crop_ratio),
            ));
        }
        let probs = [
            ("augment.jitter_prob", self.jitter_prob),
            ("augment.grayscale_prob", self.grayscale_prob),
            ("augment.stroke_prob", self.stroke_prob),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return Err(ModelError::invalid(
                    name,
                    format!("{p} is not a probability"),
                ));
            }
        }
        let strengths = [
            ("augment.brightness", self.brightness, 1.0),
            ("augment.contrast", self.contrast, 1.0),
            ("augment.saturation", self.saturation, 1.0),
            ("augment.hue", self.hue, 0.5),
            ("augment.noise_std", self.noise_std, 1.0),
            ("augment.rotation_degrees", self.rotation_degrees, 180.0),
            ("augment.shear", self.shear, 1.0),
        ];
        for (name, v, max) in strengths {
            if !(0.0..=max).contains(&v) {
                return Err(ModelError::invalid(name, format!("{v} not in [0, {max}]")));
            }
        }
        Ok(())
    }
}

/// Augments every image of the NCHW batch `images` (`dims = [N, C, H, W]`, values in `[0, 1]`)
/// once, drawing all random choices from `rng`; the result has the same layout, in `[0, 1]`.
///
/// # Errors
///
/// [`ModelError::InvalidConfig`] for an invalid `config`; a [`CoreError`] when a dimension
/// is zero or the buffer does not hold `N * C * H * W` values.
///
/// [`CoreError`]: advclust_core::CoreError
pub fn augment_batch(
    images: &[f32],
    dims: [usize; 4],
    config: &AugmentConfig,
    rng: &mut SeededRng,
) -> Result<Vec<f32>> {
    config.validate()?;
    let [n, c, h, w] = dims;
    let len = c * h * w;
    if dims.contains(&0) {
        return Err(advclust_core::CoreError::EmptyDimension("augmented batch").into());
    }
    if images.len() != n * len {
        return Err(advclust_core::CoreError::ShapeMismatch {
            what: "augmented batch",
            expected: n * len,
            actual: images.len(),
        }
        .into());
    }
    let mut out = vec![0.0f32; n * len];
    for (src, dst) in images.chunks(len).zip(out.chunks_mut(len)) {
        augment_one(src, dst, [c, h, w], config, rng);
    }
    Ok(out)
}

fn augment_one(
    src: &[f32],
    dst: &mut [f32],
    [c, h, w]: [usize; 3],
    cfg: &AugmentConfig,
    rng: &mut SeededRng,
) {
    // Random resized crop (torchvision's sampling, continuous box), flip, rotation and shear,
    // all folded into one inverse map from output to source pixels (bilinear, borders
    // replicated).
    let (top, left, ch, cw) = sample_crop(h, w, cfg, rng);
    let flip = cfg.horizontal_flip && rng.random_bool(0.5);
    let angle = if cfg.rotation_degrees > 0.0 {
        rng.random_range(-cfg.rotation_degrees..=cfg.rotation_degrees)
            .to_radians()
    } else {
        0.0
    };
    let shear = if cfg.shear > 0.0 {
        rng.random_range(-cfg.shear..=cfg.shear)
    } else {
        0.0
    };
    let (sin, cos) = angle.sin_cos();
    // [u', v'] = R(angle) * [[1, shear], [0, 1]] * [u, v], in units of the crop size.
    let (a, b, c2, d) = (cos, cos * shear - sin, sin, sin * shear + cos);
    let (cy, cx) = (top + ch / 2.0, left + cw / 2.0);
    let (hm, wm) = ((h - 1) as f32, (w - 1) as f32);
    for y in 0..h {
        let v = (y as f32 + 0.5) / h as f32 - 0.5;
        for x in 0..w {
            let mut u = (x as f32 + 0.5) / w as f32 - 0.5;
            if flip {
                u = -u;
            }
            let (su, sv) = (a * u + b * v, c2 * u + d * v);
            let fx = (cx + su * cw - 0.5).clamp(0.0, wm);
            let fy = (cy + sv * ch - 0.5).clamp(0.0, hm);
            let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (wx, wy) = (fx - x0 as f32, fy - y0 as f32);
            for k in 0..c {
                let p = &src[k * h * w..(k + 1) * h * w];
                let val = (1.0 - wy) * ((1.0 - wx) * p[y0 * w + x0] + wx * p[y0 * w + x1])
                    + wy * ((1.0 - wx) * p[y1 * w + x0] + wx * p[y1 * w + x1]);
                dst[k * h * w + y * w + x] = val;
            }
        }
    }
    if c == 1 && cfg.stroke_prob > 0.0 && rng.random_bool(cfg.stroke_prob as f64) {
        let dilate = rng.random_bool(0.5);
        morph3x3(dst, h, w, dilate);
    }
    let hw = h * w;
    if rng.random_bool(cfg.jitter_prob as f64) {
        let b = factor(rng, cfg.brightness);
        let ct = factor(rng, cfg.contrast);
        let (s, hue) = if c == 3 {
            let s = factor(rng, cfg.saturation);
            let hue = if cfg.hue > 0.0 {
                rng.random_range(-cfg.hue..=cfg.hue)
            } else {
                0.0
            };
            (s, hue)
        } else {
            (1.0, 0.0)
        };
        // Brightness.
        dst.iter_mut().for_each(|v| *v = (*v * b).clamp(0.0, 1.0));
        // Contrast: blend with the mean gray level.
        let mean = gray_mean(dst, c, hw);
        dst.iter_mut()
            .for_each(|v| *v = ((*v - mean) * ct + mean).clamp(0.0, 1.0));
        if c == 3 {
            // Saturation: blend with the per-pixel gray value.
            for i in 0..hw {
                let g = gray(dst, i, hw);
                for k in 0..3 {
                    let v = &mut dst[k * hw + i];
                    *v = ((*v - g) * s + g).clamp(0.0, 1.0);
                }
            }
            if hue != 0.0 {
                rotate_hue(dst, hw, hue);
            }
        }
    }
    if c == 3 && cfg.grayscale_prob > 0.0 && rng.random_bool(cfg.grayscale_prob as f64) {
        for i in 0..hw {
            let g = gray(dst, i, hw);
            for k in 0..3 {
                dst[k * hw + i] = g;
            }
        }
    }
    if cfg.noise_std > 0.0 {
        for v in dst.iter_mut() {
            *v = (*v + cfg.noise_std * standard_normal(rng)).clamp(0.0, 1.0);
        }
    }
}

/// 3x3 grey dilation (max filter) or erosion (min filter) of a single-channel image, in place.
fn morph3x3(img: &mut [f32], h: usize, w: usize, dilate: bool) {
    let src = img.to_vec();
    for y in 0..h {
        for x in 0..w {
            let mut acc = src[y * w + x];
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let v = src[yy * w + xx];
                    acc = if dilate { acc.max(v) } else { acc.min(v) };
                }
            }
            img[y * w + x] = acc;
        }
    }
}

/// Returns `(top, left, height, width)` of a crop box in pixels (fractional).
fn sample_crop(
    h: usize,
    w: usize,
    cfg: &AugmentConfig,
    rng: &mut SeededRng,
) -> (f32, f32, f32, f32) {
    let (hf, wf) = (h as f32, w as f32);
    let area = hf * wf;
    let (lr0, lr1) = (cfg.crop_ratio[0].ln(), cfg.crop_ratio[1].ln());
    for _ in 0..10 {
        let s = if cfg.crop_scale[0] < cfg.crop_scale[1] {
            rng.random_range(cfg.crop_scale[0]..=cfg.crop_scale[1])
        } else {
            cfg.crop_scale[0]
        };
        let r = if lr0 < lr1 {
            rng.random_range(lr0..=lr1).exp()
        } else {
            lr0.exp()
        };
        let cw = (area * s * r).sqrt();
        let ch = (area * s / r).sqrt();
        if cw <= wf && ch <= hf {
            let top = rng.random_range(0.0..=(hf - ch));
            let left = rng.random_range(0.0..=(wf - cw));
            return (top, left, ch, cw);
        }
    }
    (0.0, 0.0, hf, wf)
}

fn factor(rng: &mut SeededRng, strength: f32) -> f32 {
    if strength > 0.0 {
        rng.random_range((1.0 - strength).max(0.0)..=(1.0 + strength))
    } else {
        1.0
    }
}

fn gray(img: &[f32], i: usize, hw: usize) -> f32 {
    0.299 * img[i] + 0.587 * img[hw + i] + 0.114 * img[2 * hw + i]
}

fn gray_mean(img: &[f32], c: usize, hw: usize) -> f32 {
    if c == 3 {
        (0..hw).map(|i| gray(img, i, hw)).sum::<f32>() / hw as f32
    } else {
        img.iter().sum::<f32>() / img.len() as f32
    }
}

/// Rotates the hue by `turns` of a full circle in YIQ space (keeps luma).
fn rotate_hue(img: &mut [f32], hw: usize, turns: f32) {
    let (sin, cos) = (turns * std::f32::consts::TAU).sin_cos();
    for i in 0..hw {
        let (r, g, b) = (img[i], img[hw + i], img[2 * hw + i]);
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        let ii = 0.596 * r - 0.274 * g - 0.322 * b;
        let q = 0.211 * r - 0.523 * g + 0.312 * b;
        let (i2, q2) = (ii * cos - q * sin, ii * sin + q * cos);
        img[i] = (y + 0.956 * i2 + 0.621 * q2).clamp(0.0, 1.0);
        img[hw + i] = (y - 0.272 * i2 - 0.647 * q2).clamp(0.0, 1.0);
        img[2 * hw + i] = (y - 1.106 * i2 + 1.703 * q2).clamp(0.0, 1.0);
    }
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut SeededRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
