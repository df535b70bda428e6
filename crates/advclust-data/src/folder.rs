//! Image files: class-per-folder trees (PNG, JPEG, PGM, ...), and the
//! layouts of the shared real datasets (Fashion-MNIST PNGs in official order,
//! CIFAR-10 JPEGs, Extended Yale B).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader};

use crate::binary::CIFAR10_CLASSES;
use crate::idx::{FASHION_MNIST_CLASSES, labels_in_range, read_idx_labels};
use crate::util::{par_items, read_file, u8_to_f32_table};
use crate::{DataError, Dataset, MAX_IMAGE_PIXELS, MAX_PIXEL_VALUES};

/// How many channels images are loaded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// 1 channel if the first image is grayscale (with or without alpha),
    /// 3 otherwise; later images are converted to that.
    #[default]
    Auto,
    /// 1 channel; colour images are converted by the `image` crate.
    Gray,
    /// 3 channels; grayscale images are replicated.
    Rgb,
}

/// File extensions [`ImageFolder`] accepts by default (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "pgm", "ppm", "pnm", "bmp"];

/// The result of [`ImageFolder::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderListing {
    /// Sorted class-folder names; class id `k` is `class_names[k]`.
    pub class_names: Vec<String>,
    /// Image files in load order.
    pub files: Vec<PathBuf>,
    /// Class id of each file.
    pub labels: Vec<usize>,
}

type FileFilter = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// A dataset stored as one sub-folder per class: `root/<class>/<image>`.
///
/// Class ids follow the sorted class-folder names (hidden folders, whose
/// name starts with `.`, are ignored); images within a class are taken in
/// sorted file-name order, so the result is deterministic. Files with other
/// extensions (e.g. `.txt`, `.pgm.bad`, `.info`) and loose files in `root`
/// are ignored. All images must have the same size. A class folder without
/// any image is an error.
///
/// ```no_run
/// use advclust_data::{ColorMode, ImageFolder};
/// let faces = ImageFolder::new("yaleb/CroppedYale")
///     .color(ColorMode::Gray)
///     .extensions(&["pgm"])
///     .filter(|p| !p.to_string_lossy().ends_with("_Ambient.pgm"))
///     .load()?;
/// # Ok::<(), advclust_data::DataError>(())
/// ```
pub struct ImageFolder {
    root: PathBuf,
    color: ColorMode,
    extensions: Vec<String>,
    filter: Option<FileFilter>,
}

impl std::fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolder")
            .field("root", &self.root)
            .field("color", &self.color)
            .field("extensions", &self.extensions)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl ImageFolder {
    /// A loader for `root` with [`ColorMode::Auto`] and [`IMAGE_EXTENSIONS`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageFolder {
            root: root.into(),
            color: ColorMode::Auto,
            extensions: IMAGE_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            filter: None,
        }
    }

    /// Sets the colour mode.
    pub fn color(mut self, color: ColorMode) -> Self {
        self.color = color;
        self
    }

    /// Replaces the accepted file extensions (without dot, case-insensitive).
    pub fn extensions(mut self, extensions: &[&str]) -> Self {
        self.extensions = extensions.iter().map(|s| s.to_ascii_lowercase()).collect();
        self
    }

    /// Keeps only image files for which `keep(path)` is true.
    pub fn filter(mut self, keep: impl Fn(&Path) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Box::new(keep));
        self
    }

    /// Lists the class names and the image files (with their class ids)
    /// that [`ImageFolder::load`] would decode, in load order.
    pub fn list(&self) -> Result<FolderListing, DataError> {
        let mut class_dirs: Vec<(String, PathBuf)> = Vec::new();
        for entry in read_dir(&self.root)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !name.starts_with('.') && path.is_dir() {
                class_dirs.push((name, path));
            }
        }
        if class_dirs.is_empty() {
            return Err(DataError::Empty {
                path: self.root.clone(),
                what: "no class folder",
            });
        }
        class_dirs.sort();
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, (_, dir)) in class_dirs.iter().enumerate() {
            let mut class_files: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
            for entry in read_dir(dir)? {
                let path = entry.path();
                let ext_ok = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| self.extensions.iter().any(|x| x.eq_ignore_ascii_case(e)));
                if ext_ok && path.is_file() && self.filter.as_ref().is_none_or(|keep| keep(&path)) {
                    class_files.push((entry.file_name(), path));
                }
            }
            if class_files.is_empty() {
                return Err(DataError::Empty {
                    path: dir.clone(),
                    what: "no image in class folder",
                });
            }
            class_files.sort();
            labels.resize(labels.len() + class_files.len(), label);
            files.extend(class_files.into_iter().map(|(_, p)| p));
        }
        Ok(FolderListing {
            class_names: class_dirs.into_iter().map(|(n, _)| n).collect(),
            files,
            labels,
        })
    }

    /// Lists and decodes the images (in parallel, order preserved).
    pub fn load(&self) -> Result<Dataset, DataError> {
        let l = self.list()?;
        load_image_files(&l.files, l.labels, l.class_names, self.color)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, DataError> {
    std::fs::read_dir(dir)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| DataError::io(dir, e))
}

