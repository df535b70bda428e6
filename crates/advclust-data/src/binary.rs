//! Fixed-record binary formats: CIFAR-10, CIFAR-100 and STL-10.

use std::path::Path;

use crate::idx::{Split, labels_in_range};
use crate::util::{read_file, u8_to_f32_table};
use crate::{DataError, Dataset, MAX_PIXEL_VALUES};

/// CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100 fine class names (`fine_label_names.txt`), in label order.
pub const CIFAR100_FINE_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// CIFAR-100 coarse class (superclass) names (`coarse_label_names.txt`).
pub const CIFAR100_COARSE_CLASSES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

/// STL-10 class names (`class_names.txt`), in label order (file labels
/// 1..=10 map to 0..=9).
pub const STL10_CLASSES: [&str; 10] = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
];

/// Which CIFAR-100 label to use as the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

const CIFAR_PIXELS: usize = 3 * 32 * 32;
const STL_SIDE: usize = 96;
const STL_PIXELS: usize = 3 * STL_SIDE * STL_SIDE;

fn record_count(len: usize, record: usize, path: &Path) -> Result<usize, DataError> {
    if len == 0 || !len.is_multiple_of(record) {
        return Err(DataError::RecordSize {
            path: path.to_path_buf(),
            len,
            record,
        });
    }
    Ok(len / record)
}

/// Reads CIFAR-style records `[label bytes][3072 pixel bytes]` from several
/// files; `pick` is the index of the label byte to use.
fn load_cifar_records<P: AsRef<Path>>(
    files: &[P],
    label_bytes: usize,
    pick: usize,
    class_names: &[&str],
) -> Result<Dataset, DataError> {
    if files.is_empty() {
        return Err(DataError::InvalidArgument("no CIFAR file given".into()));
    }
    let record = label_bytes + CIFAR_PIXELS;
    let t = u8_to_f32_table();
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let n = record_count(bytes.len(), record, path)?;
        // n * CIFAR_PIXELS < bytes.len(), so only the running total can
        // pass the limit.
        let total = images.len() as u128 + (n * CIFAR_PIXELS) as u128;
        if total > MAX_PIXEL_VALUES as u128 {
            return Err(DataError::too_large(
                path,
                "pixel values of the CIFAR files so far",
                total,
                MAX_PIXEL_VALUES as u128,
            ));
        }
        images.reserve_exact(n * CIFAR_PIXELS);
        let mut raw = Vec::with_capacity(n);
        for rec in bytes.chunks_exact(record) {
            raw.push(rec[pick]);
            // Pixels are already channel-major (R, G, B planes), rows first.
            images.extend(rec[label_bytes..].iter().map(|&b| t[b as usize]));
        }
        labels.extend(labels_in_range(&raw, class_names.len(), path)?);
    }
    let n = labels.len();
    Dataset::new(
        images,
        [n, 3, 32, 32],
        labels,
        class_names.iter().map(|s| s.to_string()).collect(),
    )
}

/// Loads CIFAR-10 binary batches (records of 1 label byte + 3,072 pixel
/// bytes), concatenated in the order given.
///
/// Errors if a file is missing, empty or not a whole number of 3,073-byte
/// records, or holds a label above 9; [`DataError::TooLarge`] if a file is
/// over [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES) or all files together
/// hold more than [`MAX_PIXEL_VALUES`] pixel values.
pub fn load_cifar10_bin<P: AsRef<Path>>(files: &[P]) -> Result<Dataset, DataError> {
    load_cifar_records(files, 1, 0, &CIFAR10_CLASSES)
}

/// Loads CIFAR-10 from the extracted `cifar-10-batches-bin` folder:
/// `data_batch_1.bin`..`data_batch_5.bin` (train) or `test_batch.bin`.
pub fn load_cifar10_dir(dir: impl AsRef<Path>, split: Split) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    let files: Vec<_> = match split {
        Split::Train => (1..=5)
            .map(|i| dir.join(format!("data_batch_{i}.bin")))
            .collect(),
        Split::Test => vec![dir.join("test_batch.bin")],
    };
    load_cifar10_bin(&files)
}

