//! The access blocklist: `access.blacklist` in the node directory (Tahoe's format), re-read when it changes.
//!
//! One entry per line, `<storage index> <reason…>`; blank lines and `#`
//! comments are ignored. Reads of a listed file or directory fail with the reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::grid::uri::StorageIndex;

/// A blocklist file and its last-read contents.
#[derive(Debug)]
pub struct Blocklist {
    path: PathBuf,
    cached: Mutex<(Option<SystemTime>, HashMap<StorageIndex, String>)>,
}

/// Parses blocklist text; lines whose storage index is not valid base32 are reported and skipped.
pub fn parse(text: &str) -> HashMap<StorageIndex, String> {
    let mut out = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (si, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match si.parse::<StorageIndex>() {
            Ok(si) => {
                out.insert(si, reason.trim().to_string());
            }
            Err(_) => tracing::warn!(line = number + 1, "access.blacklist: not a storage index; line skipped"),
        }
    }
    out
}

impl Blocklist {
    /// A blocklist read from `path` (a missing file blocks nothing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Blocklist {
            path: path.into(),
            cached: Mutex::new((None, HashMap::new())),
        }
    }

    /// The reason `si` is blocked, if it is; re-reads the file when its modification time changed.
    pub fn reason(&self, si: StorageIndex) -> Option<String> {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != modified {
            let entries = match modified {
                Some(_) => std::fs::read_to_string(&self.path)
                    .map(|t| parse(&t))
                    .unwrap_or_default(),
                None => HashMap::new(),
            };
            *cached = (modified, entries);
        }
        cached.1.get(&si).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tahoe_format_and_rereads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.blacklist");
        let list = Blocklist::new(&path);
        let si: StorageIndex = "qb5igbhcc5esa6lwqorsy7e6am".parse().unwrap();
        assert_eq!(list.reason(si), None);
        std::fs::write(
            &path,
            "# comment\n\nqb5igbhcc5esa6lwqorsy7e6am   illegal content  \nnot-an-si x\n",
        )
        .unwrap();
        assert_eq!(list.reason(si).as_deref(), Some("illegal content"));
        // A later change (new mtime) is picked up.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(&path, "").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(list.reason(si), None);
    }
}