/// Loads `root/<class>/<image>` with [`ImageFolder`] defaults and `color`.
pub fn load_image_folder(root: impl AsRef<Path>, color: ColorMode) -> Result<Dataset, DataError> {
    ImageFolder::new(root.as_ref()).color(color).load()
}

/// An image reader over `bytes` (format from the content, else from the
/// extension of `path`).
fn image_reader<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<ImageReader<Cursor<&'a [u8]>>, DataError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| decode_err(path, image::ImageError::IoError(e)))?;
    if reader.format().is_none()
        && let Ok(f) = ImageFormat::from_path(path)
    {
        reader.set_format(f);
    }
    Ok(reader)
}

fn decode_err(path: &Path, source: image::ImageError) -> DataError {
    DataError::Decode {
        path: path.to_path_buf(),
        source,
    }
}

/// Decodes one image file (format from its content, else its extension).
///
/// Width and height are read from the header first: more than
/// [`MAX_IMAGE_PIXELS`] pixels is a [`DataError::TooLarge`], a zero side a
/// [`DataError::Layout`], and a size other than `expect` (when given) a
/// [`DataError::ImageSizeMismatch`], all before decoding.
fn decode(path: &Path, expect: Option<(usize, usize)>) -> Result<DynamicImage, DataError> {
    let bytes = read_file(path)?;
    let (w, h) = image_reader(&bytes, path)?
        .into_dimensions()
        .map_err(|e| decode_err(path, e))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(DataError::too_large(
            path,
            "image pixels (width x height)",
            pixels.into(),
            MAX_IMAGE_PIXELS.into(),
        ));
    }
    if w == 0 || h == 0 {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!("image is {w}x{h} (w x h)"),
        });
    }
    if let Some(expected) = expect {
        check_size(path, expected, (w as usize, h as usize))?;
    }
    let img = image_reader(&bytes, path)?
        .decode()
        .map_err(|e| decode_err(path, e))?;
    let found = (img.width() as usize, img.height() as usize);
    if let Some(expected) = expect {
        check_size(path, expected, found)?;
    } else if found != (w as usize, h as usize) {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!(
                "header says {w}x{h} but the decoded image is {}x{}",
                found.0, found.1
            ),
        });
    }
    Ok(img)
}

fn check_size(
    path: &Path,
    (expected_w, expected_h): (usize, usize),
    (found_w, found_h): (usize, usize),
) -> Result<(), DataError> {
    if (found_w, found_h) != (expected_w, expected_h) {
        return Err(DataError::ImageSizeMismatch {
            path: path.to_path_buf(),
            expected_w,
            expected_h,
            found_w,
            found_h,
        });
    }
    Ok(())
}

fn is_8bit(img: &DynamicImage) -> bool {
    matches!(
        img,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageRgb8(_)
            | DynamicImage::ImageRgba8(_)
    )
}

