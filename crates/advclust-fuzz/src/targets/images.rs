//! Class-per-folder image trees of `advclust-data` (PNG, JPEG, PGM/PPM, BMP decoding).
//!
//! An input is a flags part (the extensions of the two files, the colour mode) and one or two
//! image files: the first goes into class folder `a`, the second, when not empty, into `b`.

use std::io::Cursor;

use advclust_data::{ColorMode, IMAGE_EXTENSIONS, ImageFolder};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};

use super::data::{Seeds, check_dataset};
use super::{Outcome, ScratchDir, Setup, Target, TargetInfo, check};
use crate::Result;
use crate::mutator::{Layout, PartKind, parts};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("in-memory encode");
    out.into_inner()
}

fn ext_index(ext: &str) -> u8 {
    IMAGE_EXTENSIONS
        .iter()
        .position(|e| *e == ext)
        .expect("a known extension") as u8
}

/// Seeds: tiny images of every format, alone and in pairs (same size, other size).
pub fn seeds() -> Seeds {
    let gray = DynamicImage::ImageLuma8(ImageBuffer::from_fn(4, 4, |x, y| {
        Luma([(x * 60 + y * 5) as u8])
    }));
    let rgb = DynamicImage::ImageRgb8(ImageBuffer::from_fn(4, 4, |x, y| {
        Rgb([(x * 60) as u8, (y * 60) as u8, 128])
    }));
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(4, 4, |x, y| {
        Rgba([(x * 60) as u8, (y * 60) as u8, 7, 200])
    }));
    let gray16 = DynamicImage::ImageLuma16(ImageBuffer::from_fn(4, 4, |x, y| {
        Luma([(x * 16000 + y) as u16])
    }));
    let big_gray = DynamicImage::ImageLuma8(ImageBuffer::from_fn(8, 8, |x, y| {
        Luma([(x * 30 + y * 3) as u8])
    }));
    let png = encode(&gray, ImageFormat::Png);
    let pgm = encode(&gray, ImageFormat::Pnm);
    let jpg = encode(&rgb, ImageFormat::Jpeg);
    let pgm_ascii = b"P2\n4 4\n255\n0 10 20 30\n40 50 60 70\n80 90 100 110\n120 130 140 255\n";
    let one = |flags: [u8; 3], a: Vec<u8>, b: Vec<u8>| parts::join(&[flags.to_vec(), a, b]);
    let (fpng, fjpg, fpgm, fbmp) = (
        ext_index("png"),
        ext_index("jpg"),
        ext_index("pgm"),
        ext_index("bmp"),
    );
    vec![
        (
            "png-gray.bin".into(),
            one([fpng, fpng, 0], png.clone(), vec![]),
        ),
        (
            "png-rgb.bin".into(),
            one([fpng, fpng, 2], encode(&rgb, ImageFormat::Png), vec![]),
        ),
        (
            "png-rgba.bin".into(),
            one([fpng, fpng, 0], encode(&rgba, ImageFormat::Png), vec![]),
        ),
        (
            "png-gray16.bin".into(),
            one([fpng, fpng, 1], encode(&gray16, ImageFormat::Png), vec![]),
        ),
        (
            "jpeg-rgb.bin".into(),
            one([fjpg, fjpg, 0], jpg.clone(), vec![]),
        ),
        (
            "jpeg-gray-8x8.bin".into(),
            one(
                [fjpg, fjpg, 1],
                encode(&big_gray, ImageFormat::Jpeg),
                vec![],
            ),
        ),
        (
            "pgm-binary.bin".into(),
            one([fpgm, fpgm, 0], pgm.clone(), vec![]),
        ),
        (
            "pgm-ascii.bin".into(),
            one([fpgm, fpgm, 0], pgm_ascii.to_vec(), vec![]),
        ),
        (
            "ppm-rgb.bin".into(),
            one(
                [ext_index("ppm"), fpng, 0],
                encode(&rgb, ImageFormat::Pnm),
                vec![],
            ),
        ),
        (
            "bmp-rgb.bin".into(),
            one([fbmp, fbmp, 2], encode(&rgb, ImageFormat::Bmp), vec![]),
        ),
        (
            "pair-png-pgm.bin".into(),
            one([fpng, fpgm, 0], png.clone(), pgm),
        ),
        (
            "pair-png-jpeg.bin".into(),
            one([fpng, fjpg, 2], png.clone(), jpg),
        ),
        (
            "pair-other-sizes.bin".into(),
            one([fpng, fpng, 0], png, encode(&big_gray, ImageFormat::Png)),
        ),
    ]
}

/// Recomputes the CRC of every complete chunk of a PNG file, so that mutants get past the
/// checksum to the decoder's header and data handling.
pub fn fix_png_crcs(png: &mut [u8]) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !png.starts_with(SIGNATURE) {
        return;
    }
    let mut at = SIGNATURE.len();
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else {
            return;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&png[at + 4..end]);
        png[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

/// The parts of an input (files with PNG checksums fixed unless asked not to), the two
/// files' extensions and the colour mode.
fn prepare(input: &[u8]) -> (Vec<Vec<u8>>, [&'static str; 2], ColorMode) {
    let mut p = parts::split(input, 3);
    let flag = |p: &[Vec<u8>], i: usize| p[0].get(i).copied().unwrap_or(0) as usize;
    let ext = |i: usize| IMAGE_EXTENSIONS[flag(&p, i) % IMAGE_EXTENSIONS.len()];
    let ext = [ext(0), ext(1)];
    // Flags byte 2: colour mode in the low bits; bit 7 keeps PNG checksums as they are.
    let color = [ColorMode::Auto, ColorMode::Gray, ColorMode::Rgb][(flag(&p, 2) & 0x7f) % 3];
    if flag(&p, 2) & 0x80 == 0 {
        fix_png_crcs(&mut p[1]);
        fix_png_crcs(&mut p[2]);
    }
    (p, ext, color)
}

struct ImageFolderTarget {
    dir: ScratchDir,
}

impl Target for ImageFolderTarget {
    fn name(&self) -> &'static str {
        "image-folder"
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let (p, ext, color) = prepare(input);
        let root = self.dir.path().join("tree");
        let _ = std::fs::remove_dir_all(&root);
        self.dir.write(&format!("tree/a/0.{}", ext[0]), &p[1]);
        let files = if p[2].is_empty() {
            1
        } else {
            self.dir.write(&format!("tree/b/0.{}", ext[1]), &p[2]);
            2
        };
        match ImageFolder::new(&root).color(color).load() {
            Ok(ds) => check_dataset(&ds).and(check(
                ds.len() == files
                    && ds.num_classes() == files
                    && matches!(ds.channels(), 1 | 3)
                    && ds.height() > 0
                    && ds.width() > 0,
                || format!("{files} image file(s) gave dims {:?}", ds.dims()),
            )),
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }
}

/// `ImageFolder::load` on a tree of one or two mutated images.
pub const IMAGE_FOLDER: TargetInfo = TargetInfo {
    name: "image-folder",
    corpus: "image-folder",
    layout: Layout::Parts(&[PartKind::Fixed, PartKind::Bytes, PartKind::Bytes]),
    max_len: 1 << 15,
    ci_iterations: 180_000,
    about: "image folders: PNG (8/16-bit, RGBA), JPEG, PGM (binary and ASCII), PPM, BMP",
    build: |_: &Setup| -> Result<Box<dyn Target>> {
        Ok(Box::new(ImageFolderTarget {
            dir: ScratchDir::new("image-folder")?,
        }))
    },
};
