//! The list of known failures: bugs found and filed but not fixed yet, reported and saved by a
//! run but not failing it.
//!
//! One entry a line, `<target> <text>`: a failure of `<target>` (or of any target for `*`)
//! whose description contains `<text>` is known. `#` starts a comment.

use std::path::Path;

use crate::{FuzzError, Result};

/// Known failures.
#[derive(Debug, Clone, Default)]
pub struct KnownList {
    entries: Vec<(String, String)>,
}

impl KnownList {
    /// Parses the list's text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (target, needle) = line.split_once(char::is_whitespace).ok_or_else(|| {
                FuzzError::Usage(format!(
                    "known list line {}: expected `<target> <text>`",
                    n + 1
                ))
            })?;
            entries.push((target.to_string(), needle.trim().to_string()));
        }
        Ok(KnownList { entries })
    }

    /// Reads and parses a list file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| FuzzError::io(path, e))?;
        Self::parse(&text)
    }

    /// True when a failure of `target` described as `description` is known.
    pub fn matches(&self, target: &str, description: &str) -> bool {
        self.entries
            .iter()
            .any(|(t, needle)| (t == "*" || t == target) && description.contains(needle.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_by_target_and_text() {
        let k = KnownList::parse("# c\nidx-images index out of bounds\n* slow: # any\n").unwrap();
        assert_eq!(k.len(), 2);
        assert!(k.matches("idx-images", "panic: index out of bounds at x.rs:1"));
        assert!(!k.matches("cifar", "panic: index out of bounds"));
        assert!(k.matches("cifar", "slow: 2000 ms"));
        assert!(KnownList::parse("lonely").is_err());
    }
}