/// Writes `img` as CHW `[0, 1]` values with `c` channels into `out`.
fn write_chw(img: &DynamicImage, c: usize, out: &mut [f32], table: &[f32; 256]) {
    let hw = out.len() / c;
    if c == 1 {
        if is_8bit(img) {
            let g = img.to_luma8();
            out.iter_mut()
                .zip(g.as_raw())
                .for_each(|(o, &b)| *o = table[b as usize]);
        } else {
            out.copy_from_slice(img.to_luma32f().as_raw());
        }
        return;
    }
    let interleaved: Vec<f32> = if is_8bit(img) {
        img.to_rgb8()
            .as_raw()
            .iter()
            .map(|&b| table[b as usize])
            .collect()
    } else {
        img.to_rgb32f().into_raw()
    };
    for (p, px) in interleaved.chunks_exact(3).enumerate() {
        out[p] = px[0];
        out[hw + p] = px[1];
        out[2 * hw + p] = px[2];
    }
}

/// Decodes a list of image files into a dataset, in parallel with scoped
/// threads (the order of `paths` is kept). `labels[i]` is the class of
/// `paths[i]`.
///
/// The first image fixes the size (and, for [`ColorMode::Auto`], the
/// channel count); any image of another size is a
/// [`DataError::ImageSizeMismatch`]. An empty list is a [`DataError::Empty`]
/// error (without a path). Sizes are checked from each file's header before
/// it is decoded: an image over [`MAX_IMAGE_PIXELS`] pixels, a file over
/// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES), or more than
/// [`MAX_PIXEL_VALUES`] values in all, is a [`DataError::TooLarge`].
pub fn load_image_files(
    paths: &[PathBuf],
    labels: Vec<usize>,
    class_names: Vec<String>,
    color: ColorMode,
) -> Result<Dataset, DataError> {
    if paths.len() != labels.len() {
        return Err(DataError::InvalidArgument(format!(
            "{} labels for {} image files",
            labels.len(),
            paths.len()
        )));
    }
    let Some(first_path) = paths.first() else {
        return Err(DataError::Empty {
            path: PathBuf::new(),
            what: "no image file to load",
        });
    };
    let first = decode(first_path, None)?;
    let (w, h) = (first.width() as usize, first.height() as usize);
    let c = match color {
        ColorMode::Gray => 1,
        ColorMode::Rgb => 3,
        ColorMode::Auto if first.color().has_color() => 3,
        ColorMode::Auto => 1,
    };
    drop(first);
    // w * h <= MAX_IMAGE_PIXELS, so only the product with the file count
    // can be large; u128 holds it exactly.
    let image_len = c * h * w;
    let total = paths.len() as u128 * image_len as u128;
    if total > MAX_PIXEL_VALUES as u128 {
        return Err(DataError::too_large(
            first_path,
            "pixel values of the image files (files x channels x height x width)",
            total,
            MAX_PIXEL_VALUES as u128,
        ));
    }
    let table = u8_to_f32_table();
    let mut images = vec![0f32; total as usize];
    par_items(&mut images, image_len, 64, |i, out| {
        let img = decode(&paths[i], Some((w, h)))?;
        write_chw(&img, c, out, &table);
        Ok::<(), DataError>(())
    })?;
    Dataset::new(images, [paths.len(), c, h, w], labels, class_names)
}

