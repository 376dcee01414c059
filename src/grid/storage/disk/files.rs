//! Where a disk server's share files live, and which kind of container each holds.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::grid::storage::mutable_container;
use crate::grid::storage::{Error, ShareNum};
use crate::grid::uri::StorageIndex;

/// The directory of a storage index's shares under `base` (`<2 chars>/<SI>`).
pub(super) fn share_dir(base: &Path, si: StorageIndex) -> PathBuf {
    let text = si.to_string();
    base.join(&text[..2]).join(text)
}

/// Share files in a directory, by number.
pub(super) fn share_files(dir: &Path) -> Result<BTreeMap<ShareNum, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
        if let Some(num) = entry.file_name().to_str().and_then(|n| n.parse::<ShareNum>().ok()) {
            out.insert(num, entry.path());
        }
    }
    Ok(out)
}

pub(super) fn is_mutable_container(path: &Path) -> Result<bool, Error> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut head = [0u8; 32];
    let n = file
        .read_at(&mut head, 0)
        .map_err(|e| Error::io("read share header", e))?;
    Ok(n == 32 && (head == mutable_container::magic(1) || head == mutable_container::magic(2)))
}
