//! Small internal helpers: file reading with path-carrying errors, gzip
//! detection, and a deterministic scoped-thread parallel loop.

use std::io::Read;
use std::path::Path;

use crate::DataError;

/// Reads a whole file, mapping errors to [`DataError`] with the path.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// If `bytes` start with the gzip magic `1f 8b`, inflates them; otherwise
/// returns them unchanged.
pub(crate) fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, DataError> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
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
