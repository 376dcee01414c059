//! Linking an entry of one view under a path of another (`lafs mv` and `lafs ln`, across roots).
//!
//! As Tahoe's `mv` and `ln` (`PUT t=uri&replace=only-files`): a file at the target is replaced, a
//! directory there never is.

use crate::grid::directory::{DirectoryError, child_cap};
use crate::grid::dirnode::Child;
use crate::grid::uri::Cap;

use super::{Error, ErrorKind, Vfs, split_path};

/// Whether a move unlinks its source (`mv`) or keeps it (`ln`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// Link at the target, then unlink the source; the entry keeps its metadata.
    Move,
    /// Link the same cap at the target too, with fresh link times.
    Link,
}

impl Vfs {
    /// Links the entry at `from` (in this view) at `to` in the view `target` (which may have
    /// another root). A file at `to` is replaced; a directory there is `IsADirectory`.
    pub async fn link_to(&self, from: &[u8], target: &Vfs, to: &[u8], mode: LinkMode) -> Result<(), Error> {
        let from_names = split_path(from)?;
        if from_names.is_empty() && mode == LinkMode::Move {
            return Err(Error::new(ErrorKind::InvalidName));
        }
        let (to_dir, to_name) = target.parent(to).await?;
        if to_dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        let (from_dir, from_name, moving) = if from_names.is_empty() {
            (None, String::new(), self.root.clone())
        } else {
            let (dir, name, linked) = self.entry(from).await?;
            (Some(dir), name, linked.ok_or(Error::new(ErrorKind::NotFound))?)
        };
        if mode == LinkMode::Move {
            if from_dir.as_ref().is_some_and(Cap::is_read_only) {
                return Err(Error::new(ErrorKind::PermissionDenied));
            }
            if matches!(moving, Cap::Directory(_)) && target.is_below(&moving, to).await? {
                // Moving a directory into itself would detach it from the tree (POSIX: EINVAL).
                return Err(Error::new(ErrorKind::InvalidName));
            }
        }
        let to_is_directory = |children: &std::collections::BTreeMap<String, Child>| {
            children
                .get(&to_name)
                .and_then(child_cap)
                .is_some_and(|c| matches!(c, Cap::Directory(_)))
        };
        if to_is_directory(&target.grid.list_directory(&to_dir).await?) {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        match (mode, from_dir) {
            (LinkMode::Move, Some(from_dir)) if from_dir == to_dir => {
                if from_name == to_name {
                    return Ok(());
                }
                // One read-modify-write: the move is atomic within a directory.
                self.grid
                    .modify_directory(&from_dir, |children| {
                        if to_is_directory(children) {
                            return Err(DirectoryError::Exists);
                        }
                        let entry = children.remove(&from_name).ok_or(DirectoryError::NotFound)?;
                        children.insert(to_name.clone(), entry);
                        Ok(())
                    })
                    .await?;
            }
            (LinkMode::Move, Some(from_dir)) => {
                let entry = self
                    .grid
                    .list_directory(&from_dir)
                    .await?
                    .remove(&from_name)
                    .ok_or(Error::new(ErrorKind::NotFound))?;
                self.link_refusing_directories(&to_dir, &to_name, &moving, entry.metadata)
                    .await?;
                self.grid.unlink(&from_dir, &from_name).await?;
            }
            _ => {
                self.link_refusing_directories(&to_dir, &to_name, &moving, serde_json::Map::new())
                    .await?
            }
        }
        Ok(())
    }

    /// Links `cap` as `name` in one write that leaves a directory of that name alone.
    async fn link_refusing_directories(
        &self,
        dir: &Cap,
        name: &str,
        cap: &Cap,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Error> {
        let refused = self
            .grid
            .link_files(dir, &[(name.to_string(), cap.clone(), metadata)])
            .await?;
        if refused.is_empty() {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::IsADirectory))
        }
    }

    /// Whether `dir` is this view's root or one of the directories on the way to `path`'s parent.
    async fn is_below(&self, dir: &Cap, path: &[u8]) -> Result<bool, Error> {
        let same = |cap: &Cap| cap.storage_index().is_some() && cap.storage_index() == dir.storage_index();
        let mut names = split_path(path)?;
        names.pop();
        let mut cap = self.root.clone();
        if same(&cap) {
            return Ok(true);
        }
        for name in names {
            let child = self
                .grid
                .list_directory(&cap)
                .await?
                .remove(&name)
                .ok_or(Error::new(ErrorKind::NotFound))?;
            cap = child_cap(&child).ok_or(Error::new(ErrorKind::Unsupported))?;
            if same(&cap) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
