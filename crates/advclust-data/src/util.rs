//! Small internal helpers: capped file reading with path-carrying errors,
//! strict multi-member gzip decoding, and a deterministic scoped-thread
//! parallel loop.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::bufread::GzDecoder;

use crate::{DataError, MAX_FILE_BYTES};

/// Reads a whole file, mapping errors to [`DataError`] with the path.
///
/// Refuses files over [`MAX_FILE_BYTES`] with [`DataError::TooLarge`]: by
/// their metadata length before reading, and by stopping after
/// `MAX_FILE_BYTES + 1` bytes for files whose length is not known up front.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let cap = MAX_FILE_BYTES as u64;
    let announced = file.metadata().map_or(0, |m| m.len());
    if announced > cap {
        return Err(DataError::too_large(
            path,
            "file length (bytes)",
            announced.into(),
            cap.into(),
        ));
    }
    // `announced <= MAX_FILE_BYTES`, which fits in usize.
    let mut out = Vec::with_capacity(announced as usize);
    file.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| DataError::io(path, e))?;
    if out.len() as u64 > cap {
        return Err(DataError::too_large(
            path,
            "file length (bytes)",
            out.len() as u128,
            cap.into(),
        ));
    }
    Ok(out)
}

/// True if `bytes` start with the gzip magic `1f 8b`.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// The payload of the I/O error [`MultiGz`] returns for stray bytes after
/// the last member.
#[derive(Debug)]
struct TrailingGarbage {
    offset: usize,
    len: usize,
}

impl std::fmt::Display for TrailingGarbage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes of trailing garbage at {}",
            self.len, self.offset
        )
    }
}

impl std::error::Error for TrailingGarbage {}

/// Inflates every member of a gzip file held in memory, in order (what
/// `zcat` and `flate2::read::MultiGzDecoder` produce), but fails on bytes
/// after the last member that do not start another member, instead of
/// ignoring them. Corrupt, truncated or CRC-failing members are errors too.
pub(crate) struct MultiGz<'a> {
    total: usize,
    member: Option<GzDecoder<&'a [u8]>>,
}

impl<'a> MultiGz<'a> {
    /// A decoder over `bytes`, which should start with the gzip magic.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        MultiGz {
            total: bytes.len(),
            member: Some(GzDecoder::new(bytes)),
        }
    }
}

impl Read for MultiGz<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            match member.read(buf) {
                Ok(0) => {}
                Ok(k) => return Ok(k),
                Err(e) => {
                    self.member = None;
                    return Err(e);
                }
            }
            // The member ended (CRC and length checked); the bufread decoder
            // consumed exactly its bytes, so `rest` is what follows it.
            let Some(rest) = self.member.take().map(GzDecoder::into_inner) else {
                return Ok(0);
            };
            if rest.is_empty() {
                return Ok(0);
            }
            if !is_gzip(rest) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    TrailingGarbage {
                        offset: self.total - rest.len(),
                        len: rest.len(),
                    },
                ));
            }
            self.member = Some(GzDecoder::new(rest));
        }
    }
}

/// Maps an error of [`MultiGz`] (or of a reader wrapping it) for `path`:
/// trailing garbage to [`DataError::GzipTrailingGarbage`], anything else to
/// [`DataError::Gzip`].
pub(crate) fn gzip_error(path: &Path, e: io::Error) -> DataError {
    if let Some(t) = e
        .get_ref()
        .and_then(|x| x.downcast_ref::<TrailingGarbage>())
    {
        return DataError::GzipTrailingGarbage {
            path: path.to_path_buf(),
            offset: t.offset,
            len: t.len,
        };
    }
    DataError::Gzip {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Reads from `r` until `buf` is full or the input ends; returns the
/// number of bytes read.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A zero-filled `Vec<f32>` of `len` values, or an error (instead of an
/// abort) when the allocation fails. `what` describes the request.
pub(crate) fn try_zeroed_f32(
    len: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<f32>, DataError> {
    let mut v = try_with_capacity(len, what)?;
    v.resize(len, 0.0);
    Ok(v)
}

/// An empty `Vec` with room for `len` values, or an error (instead of an
/// abort) when the allocation fails. `what` describes the request.
pub(crate) fn try_with_capacity<T>(
    len: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<T>, DataError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|e| DataError::InvalidArgument(format!("{}: {e}", what())))?;
    Ok(v)
}

/// Lookup table from a byte to its `[0, 1]` value (`b / 255`).
pub(crate) fn u8_to_f32_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f32 / 255.0;
    }
    t
}

/// Number of worker threads for `items` units of work, given that spawning
/// is not worth it below `min_per_thread` items per thread.
pub(crate) fn thread_count(items: usize, min_per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_work = items / min_per_thread.max(1);
    cores.min(by_work).max(1)
}

/// Calls `f(i, item_i)` for every `item_len`-sized chunk of `out`, spread
/// over scoped threads in contiguous blocks. Each block stops at its first
/// error, and the error with the smallest item index is returned, so the
/// result does not depend on scheduling.
pub(crate) fn par_items<T, E, F>(
    out: &mut [T],
    item_len: usize,
    min_per_thread: usize,
    f: F,
) -> Result<(), E>
where
    T: Send,
    E: Send,
    F: Fn(usize, &mut [T]) -> Result<(), E> + Sync,
{
    if item_len == 0 || out.is_empty() {
        return Ok(());
    }
    let n = out.len() / item_len;
    let threads = thread_count(n, min_per_thread);
    if threads <= 1 {
        for (i, item) in out.chunks_mut(item_len).enumerate() {
            f(i, item)?;
        }
        return Ok(());
    }
    let per = n.div_ceil(threads);
    let f = &f;
    let results: Vec<Result<(), E>> = std::thread::scope(|s| {
        let handles: Vec<_> = out
            .chunks_mut(per * item_len)
            .enumerate()
            .map(|(t, block)| {
                s.spawn(move || {
                    for (j, item) in block.chunks_mut(item_len).enumerate() {
                        f(t * per + j, item)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.into_iter().collect()
}
