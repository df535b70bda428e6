//! The committed seed corpus: loading a target's inputs, and writing every corpus anew from the
//! generators (`advclust-fuzz --write-corpus`), which use the owning crates' own encoders and
//! savers so that the seeds are valid inputs of the parsers under test.

use std::path::{Path, PathBuf};

use crate::targets::data::{self, Seeds};
use crate::targets::{defense, http, images, saved_seeds};
use crate::{FuzzError, Result};

/// The corpus root inside the source tree.
pub fn default_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// The regressions root inside the source tree (inputs of bugs found, one folder a target).
pub fn regressions_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// The files of `dir`, sorted by name, with their bytes (hidden files skipped).
pub fn load(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| FuzzError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).map_err(|e| FuzzError::io(&p, e))?;
            Ok((p, bytes))
        })
        .collect()
}

/// Every corpus folder and its seeds, freshly generated (trains a tiny attack: seconds).
pub fn generate() -> Result<Vec<(&'static str, Seeds)>> {
    let attack = saved_seeds::attack_seeds()?;
    Ok(vec![
        ("idx-images", data::idx_images_seeds()),
        ("idx-labels", data::idx_labels_seeds()),
        ("idx-mnist-gz", data::idx_mnist_seeds()),
        ("cifar", data::cifar_seeds()),
        ("stl", data::stl_seeds()),
        ("image-folder", images::seeds()),
        ("saved-attack", attack.containers),
        ("saved-attack-json", attack.jsons),
        ("report", attack.reports),
        ("saved-victim", saved_seeds::victim_seeds()?),
        ("ssd-detector", defense::ssd_seeds()?),
        ("http-infer-request", http::request_seeds()),
        ("http-infer-response", http::response_seeds()),
        ("http-model-metadata", http::metadata_seeds()),
    ])
}

/// Writes the generated corpora under `root`, replacing each folder's contents; returns the
/// number of files and bytes written.
pub fn write_all(root: &Path) -> Result<(usize, usize)> {
    let mut files = 0;
    let mut bytes = 0;
    for (name, seeds) in generate()? {
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| FuzzError::io(&dir, e))?;
        for (file, content) in seeds {
            let p = dir.join(file);
            std::fs::write(&p, &content).map_err(|e| FuzzError::io(&p, e))?;
            files += 1;
            bytes += content.len();
        }
    }
    Ok((files, bytes))
}
