//! The one save / load path of every model directory: a JSON description and burnpack weights,
//! each written to a temporary file and renamed into place, so a crash never leaves a
//! half-written file under the final name.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ModelError, Result};

/// File name of a saved model's weights (burnpack) inside its directory.
pub const WEIGHTS_FILE: &str = "model.bpk";
/// File name of a saved model's description (JSON) inside its directory.
pub const DESCRIPTION_FILE: &str = "model.json";
/// Largest description file read (a description is a few kB; this bounds a hostile file).
pub const MAX_DESCRIPTION_BYTES: u64 = 16 << 20;
/// Largest weights file read (the CPU-sized victims are below 10 MB).
pub const MAX_WEIGHTS_BYTES: u64 = 1 << 30;

/// Writes `bytes` to `path` atomically ([`advclust_core::write_atomic`]: temporary file in the
/// same directory, synced, renamed), creating the directory first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    advclust_core::write_atomic(path, bytes).map_err(|e| ModelError::io(path, e))
}

/// Serialises `value` as pretty JSON (with a final newline) into `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| ModelError::Save(e.to_string()))?;
    write_atomic(path, (json + "\n").as_bytes())
}

/// Reads a file of at most `limit` bytes; a missing file is [`ModelError::MissingCheckpoint`].
pub fn read_file_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::MissingCheckpoint {
                path: PathBuf::from(path),
            });
        }
        Err(e) => return Err(ModelError::io(path, e)),
    };
    if meta.len() > limit {
        return Err(ModelError::CorruptCheckpoint {
            origin: path.display().to_string(),
            message: format!("{} bytes is more than the limit of {limit}", meta.len()),
        });
    }
    std::fs::read(path).map_err(|e| ModelError::io(path, e))
}

/// Reads and parses a JSON file (at most [`MAX_DESCRIPTION_BYTES`]); parse errors name the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = read_file_limited(path, MAX_DESCRIPTION_BYTES)?;
    parse_json(&bytes, &path.display().to_string())
}

/// Parses JSON held in memory; `origin` names it in errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], origin: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ModelError::BadDescription {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// The burnpack bytes of a module's weights (parameters and BatchNorm statistics).
pub fn weights_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| ModelError::Save(e.to_string()))?;
    Ok(bytes[..].to_vec())
}

/// Saves a model directory: `description` as [`DESCRIPTION_FILE`] and the module's weights as
/// [`WEIGHTS_FILE`], both atomically (weights first, so a description never points at
/// weights that were not written).
pub fn save_model_dir<M: Module, D: Serialize>(
    dir: &Path,
    description: &D,
    model: &M,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    write_atomic(&dir.join(WEIGHTS_FILE), &weights_bytes(model)?)?;
    write_json(&dir.join(DESCRIPTION_FILE), description)
}

/// Reads a model directory's description text and weights bytes (bounded sizes).
pub fn read_model_dir(dir: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let json = read_file_limited(&dir.join(DESCRIPTION_FILE), MAX_DESCRIPTION_BYTES)?;
    let weights = read_file_limited(&dir.join(WEIGHTS_FILE), MAX_WEIGHTS_BYTES)?;
    Ok((json, weights))
}

/// Loads burnpack `weights` into `model`'s architecture; a truncated or foreign file is
/// [`ModelError::CorruptCheckpoint`], weights of another shape [`ModelError::ArchitectureMismatch`].
pub fn load_weights<M: Module>(model: M, weights: Vec<u8>, origin: &str) -> Result<M> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights)).map_err(|e| {
        ModelError::CorruptCheckpoint {
            origin: origin.to_string(),
            message: record_message(e),
        }
    })?;
    model.try_load_record(record).map_err(|e| match e {
        RecordError::Validation(message) => ModelError::ArchitectureMismatch {
            origin: origin.to_string(),
            message,
        },
        RecordError::Io(message) => ModelError::CorruptCheckpoint {
            origin: origin.to_string(),
            message,
        },
    })
}

fn record_message(e: RecordError) -> String {
    match e {
        RecordError::Io(m) | RecordError::Validation(m) => m,
    }
}
