//! A second name for a stored file (SFTP's `hardlink@openssh.com`, OpenSSH sftp's `ln`): the same cap linked again, as link(2) makes a second name for an inode.

use serde_json::Map;

use super::{Error, ErrorKind, Vfs, entry_metadata};
use crate::grid::uri::Cap;

impl Vfs {
    /// Links the file at `from` as `to` too. As link(2): a taken `to` is `AlreadyExists`, a
    /// directory `from` is `PermissionDenied` (EPERM). The new entry keeps the file's mode and
    /// digest; its times are its own.
    pub async fn hard_link(&self, from: &[u8], to: &[u8]) -> Result<(), Error> {
        // A pending small file reads as its contents: link what its publish stores instead. (A
        // `/uri/<cap>` has no parent to settle: `ln /uri/CAP name` links a cap someone shared.)
        if let Ok((from_dir, _)) = self.parent(from).await {
            self.settle(&from_dir).await?;
        }
        let (cap, _, metadata) = self.lookup_entry(from).await?;
        if matches!(cap, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        let (to_dir, to_name, existing) = self.entry(to).await?;
        if to_dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if existing.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists));
        }
        self.settle(&to_dir).await?;
        let mut kept = Map::new();
        for key in [entry_metadata::MODE_KEY, "no-write", entry_metadata::SHA256_KEY] {
            if let Some(value) = metadata.get(key) {
                kept.insert(key.into(), value.clone());
            }
        }
        self.grid.link(&to_dir, &to_name, &cap, false, kept).await?;
        Ok(())
    }
}
