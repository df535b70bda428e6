//! Checksum-verified, cached, atomic downloads.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{DataError, MAX_DOWNLOAD_BYTES};

/// A file to fetch over HTTP(S) into a cache folder, accepted only if its
/// SHA-256 matches.
///
/// [`VerifiedDownload::fetch`] returns the cached copy without touching the
/// network when it already has the right hash; otherwise it streams the body
/// into a temporary file in the cache folder while hashing it, and renames it
/// to `cache_dir/file_name` only if the hash matches, so the final path never
/// holds a partial or wrong file.
///
/// ```no_run
/// use advclust_data::VerifiedDownload;
/// let dl = VerifiedDownload::new(
///     "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
///     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
///     "t10k-labels-idx1-ubyte.gz",
/// );
/// let path = dl.fetch("data-cache")?;
/// let labels = advclust_data::read_idx_labels(path)?;
/// assert_eq!(labels.len(), 10_000);
/// # Ok::<(), advclust_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDownload {
    /// Where to fetch from (`http://` or `https://`).
    pub url: String,
    /// Expected SHA-256 of the file, 64 hex digits (any case).
    pub sha256: String,
    /// Name of the file in the cache folder (a plain name, no separator).
    pub file_name: String,
}

/// Connect timeout used by [`VerifiedDownload::fetch`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for any single read (a stalled transfer fails after this).
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex SHA-256 of a file's content (streamed).
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String, DataError> {
    let path = path.as_ref();
    let mut f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let k = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl VerifiedDownload {
    /// A download of `url`, expected to hash to `sha256`, cached as
    /// `file_name`.
    pub fn new(
        url: impl Into<String>,
        sha256: impl Into<String>,
        file_name: impl Into<String>,
    ) -> Self {
        VerifiedDownload {
            url: url.into(),
            sha256: sha256.into(),
            file_name: file_name.into(),
        }
    }

    fn validate(&self) -> Result<String, DataError> {
        let want = self.sha256.to_ascii_lowercase();
        if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DataError::InvalidArgument(format!(
                "sha256 must be 64 hex digits, got {:?}",
                self.sha256
            )));
        }
        let name = &self.file_name;
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\'])
            || name.contains('\0')
        {
            return Err(DataError::InvalidArgument(format!(
                "download file name must be a plain file name, got {name:?}"
            )));
        }
        Ok(want)
    }

    /// `cache_dir/file_name` (whether or not it exists).
    pub fn cached_path(&self, cache_dir: impl AsRef<Path>) -> PathBuf {
        cache_dir.as_ref().join(&self.file_name)
    }

    /// True if `cache_dir/file_name` exists with the expected hash.
    pub fn is_cached(&self, cache_dir: impl AsRef<Path>) -> Result<bool, DataError> {
        let want = self.validate()?;
        let path = self.cached_path(cache_dir);
        if !path.is_file() {
            return Ok(false);
        }
        Ok(sha256_file(&path)? == want)
    }

    /// Returns the path of a verified copy in `cache_dir` (created if
    /// needed), downloading it first unless a copy with the right hash is
    /// already there. A cached file with a wrong hash is replaced.
    ///
    /// Errors: [`DataError::HttpStatus`] for a non-2xx answer,
    /// [`DataError::Network`] when no answer or body could be had,
    /// [`DataError::ChecksumMismatch`] when the bytes hash differently (the
    /// final path is then left as it was and the temporary file removed),
    /// [`DataError::Io`] for local file errors, [`DataError::InvalidArgument`]
    /// for a malformed hash or file name, [`DataError::TooLarge`] when the
    /// server announces (`Content-Length`, checked before anything is
    /// written) or sends more than [`MAX_DOWNLOAD_BYTES`].
    pub fn fetch(&self, cache_dir: impl AsRef<Path>) -> Result<PathBuf, DataError> {
        let want = self.validate()?;
        let dir = cache_dir.as_ref();
        let final_path = self.cached_path(dir);
        if final_path.is_file() && sha256_file(&final_path)? == want {
            return Ok(final_path);
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;

        let net_err = |e: ureq::Error| match e {
            ureq::Error::StatusCode(status) => DataError::HttpStatus {
                url: self.url.clone(),
                status,
            },
            other => DataError::Network {
                url: self.url.clone(),
                source: Box::new(other),
            },
        };
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .build();
        let agent = ureq::Agent::new_with_config(config);
        let response = agent.get(&self.url).call().map_err(net_err)?;
        let too_large = |requested: u64| {
            DataError::too_large(
                &final_path,
                "download size (bytes)",
                requested.into(),
                MAX_DOWNLOAD_BYTES.into(),
            )
        };
        if let Some(len) = response.body().content_length()
            && len > MAX_DOWNLOAD_BYTES
        {
            return Err(too_large(len));
        }
        // One byte past the limit tells a too-long body from one that fits.
        let mut body = response
            .into_body()
            .into_reader()
            .take(MAX_DOWNLOAD_BYTES + 1);
        let mut received = 0u64;

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".{}.{}.{}.part",
            self.file_name,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut guard = TempGuard(Some(tmp.clone()));
        let mut file = File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let k = match body.read(&mut buf) {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(net_err(ureq::Error::Io(e))),
            };
            if k == 0 {
                break;
            }
            received += k as u64;
            if received > MAX_DOWNLOAD_BYTES {
                return Err(too_large(received));
            }
            hasher.update(&buf[..k]);
            file.write_all(&buf[..k])
                .map_err(|e| DataError::io(&tmp, e))?;
        }
        let actual = hex(&hasher.finalize());
        if actual != want {
            return Err(DataError::ChecksumMismatch {
                url: self.url.clone(),
                path: final_path,
                expected: want,
                actual,
            });
        }
        file.sync_all().map_err(|e| DataError::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &final_path).map_err(|e| DataError::io(&final_path, e))?;
        guard.0 = None;
        Ok(final_path)
    }
}