/// Loads CIFAR-100 binary files (records of 2 label bytes, coarse then
/// fine, + 3,072 pixel bytes), using the fine or coarse label.
pub fn load_cifar100_bin<P: AsRef<Path>>(
    files: &[P],
    labels: Cifar100Labels,
) -> Result<Dataset, DataError> {
    match labels {
        Cifar100Labels::Fine => load_cifar_records(files, 2, 1, &CIFAR100_FINE_CLASSES),
        Cifar100Labels::Coarse => load_cifar_records(files, 2, 0, &CIFAR100_COARSE_CLASSES),
    }
}

/// Loads CIFAR-100 from the extracted `cifar-100-binary` folder
/// (`train.bin` or `test.bin`).
pub fn load_cifar100_dir(
    dir: impl AsRef<Path>,
    split: Split,
    labels: Cifar100Labels,
) -> Result<Dataset, DataError> {
    let name = match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    };
    load_cifar100_bin(&[dir.as_ref().join(name)], labels)
}

/// Loads STL-10 binary images (`*_X.bin`) with their labels (`*_y.bin`).
///
/// Each image is 3 x 96 x 96 bytes, channel-major and, within a channel,
/// column-major; it is transposed to the usual row-major CHW layout. Labels
/// are stored 1..=10 and become 0..=9 ([`STL10_CLASSES`]). Files over
/// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES), or images over
/// [`MAX_PIXEL_VALUES`] values, are a [`DataError::TooLarge`].
pub fn load_stl10_bin(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
) -> Result<Dataset, DataError> {
    let images_path = images_path.as_ref();
    let labels_path = labels_path.as_ref();
    let bytes = read_file(images_path)?;
    let n = record_count(bytes.len(), STL_PIXELS, images_path)?;
    if bytes.len() > MAX_PIXEL_VALUES {
        return Err(DataError::too_large(
            images_path,
            "STL-10 pixel values",
            bytes.len() as u128,
            MAX_PIXEL_VALUES as u128,
        ));
    }
    let raw = read_file(labels_path)?;
    if raw.len() != n {
        return Err(DataError::CountMismatch {
            path: labels_path.to_path_buf(),
            images: n,
            labels: raw.len(),
        });
    }
    let labels = raw
        .iter()
        .map(|&l| match l {
            1..=10 => Ok(l as usize - 1),
            _ => Err(DataError::LabelOutOfRange {
                path: labels_path.to_path_buf(),
                label: l as usize,
                num_classes: 10,
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t = u8_to_f32_table();
    let mut images = vec![0f32; n * STL_PIXELS];
    let side = STL_SIDE;
    for (dst, src) in images
        .chunks_exact_mut(side * side)
        .zip(bytes.chunks_exact(side * side))
    {
        // src[col * 96 + row] -> dst[row * 96 + col]
        for (col, src_col) in src.chunks_exact(side).enumerate() {
            for (row, &b) in src_col.iter().enumerate() {
                dst[row * side + col] = t[b as usize];
            }
        }
    }
    Dataset::new(
        images,
        [n, 3, side, side],
        labels,
        STL10_CLASSES.iter().map(|s| s.to_string()).collect(),
    )
}

/// Loads STL-10 from the extracted `stl10_binary` folder: `train_X.bin` +
/// `train_y.bin` or `test_X.bin` + `test_y.bin`.
pub fn load_stl10_dir(dir: impl AsRef<Path>, split: Split) -> Result<Dataset, DataError> {
    let dir = dir.as_ref();
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    load_stl10_bin(
        dir.join(format!("{prefix}_X.bin")),
        dir.join(format!("{prefix}_y.bin")),
    )
}
