//! Directories on the grid: a dirnode body kept in an SDMF mutable file (or, read-only, in a CHK/LIT file).
//!
//! Every change is a read-modify-write of the whole body; when another writer
//! got there first (an uncoordinated write) the change is re-applied to the
//! fresh contents, so concurrent additions to one directory are never lost.

pub mod cache;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::grid::dirnode::{self, Child};
use crate::grid::uri::{Cap, MutableAccess, MutableCap, MutableFormat};
use crate::grid::{Error, Grid};

/// How often a change is re-applied after colliding with another writer.
const MAX_ATTEMPTS: usize = 20;

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// The name is already linked and overwriting was not asked for.
    #[error("an entry of that name already exists")]
    Exists,
    /// The name is not linked.
    #[error("no entry of that name")]
    NotFound,
}

/// The caps and metadata to store for a child `cap`.
pub fn child_for(cap: &Cap, metadata: Map<String, Value>) -> Child {
    let read_only = cap.is_read_only();
    Child {
        write_cap: (!read_only).then(|| cap.to_string()),
        read_cap: Some(cap.read_only().to_string()),
        metadata,
    }
}

/// The strongest cap a child offers (its write cap when the directory was read with one).
pub fn child_cap(child: &Child) -> Option<Cap> {
    child
        .write_cap
        .as_deref()
        .or(child.read_cap.as_deref())
        .and_then(|text| Cap::parse(text).ok())
}

/// The entry for `cap`, with Tahoe's link times (the creation time kept from `old`).
pub(crate) fn stamped_child(old: Option<&Child>, cap: &Cap, mut metadata: Map<String, Value>, stamp: f64) -> Child {
    let created = old.and_then(|o| o.metadata.get("tahoe").and_then(|t| t.get("linkcrtime")).cloned());
    // A replaced file keeps the mode a chmod gave it (as POSIX keeps the inode's), unless given one.
    if let Some(old) = old
        && !metadata.contains_key("mode")
    {
        for key in ["mode", "no-write"] {
            if let Some(value) = old.metadata.get(key) {
                metadata.insert(key.into(), value.clone());
            }
        }
    }
    let mut tahoe = Map::new();
    tahoe.insert("linkcrtime".into(), created.unwrap_or(Value::from(stamp)));
    tahoe.insert("linkmotime".into(), Value::from(stamp));
    metadata.insert("tahoe".into(), Value::Object(tahoe));
    child_for(cap, metadata)
}

pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn writable_inner(dircap: &Cap) -> Result<&MutableCap, Error> {
    match dircap {
        Cap::Directory(inner) => match inner.as_ref() {
            Cap::Mutable(m) if matches!(m.access, MutableAccess::Write(_)) => Ok(m),
            Cap::Mutable(_) | Cap::Chk(_) | Cap::Literal(_) => Err(Error::ReadOnly),
            _ => Err(Error::UnsupportedCap(dircap.kind())),
        },
        other => Err(Error::UnsupportedCap(other.kind())),
    }
}

impl Grid {
    /// Creates an empty writable directory (SDMF, Tahoe's default); returns its `URI:DIR2:` cap.
    pub async fn create_directory(&self) -> Result<Cap, Error> {
        self.create_directory_as(MutableFormat::Sdmf).await
    }

    /// Creates an empty writable directory stored as SDMF (`URI:DIR2:`) or MDMF (`URI:DIR2-MDMF:`).
    pub async fn create_directory_as(&self, format: MutableFormat) -> Result<Cap, Error> {
        let key = self.new_signing_key().await?;
        let empty = dirnode::pack(&BTreeMap::new(), None);
        let cap = self.create_mutable_as(key, &empty, format).await?;
        Ok(Cap::Directory(Box::new(Cap::Mutable(cap))))
    }