/// Loads images stored by class and rank: image `i`, of class
/// `labels[i]`, is `dir/<class_dirs[labels[i]]>/<file_name(k)>` where `k`
/// is the number of earlier images with the same label. This rebuilds the
/// original order of datasets exported as "class folder / index within
/// class" (as the Fashion-MNIST PNGs in the shared data).
///
/// `class_names` gives the dataset's class names (same length as
/// `class_dirs`).
pub fn load_ranked_folder(
    dir: impl AsRef<Path>,
    class_dirs: &[&str],
    class_names: &[&str],
    labels: &[usize],
    file_name: impl Fn(usize) -> String,
    color: ColorMode,
) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    if class_dirs.len() != class_names.len() {
        return Err(DataError::InvalidArgument(format!(
            "{} class folders but {} class names",
            class_dirs.len(),
            class_names.len()
        )));
    }
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
        });
    }
    let mut rank = vec![0usize; class_dirs.len()];
    let mut paths = Vec::with_capacity(labels.len());
    for &l in labels {
        if l >= class_dirs.len() {
            return Err(DataError::InvalidArgument(format!(
                "label {l} out of range for {} class folders",
                class_dirs.len()
            )));
        }
        paths.push(dir.join(class_dirs[l]).join(file_name(rank[l])));
        rank[l] += 1;
    }
    if paths.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
            what: "no label, so no image to load",
        });
    }
    load_image_files(
        &paths,
        labels.to_vec(),
        class_names.iter().map(|s| s.to_string()).collect(),
        color,
    )
}

/// Loads Fashion-MNIST stored as `images_dir/<label>/NNNN.png` (label folders
/// `0`..`9`, `NNNN` = rank within the class, 4 digits) in the official order
/// given by the IDX label file `labels_path` (gzipped or raw), as 1-channel
/// images with the [`FASHION_MNIST_CLASSES`] names.
pub fn load_fashion_mnist_png(
    images_dir: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
) -> Result<Dataset, DataError> {
    let labels_path = labels_path.as_ref();
    let raw = read_idx_labels(labels_path)?;
    let labels = labels_in_range(&raw, FASHION_MNIST_CLASSES.len(), labels_path)?;
    let dirs = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    load_ranked_folder(
        images_dir,
        &dirs,
        &FASHION_MNIST_CLASSES,
        &labels,
        |k| format!("{k:04}.png"),
        ColorMode::Gray,
    )
}

/// The Fashion-MNIST test split from the shared-data layout:
/// `fashion_dir/fashion_mnist_images/test/<label>/NNNN.png` ordered by
/// `fashion_dir/t10k-labels-idx1-ubyte.gz` (10,000 images, 1 x 28 x 28).
pub fn load_fashion_mnist_png_test(fashion_dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let d = fashion_dir.as_ref();
    load_fashion_mnist_png(
        d.join("fashion_mnist_images").join("test"),
        d.join("t10k-labels-idx1-ubyte.gz"),
    )
}

/// Loads CIFAR-10 stored as `dir/<class>/<image>.jpg|png` with the ten
/// official class-folder names (alphabetical order = official ids), as
/// 3-channel images. The order is class by class, file-name order within a
/// class (not the official interleaved order): shuffle before taking subsets.
///
/// For the shared `cifar10-jpg/test` copy remember that it is JPEG quality
/// 75: the decoded JPEG is the clean image.
pub fn load_cifar10_folder(dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    let folder = ImageFolder::new(dir).color(ColorMode::Rgb);
    let l = folder.list()?;
    if l.class_names != CIFAR10_CLASSES {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: format!(
                "class folders {:?} are not the CIFAR-10 classes {CIFAR10_CLASSES:?}",
                l.class_names
            ),
        });
    }
    load_image_files(&l.files, l.labels, l.class_names, ColorMode::Rgb)
}

/// Loads the cropped Extended Yale B faces from `CroppedYale/` (one
/// `yaleBNN` folder per subject = class): the `*.pgm` images only, without
/// the `*_Ambient.pgm` ones (`*.pgm.bad` and `*.info` files are skipped as
/// non-images). On the standard distribution: 2,414 faces of 38 subjects,
/// 1 x 192 x 168.
pub fn load_yaleb(cropped_yale_dir: impl AsRef<Path>) -> Result<Dataset, DataError> {
    ImageFolder::new(cropped_yale_dir.as_ref())
        .color(ColorMode::Gray)
        .extensions(&["pgm"])
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("_Ambient.pgm"))
        })
        .load()
}
