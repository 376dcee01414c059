//! What an entry's metadata keeps besides its cap: the user's mtime, POSIX mode bits and the SHA-256 of the plaintext.
//!
//! Tahoe keeps metadata keys it does not know (its `update_metadata` merges them), so real Tahoe
//! reads these directories unchanged and carries the keys along. `mode` holds the permission
//! bits (`0o7777` at most); `no-write` is the key Tahoe's own SFTP frontend reads, kept in step
//! with the mode's write bits; `sha256` is the hex digest of the file's contents, recorded while
//! the file was written (or the first time someone asked for it).

use serde_json::{Map, Value};

use crate::grid::directory::{DirectoryError, child_cap};
use crate::grid::uri::Cap;

use super::{Error, ErrorKind, Kind, Stat, Vfs};

/// The metadata key of the permission bits.
pub const MODE_KEY: &str = "mode";
/// The metadata key of the contents' SHA-256 (lowercase hex).
pub const SHA256_KEY: &str = "sha256";
/// Tahoe's SFTP frontend's key for an entry without write permission.
const NO_WRITE_KEY: &str = "no-write";
/// The bits a mode may hold (permissions, setuid, setgid, sticky).
const MODE_BITS: u32 = 0o7777;

/// What a write or a setstat records in an entry besides its cap.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EntryMetadata {
    /// The user's modification time (Unix seconds).
    pub mtime: Option<f64>,
    /// Permission bits.
    pub mode: Option<u32>,
    /// The contents' SHA-256.
    pub sha256: Option<[u8; 32]>,
}

impl From<Option<f64>> for EntryMetadata {
    fn from(mtime: Option<f64>) -> Self {
        EntryMetadata {
            mtime,
            ..Default::default()
        }
    }
}

impl EntryMetadata {
    /// The keys other than `mtime`, as the commit journal carries them.
    pub fn extra(&self) -> Map<String, Value> {
        let mut keys = Map::new();
        if let Some(mode) = self.mode {
            keys.insert(MODE_KEY.into(), Value::from(mode & MODE_BITS));
            keys.insert(NO_WRITE_KEY.into(), Value::from(mode & 0o222 == 0));
        }
        if let Some(digest) = self.sha256 {
            keys.insert(SHA256_KEY.into(), Value::from(hex(&digest)));
        }
        keys
    }

    /// Every key, to write into an entry's metadata (over what is there).
    pub fn apply_to(&self, metadata: &mut Map<String, Value>) {
        if let Some(mtime) = self.mtime {
            metadata.insert("mtime".into(), Value::from(mtime));
        }
        metadata.extend(self.extra());
    }
}

/// The permission bits an entry's metadata records, if any.
pub fn mode_of(metadata: &Map<String, Value>) -> Option<u32> {
    let mode = metadata.get(MODE_KEY)?.as_u64()?;
    u32::try_from(mode).ok().map(|m| m & MODE_BITS)
}

/// The SHA-256 an entry's metadata records, if any (and well-formed).
pub fn sha256_of(metadata: &Map<String, Value>) -> Option<[u8; 32]> {
    let text = metadata.get(SHA256_KEY)?.as_str()?;
    let mut digest = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Stat {
    /// The permission bits both protocols show: those a chmod recorded, else 755 for directories
    /// and 644 for files; without the write bits when the entry is read-only through this path.
    pub fn permission_bits(&self) -> u32 {
        let default = match self.kind {
            Kind::Directory => 0o755,
            Kind::File => 0o644,
        };
        let bits = self.mode.unwrap_or(default) & MODE_BITS;
        if self.read_only { bits & !0o222 } else { bits }
    }
}

impl Vfs {
    /// Records `attributes` (those that are set) in the entry at `path`, in one directory write.
    pub async fn set_attributes(&self, path: &[u8], attributes: EntryMetadata) -> Result<(), Error> {
        let (dir, name) = self.parent(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if let Some(queue) = self.commits()
            && queue
                .update_pending(&dir, &name, |mtime, extra| {
                    let mut metadata = extra.clone();
                    if let Some(at) = *mtime {
                        metadata.insert("mtime".into(), Value::from(at));
                    }
                    attributes.apply_to(&mut metadata);
                    *mtime = metadata.remove("mtime").and_then(|v| v.as_f64());
                    *extra = metadata;
                })
                .await?
        {
            return Ok(());
        }
        self.settle(&dir).await?;
        self.grid
            .modify_directory(&dir, |children| {
                let child = children.get_mut(&name).ok_or(DirectoryError::NotFound)?;
                attributes.apply_to(&mut child.metadata);
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// [`Vfs::lookup`] and the entry's metadata (empty for a path that is no directory's entry:
    /// the root, a `/uri/` cap).
    pub async fn lookup_entry(&self, path: &[u8]) -> Result<(Cap, Stat, Map<String, Value>), Error> {
        let (cap, metadata, parent_writable) = self.resolve(&super::split_path(path)?).await?;
        let stat = super::stat_of(&cap, metadata.as_ref(), parent_writable)?;
        let stat = self.sized(&cap, stat).await?;
        Ok((cap, stat, metadata.unwrap_or_default()))
    }

    /// Records `digest` as the SHA-256 of the entry at `path` if that entry still links `cap`
    /// (a file written there since keeps its own digest, or none).
    pub async fn record_sha256(&self, path: &[u8], cap: &Cap, digest: [u8; 32]) -> Result<(), Error> {
        let (dir, name) = self.parent(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        self.settle(&dir).await?;
        let recorded = EntryMetadata {
            sha256: Some(digest),
            ..Default::default()
        };
        self.grid
            .modify_directory(&dir, |children| {
                if let Some(child) = children.get_mut(&name)
                    && child_cap(child).as_ref() == Some(cap)
                {
                    recorded.apply_to(&mut child.metadata);
                }
                Ok(())
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_digests_round_trip_through_metadata() {
        let digest = [0xab; 32];
        let written = EntryMetadata {
            mtime: Some(5.0),
            mode: Some(0o100640),
            sha256: Some(digest),
        };
        let mut metadata = Map::new();
        written.apply_to(&mut metadata);
        assert_eq!(mode_of(&metadata), Some(0o640));
        assert_eq!(sha256_of(&metadata), Some(digest));
        assert_eq!(metadata.get("no-write"), Some(&Value::from(false)));
        assert_eq!(metadata.get("mtime"), Some(&Value::from(5.0)));
        metadata.insert(SHA256_KEY.into(), Value::from("not hex"));
        assert_eq!(sha256_of(&metadata), None);
        EntryMetadata {
            mode: Some(0o444),
            ..Default::default()
        }
        .apply_to(&mut metadata);
        assert_eq!(metadata.get("no-write"), Some(&Value::from(true)));
    }
}
