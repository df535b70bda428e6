//! Files that are never half-written. Everything advclust saves (generators, victims, reports,
//! figures, checkpoints) goes through [`write_atomic`]: the bytes are written to a temporary
//! file in the destination's directory, synced to disk, and renamed over the destination, and
//! the directory is synced so the rename itself survives a crash. A reader therefore sees
//! either the old file or the new one, never a mix or a truncated file, whatever kills the
//! writer.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary name [`write_atomic`] writes `path`'s bytes to before the rename: a hidden
/// file beside `path`, unique to this process and thread.
pub fn staging_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    dir.join(format!(".{name}.tmp-{}-{thread}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (temporary file, `fsync`, rename, directory `fsync`);
/// the parent directory must exist. On an error the temporary file is removed and `path` is
/// untouched.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("advclust-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("report.json");
/// advclust_core::write_atomic(&path, b"{}").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"{}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = staging_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new("")))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file of at most `limit` bytes. A larger file is an error of kind
/// [`io::ErrorKind::InvalidData`] before anything is read, so a hostile file cannot make the
/// reader allocate more than `limit`.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes is more than the limit of {limit}"),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // `take` also bounds a file that grows while it is read.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than the limit of {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// The copy of a directory [`replace_dir`] keeps aside while it swaps a new one in.
fn aside_path(dir: &Path) -> PathBuf {
    dir.with_extension("old")
}

/// Replaces directory `dir` by one holding exactly `files` (name, bytes), as one step: the
/// files are written and synced into a temporary sibling, the old `dir` is renamed aside, the
/// new one renamed into place, and only then is the old one removed. A kill at any moment
/// leaves a complete old or new directory, which [`complete_dir`] finds.
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8])]) -> io::Result<()> {
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    for (name, bytes) in files {
        let mut file = File::create(tmp.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    sync_dir(&tmp)?;
    let aside = aside_path(dir);
    if aside.exists() {
        fs::remove_dir_all(&aside)?;
    }
    if dir.exists() {
        fs::rename(dir, &aside)?;
    }
    fs::rename(&tmp, dir)?;
    sync_dir(dir.parent().unwrap_or(Path::new("")))?;
    if aside.exists() {
        fs::remove_dir_all(&aside)?;
    }
    Ok(())
}

/// The newest complete directory [`replace_dir`] left at `dir`: `dir` itself when it holds
/// every file of `required`, else the copy set aside by a swap that was cut short, else none.
pub fn complete_dir(dir: &Path, required: &[&str]) -> Option<PathBuf> {
    [dir.to_path_buf(), aside_path(dir)]
        .into_iter()
        .find(|d| required.iter().all(|f| d.join(f).is_file()))
}

/// Removes what [`replace_dir`] wrote at `dir` (the directory, its aside copy and this
/// process's temporary), ignoring what is not there.
pub fn remove_dir_copies(dir: &Path) -> io::Result<()> {
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    for d in [dir.to_path_buf(), aside_path(dir), tmp] {
        match fs::remove_dir_all(&d) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Syncs a directory so that renames into it are durable (a no-op where directories cannot be
/// opened, as on Windows).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_directory_is_complete_old_or_new() {
        let root = std::env::temp_dir().join(format!("advclust-dirs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let dir = root.join("checkpoint");
        assert!(complete_dir(&dir, &["a", "b"]).is_none());
        replace_dir(&dir, &[("a", b"1"), ("b", b"1")]).unwrap();
        replace_dir(&dir, &[("a", b"2"), ("b", b"2")]).unwrap();
        assert_eq!(complete_dir(&dir, &["a", "b"]), Some(dir.clone()));
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"2");
        // A swap cut short after the old copy went aside: the aside copy is found.
        fs::rename(&dir, aside_path(&dir)).unwrap();
        assert_eq!(complete_dir(&dir, &["a", "b"]), Some(aside_path(&dir)));
        // An incomplete new copy is passed over.
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a"), b"3").unwrap();
        assert_eq!(complete_dir(&dir, &["a", "b"]), Some(aside_path(&dir)));
        remove_dir_copies(&dir).unwrap();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("advclust-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // A destination that is a directory fails, and the old content stays.
        let sub = dir.join("sub");
        fs::create_dir_all(&sub).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        assert!(sub.is_dir());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }
}