    /// Lists a directory (write caps of children are visible only through a write cap).
    pub async fn list_directory(&self, dircap: &Cap) -> Result<BTreeMap<String, Child>, Error> {
        let children = self.directory_children(dircap).await?;
        Ok(Arc::try_unwrap(children).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// The entry `name` of a directory (from a listing read or written a moment ago, if the
    /// directory cache holds one).
    pub async fn directory_child(&self, dircap: &Cap, name: &str) -> Result<Option<Child>, Error> {
        Ok(self.directory_children(dircap).await?.get(name).cloned())
    }

    /// A directory's children: from the directory cache when it holds them, else read.
    async fn directory_children(&self, dircap: &Cap) -> Result<Arc<BTreeMap<String, Child>>, Error> {
        let writable = writable_inner(dircap).is_ok();
        let si = dircap.storage_index();
        if let Some((children, with_write_caps)) = si.and_then(|si| self.directory_cache().get(si, writable)) {
            if writable || !with_write_caps {
                return Ok(children);
            }
            // Read through a read-only cap: never hand out the write caps a writer cached.
            let mut stripped = (*children).clone();
            for child in stripped.values_mut() {
                child.write_cap = None;
            }
            return Ok(Arc::new(stripped));
        }
        let started = std::time::Instant::now();
        let children = Arc::new(self.read_directory(dircap).await?.0);
        if let (Some(si), Cap::Directory(inner)) = (si, dircap)
            && matches!(inner.as_ref(), Cap::Mutable(_))
        {
            self.directory_cache().put_read(si, children.clone(), writable, started);
        }
        Ok(children)
    }

    /// Reads a directory from the grid (not the cache): its children and the size of its stored
    /// body in bytes (Tahoe's deep-stats count that size).
    pub async fn read_directory_sized(&self, dircap: &Cap) -> Result<(BTreeMap<String, Child>, u64), Error> {
        self.read_directory(dircap).await
    }

    async fn read_directory(&self, dircap: &Cap) -> Result<(BTreeMap<String, Child>, u64), Error> {
        let Cap::Directory(inner) = dircap else {
            return Err(Error::UnsupportedCap(dircap.kind()));
        };
        let (body, writekey) = match inner.as_ref() {
            Cap::Mutable(m) => {
                let writekey = match m.access {
                    MutableAccess::Write(wk) => Some(wk),
                    _ => None,
                };
                (self.read_mutable(m).await?, writekey)
            }
            Cap::Chk(chk) => (self.open_file(chk).await?.read_range(0, u64::MAX).await?, None),
            Cap::Literal(lit) => (lit.data.clone(), None),
            _ => return Err(Error::UnsupportedCap(dircap.kind())),
        };
        let si = dircap.storage_index();
        let children = dirnode::unpack(&body, writekey.as_ref()).map_err(|e| {
            tracing::warn!(storage_index = ?si, "directory body unreadable: {e}");
            Error::CorruptDirectory
        })?;
        Ok((children, body.len() as u64))
    }

    /// Applies `change` to a writable directory's children and stores the result,
    /// re-reading and re-applying on collisions with other writers.
    pub async fn modify_directory<T>(
        &self,
        dircap: &Cap,
        mut change: impl FnMut(&mut BTreeMap<String, Child>) -> Result<T, DirectoryError>,
    ) -> Result<T, Error> {
        let inner = writable_inner(dircap)?;
        let MutableAccess::Write(writekey) = inner.access else {
            return Err(Error::ReadOnly);
        };
        let _turn = self.lock_for_writing(inner.storage_index()).await;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Random backoff, growing with each collision, so racing writers spread out.
                let ceiling_ms = 4u64 << attempt.min(6);
                let jitter = u64::from(u16::from_be_bytes(crate::grid::crypto::random_bytes::<2>()));
                tokio::time::sleep(std::time::Duration::from_millis(jitter % ceiling_ms)).await;
            }
            // The new version is published against the very server map its contents came from.
            let map = self.settled_servermap(inner).await;
            let current = self.read_mutable_from(inner, &map)?;
            let mut children = dirnode::unpack(&current, Some(&writekey)).map_err(|_| Error::CorruptDirectory)?;
            let outcome = change(&mut children).map_err(Error::Directory)?;
            let body = dirnode::pack(&children, Some(&writekey));
            let si = inner.storage_index();
            match self.update_mutable_from(inner, &map, &body).await {
                Ok(()) => {
                    self.directory_cache().put(si, Arc::new(children), true);
                    return Ok(outcome);
                }
                Err(Error::UncoordinatedWrite { .. }) => {
                    self.directory_cache().forget(si);
                    continue;
                }
                Err(e) => {
                    self.directory_cache().forget(si);
                    return Err(e);
                }
            }
        }
        Err(Error::UncoordinatedWrite {
            storage_index: inner.storage_index(),
        })
    }

    /// Links `cap` under `name` (NFC-normalized); refuses to replace an entry unless `overwrite`.
    pub async fn link(
        &self,
        dircap: &Cap,
        name: &str,
        cap: &Cap,
        overwrite: bool,
        metadata: Map<String, Value>,
    ) -> Result<(), Error> {
        let name = dirnode::normalize_name(name);
        let wanted = child_for(cap, Map::new());
        self.modify_directory(dircap, |children| {
            match children.get(&name) {
                // Our own earlier attempt may have landed on some servers before colliding.
                Some(old) if !overwrite && old.write_cap == wanted.write_cap && old.read_cap == wanted.read_cap => {
                    return Ok(());
                }
                Some(_) if !overwrite => return Err(DirectoryError::Exists),
                _ => {}
            }
            let child = stamped_child(children.get(&name), cap, metadata.clone(), now());
            children.insert(name.clone(), child);
            Ok(())
        })
        .await
    }

    /// Links several files in one write of the directory, replacing files of the same names.
    /// Names that link a directory are left alone and returned.
    pub async fn link_files(
        &self,
        dircap: &Cap,
        entries: &[(String, Cap, Map<String, Value>)],
    ) -> Result<Vec<String>, Error> {
        self.modify_directory(dircap, |children| {
            let stamp = now();
            let mut refused = Vec::new();
            for (name, cap, metadata) in entries {
                let name = dirnode::normalize_name(name);
                let old = children.get(&name);
                if old.and_then(child_cap).is_some_and(|c| matches!(c, Cap::Directory(_))) {
                    refused.push(name);
                    continue;
                }
                let child = stamped_child(old, cap, metadata.clone(), stamp);
                children.insert(name, child);
            }
            Ok(refused)
        })
        .await
    }

    /// Removes the entry `name`; returns what it linked.
    pub async fn unlink(&self, dircap: &Cap, name: &str) -> Result<Child, Error> {
        let name = dirnode::normalize_name(name);
        self.modify_directory(dircap, |children| {
            children.remove(&name).ok_or(DirectoryError::NotFound)
        })
        .await
    }
}
