//! One consistent run per output directory.
//!
//! A [`RunDir`] is claimed before any work starts: `--out` is checked (not a file, creatable,
//! writable) and a directory that already holds a run is refused unless the caller forces it.
//! The run then writes into a hidden staging directory beside `--out`; [`RunDir::commit`]
//! swaps it into place with renames (the earlier run is moved aside first and removed only
//! after the swap), so `--out` always holds exactly one run, never files of two. A run that
//! fails goes to [`RunDir::fail`]: what it wrote (e.g. the partial generator) is kept in
//! `<out>.partial` and the earlier run in `--out` is untouched.

use std::path::{Path, PathBuf};

use advclust_gan::AttackError;

use crate::Error;

/// A claimed output directory; see the module documentation.
#[derive(Debug)]
pub struct RunDir {
    out: PathBuf,
    staging: PathBuf,
    done: bool,
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<parent>/.<name>.<tag>-<pid>`: a hidden sibling of `out`.
fn sibling(out: &Path, tag: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    out.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Removes the staging directories of runs into `out` whose process is gone (killed before
/// they committed or failed), where process liveness can be read (`/proc`).
fn remove_dead_stagings(out: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return;
    };
    let prefix = format!(".{}.staging-", name.to_string_lossy());
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = file_name.strip_prefix(&prefix)
            && pid.parse::<u32>().is_ok()
            && !proc.join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl RunDir {
    /// Claims `out` for a new run: an error if it is a file, cannot be created or written, or
    /// already holds files and `force` is false ([`Error::OutputOccupied`]).
    pub fn claim(out: &Path, force: bool) -> Result<Self, Error> {
        if out.as_os_str().is_empty() || out.file_name().is_none() {
            return Err(Error::InvalidArgument(format!(
                "--out {:?} must name a directory",
                out.display()
            )));
        }
        if out.exists() {
            if !out.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "--out {} is a file, not a directory",
                    out.display()
                )));
            }
            let occupied = std::fs::read_dir(out)
                .map_err(|e| io(out, e))?
                .next()
                .is_some();
            if occupied && !force {
                return Err(Error::OutputOccupied(out.to_path_buf()));
            }
        }
        remove_dead_stagings(out);
        let staging = sibling(out, "staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| io(&staging, e))?;
        // Writable: a probe file, written and removed.
        let probe = staging.join(".probe");
        std::fs::write(&probe, b"").map_err(|e| io(&probe, e))?;
        std::fs::remove_file(&probe).map_err(|e| io(&probe, e))?;
        Ok(RunDir {
            out: out.to_path_buf(),
            staging,
            done: false,
        })
    }

    /// Claims `out`, runs `body` with the staging directory to write into, and commits on
    /// success or [`RunDir::fail`]s on an error. `body` returns a message for the user; staging
    /// paths in it are rewritten to their final place.
    pub fn run(
        out: &Path,
        force: bool,
        body: impl FnOnce(&Path) -> Result<String, Error>,
    ) -> Result<String, Error> {
        let run = RunDir::claim(out, force)?;
        match body(run.path()) {
            Ok(message) => {
                let staged = run.path().display().to_string();
                let done = run.commit()?;
                Ok(message.replace(&staged, &done.display().to_string()))
            }
            Err(e) => Err(run.fail(e)),
        }
    }

    /// The directory a run into `out` keeps its training checkpoint in until it is committed:
    /// the hidden sibling `.<name>.checkpoint` (the same for every process, so that a killed
    /// run's successor finds it).
    pub fn checkpoint_dir(out: &Path) -> PathBuf {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        out.with_file_name(format!(".{name}.checkpoint"))
    }

    /// Where the run writes its files until [`RunDir::commit`].
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The directory the run will be in after [`RunDir::commit`].
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Moves the finished run into `--out`, replacing an earlier run as one step: the earlier
    /// directory is renamed aside, the new one renamed into place, then the old one removed.
    pub fn commit(mut self) -> Result<PathBuf, Error> {
        let aside = sibling(&self.out, "replaced");
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
        }
        if self.out.exists() {
            std::fs::rename(&self.out, &aside).map_err(|e| io(&self.out, e))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.out) {
            // Put the earlier run back.
            if aside.exists() {
                let _ = std::fs::rename(&aside, &self.out);
            }
            return Err(io(&self.out, e));
        }
        self.done = true;
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(|e| io(&aside, e))?;
        }
        if let Some(parent) = self.out.parent() {
            let _ = advclust_core::files::sync_dir(parent);
        }
        Ok(self.out.clone())
    }

    /// Ends a failed run: `--out` keeps whatever run it held; what this run wrote is moved to
    /// `<out>.partial` (replacing an older one), and an interrupted attack's `saved_to` is
    /// rewritten to point there. Returns the error to report.
    pub fn fail(mut self, mut error: Error) -> Error {
        self.done = true;
        let partial = self.out.with_file_name(format!(
            "{}.partial",
            self.out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let wrote = std::fs::read_dir(&self.staging)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        let kept = wrote
            && (!partial.exists() || std::fs::remove_dir_all(&partial).is_ok())
            && std::fs::rename(&self.staging, &partial).is_ok();
        if !kept {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        if let Error::Attack(AttackError::Interrupted { saved_to, .. }) = &mut error {
            *saved_to = match saved_to.take() {
                Some(p) if kept => p
                    .strip_prefix(&self.staging)
                    .ok()
                    .map(|rest| partial.join(rest)),
                _ => None,
            };
        }
        error
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("advclust-rundir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_run_replaces_only_when_forced_and_never_mixes() {
        let root = temp("replace");
        let out = root.join("run");
        let first = RunDir::claim(&out, false).unwrap();
        std::fs::write(first.path().join("a.json"), "1").unwrap();
        std::fs::write(first.path().join("old-only.png"), "x").unwrap();
        first.commit().unwrap();
        assert!(matches!(
            RunDir::claim(&out, false),
            Err(Error::OutputOccupied(_))
        ));
        let second = RunDir::claim(&out, true).unwrap();
        std::fs::write(second.path().join("a.json"), "2").unwrap();
        // Until the commit, the first run is intact.
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "1");
        second.commit().unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "2");
        assert!(
            !out.join("old-only.png").exists(),
            "no file of the earlier run"
        );
        // Only `run` is left in the parent: no staging or replaced directory.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_failed_run_leaves_the_earlier_one_and_keeps_its_partial_output() {
        let root = temp("fail");
        let out = root.join("run");
        let first = RunDir::claim(&out, false).unwrap();
        std::fs::write(first.path().join("a.json"), "good").unwrap();
        first.commit().unwrap();
        let second = RunDir::claim(&out, true).unwrap();
        std::fs::write(second.path().join("a.json"), "partial").unwrap();
        let e = second.fail(Error::InvalidArgument("stopped".into()));
        assert!(e.to_string().contains("stopped"));
        assert_eq!(std::fs::read_to_string(out.join("a.json")).unwrap(), "good");
        assert_eq!(
            std::fs::read_to_string(root.join("run.partial/a.json")).unwrap(),
            "partial"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bad_outputs_are_refused_before_any_work() {
        let root = temp("bad");
        let file = root.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            RunDir::claim(&file, true),
            Err(Error::InvalidArgument(_))
        ));
        assert!(RunDir::claim(&file.join("below-a-file"), false).is_err());
        // A dropped (abandoned) claim leaves nothing behind.
        drop(RunDir::claim(&root.join("run"), false).unwrap());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
