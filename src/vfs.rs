//! The path layer every frontend uses: paths under a root dircap, mapped onto directory and file operations.
//!
//! SFTP and FTP both go through here, so they behave the same, and each maps
//! [`ErrorKind`] onto its protocol's codes in one place. Errors never carry
//! caps: a path component may appear, a cap never does.

use std::fmt;
use std::io::{Read, Seek};

use serde_json::{Map, Value};

use crate::grid::budget::BudgetPermit;
use crate::grid::commit::{CommitQueue, PendingBody, PendingEntry};
use crate::grid::directory::{DirectoryError, child_cap};
use crate::grid::dirnode::{self, Child};
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::uri::Cap;
use crate::grid::{self, Grid};

mod entry_metadata;
mod hardlink;
mod link;
mod mutable_files;
mod uri_paths;

pub use entry_metadata::{EntryMetadata, hex, mode_of, sha256_of};
pub use link::LinkMode;
pub use mutable_files::{
    MAX_MUTABLE_FILE_SIZE, read_whole as read_mutable_whole, working_memory as mutable_working_memory,
};
pub use uri_paths::{loggable, redact_caps};

/// The largest file the gateway accepts from a client: 64 GiB. Frontends refuse a write or size
/// change that would reach past it (SFTP answers FAILURE "file too large", as OpenSSH maps EFBIG).
///
/// Tahoe sets no limit of its own since 1.3 (v2 shares have 64-bit offsets and the UEB records the
/// size as a number), and our CHK layout switches to v2 shares when a share passes 4 GiB, so the
/// format is not what limits the size. The costs that grow with it are: the uploader keeps one
/// 32-byte hash per segment for the crypttext and per share for the blocks until the hash trees
/// are written (65,536 segments at 64 GiB and 1 MiB segments: about 46 MiB with N=10, twice that
/// while the trees are built), and an upload written out of order is first spooled whole,
/// encrypted, in `spool_dir`, so the spool disk must hold it. 64 GiB keeps one upload's memory
/// well under what a small host has and covers disk images and backups; without a limit, a
/// single request naming offset 2^63 asks for an exabyte-sized spool.
pub const MAX_FILE_SIZE: u64 = 64 << 30;

/// What went wrong, in the terms both protocols have codes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such file or directory.
    NotFound,
    /// The target name is taken.
    AlreadyExists,
    /// A path component is a file.
    NotADirectory,
    /// A file operation named a directory.
    IsADirectory,
    /// rmdir of a directory that still has entries.
    DirectoryNotEmpty,
    /// The cap in the way is read-only.
    PermissionDenied,
    /// A name with `/`, NUL, invalid UTF-8, or `.`/`..` where a name is needed.
    InvalidName,
    /// The grid could not be reached well enough (not enough servers or shares); retrying may work.
    Transient,
    /// Something this gateway does not do (symlinks, unknown cap kinds).
    Unsupported,
    /// Past a size limit ([`MAX_FILE_SIZE`], or [`MAX_MUTABLE_FILE_SIZE`] for a mutable file).
    TooLarge,
    /// A bug or corrupt data.
    Internal,
}

/// A vfs error: its kind plus, for logs, the grid error behind it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    source: Option<grid::Error>,
}

impl Error {
    /// An error of `kind` with no further cause.
    pub fn new(kind: ErrorKind) -> Self {
        Error { kind, source: None }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NotFound => "no such file or directory",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::DirectoryNotEmpty => "directory not empty",
            ErrorKind::PermissionDenied => "permission denied (read-only)",
            ErrorKind::InvalidName => "invalid name",
            ErrorKind::Transient => "storage grid temporarily unavailable",
            ErrorKind::Unsupported => "operation not supported",
            ErrorKind::TooLarge => "file too large",
            ErrorKind::Internal => "internal error",
        };
        match &self.source {
            // Grid errors name storage indexes and counts, never caps.
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<grid::Error> for Error {
    fn from(e: grid::Error) -> Self {
        use grid::Error as G;
        let kind = match &e {
            G::NotEnoughShares { .. } | G::HappinessNotMet { .. } | G::UncoordinatedWrite { .. } | G::Storage(_) => {
                ErrorKind::Transient
            }
            G::ReadOnly | G::Prohibited { .. } => ErrorKind::PermissionDenied,
            G::Directory(DirectoryError::Exists) => ErrorKind::AlreadyExists,
            G::Directory(DirectoryError::NotFound) => ErrorKind::NotFound,
            G::UnsupportedCap(_) => ErrorKind::Unsupported,
            G::IntegrityFailure { .. }
            | G::CorruptDirectory
            | G::MutableKey(_)
            | G::MutableFormat(_)
            | G::Erasure(_)
            | G::Io { .. }
            | G::Internal(_) => ErrorKind::Internal,
        };
        Error { kind, source: Some(e) }
    }
}

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file (immutable, or a mutable SDMF/MDMF one).
    File,
    /// A directory.
    Directory,
}

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time (Unix seconds): the user's `mtime`, else when it was linked.
    pub mtime: Option<f64>,
    /// Whether it cannot be changed through this path.
    pub read_only: bool,
    /// The permission bits set by a chmod (frontends show their defaults without one).
    pub mode: Option<u32>,
}

/// Checks one name: UTF-8, no `/`, no NUL, not empty, `.` or `..`; returns it NFC-normalized.
pub fn check_name(name: &[u8]) -> Result<String, Error> {
    let text = std::str::from_utf8(name).map_err(|_| Error::new(ErrorKind::InvalidName))?;
    if text.is_empty() || text == "." || text == ".." || text.contains('/') || text.contains('\0') {
        return Err(Error::new(ErrorKind::InvalidName));
    }
    Ok(dirnode::normalize_name(text))
}

/// Splits a path into names, resolving `.` and `..` lexically (never above the root).
pub fn split_path(path: &[u8]) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                names.pop();
            }
            name => names.push(check_name(name)?),
        }
    }
    Ok(names)
}

/// The stat of `cap` from its entry alone (a mutable file's size is 0 here: see [`Vfs::sized`]).
fn stat_of(cap: &Cap, metadata: Option<&Map<String, Value>>, parent_writable: bool) -> Result<Stat, Error> {
    let mtime = metadata.and_then(|m| {
        m.get("mtime")
            .and_then(Value::as_f64)
            .or_else(|| m.get("tahoe").and_then(|t| t.get("linkmotime")).and_then(Value::as_f64))
    });
    let (kind, size, read_only) = match cap {
        Cap::Directory(_) => (Kind::Directory, 0, cap.is_read_only()),
        Cap::Chk(chk) => (Kind::File, chk.size, !parent_writable),
        Cap::Literal(lit) => (Kind::File, lit.data.len() as u64, !parent_writable),
        // Written in place by publishing a new version: its own cap decides, not the parent.
        Cap::Mutable(_) => (Kind::File, 0, cap.is_read_only()),
        _ => return Err(Error::new(ErrorKind::Unsupported)),
    };
    Ok(Stat {
        kind,
        size,
        mtime,
        read_only,
        mode: metadata.and_then(mode_of),
    })
}

/// A user's view of the grid: paths below one root directory cap.
#[derive(Debug, Clone)]
pub struct Vfs {
    grid: Grid,
    root: Cap,
}

impl Vfs {
    /// A view rooted at `root` (a directory cap; a read-only one makes every change fail).
    pub fn new(grid: Grid, root: Cap) -> Self {
        Vfs { grid, root }
    }

    /// The grid underneath.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// Whether every change through this view is refused (a read-only root).
    pub fn is_read_only(&self) -> bool {
        self.root.is_read_only()
    }

    /// The cap linked at `path` and its stat, from one walk.
    pub async fn lookup(&self, path: &[u8]) -> Result<(Cap, Stat), Error> {
        let (cap, metadata, parent_writable) = self.resolve(&split_path(path)?).await?;
        let stat = stat_of(&cap, metadata.as_ref(), parent_writable)?;
        let stat = self.sized(&cap, stat).await?;
        Ok((cap, stat))
    }

    /// Checks that a file may be written at `path` (writable parent directory, not a directory
    /// there) and returns what is linked there now, if anything.
    /// A writable mutable file there is returned even in a read-only directory (writing it
    /// publishes a new version and leaves the directory as it is); a read-only one is refused.
    pub async fn prepare_write(&self, path: &[u8]) -> Result<Option<Cap>, Error> {
        let (dir, existing) = match self.bare_mutable_cap(path)? {
            Some(cap) => (None, Some(cap)),
            None => {
                let (dir, _, existing) = self.entry(path).await?;
                (Some(dir), existing)
            }
        };
        if let Some(Cap::Mutable(_)) = &existing {
            if self.is_read_only() || existing.as_ref().is_some_and(Cap::is_read_only) {
                return Err(Error::new(ErrorKind::PermissionDenied));
            }
            return Ok(existing);
        }
        let Some(dir) = dir else {
            return Err(Error::new(ErrorKind::PermissionDenied));
        };
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if matches!(existing, Some(Cap::Directory(_))) {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        Ok(existing)
    }

    /// Free space for new files across the grid's servers, in bytes of file data (share overhead taken off).
    pub async fn available_space(&self) -> u64 {
        let versions = futures::future::join_all(self.grid.servers().iter().map(|s| s.version())).await;
        let raw: u64 = versions.into_iter().flatten().map(|v| v.available_space).sum();
        let params = self.grid.params();
        raw / params.total as u64 * params.needed as u64
    }

    /// Follows `names` from the root; returns the cap and, below the root, the entry's metadata and whether its parent is writable.
    /// A `/uri/<cap>` path starts at that cap (with no writable parent) instead of the root.
    async fn resolve(&self, names: &[String]) -> Result<(Cap, Option<Map<String, Value>>, bool), Error> {
        let (mut cap, names, mut parent_writable) = match uri_paths::cap_start(names) {
            Some((cap, rest)) => (cap, rest, false),
            None => (self.root.clone(), names, !self.root.is_read_only()),
        };
        let mut metadata = None;
        for name in names {
            if !matches!(cap, Cap::Directory(_)) {
                return Err(Error::new(ErrorKind::NotADirectory));
            }
            parent_writable = !cap.is_read_only();
            let (child, child_metadata) = self.child(&cap, name).await?.ok_or(Error::new(ErrorKind::NotFound))?;
            cap = child;
            metadata = Some(child_metadata);
        }
        Ok((cap, metadata, parent_writable))
    }

    /// The commit queue, when this node acknowledges links from its journal.
    fn commits(&self) -> Option<CommitQueue> {
        self.grid.commit_queue()
    }

    /// The entry `name` of the directory `dir`: a link not yet published first, else the grid's.
    async fn child(&self, dir: &Cap, name: &str) -> Result<Option<(Cap, Map<String, Value>)>, Error> {
        if let Some(pending) = self.pending(dir, name) {
            return Ok(Some((pending.cap.clone(), pending_metadata(&pending))));
        }
        match self.grid.directory_child(dir, name).await? {
            Some(child) => {
                let cap = child_cap(&child).ok_or(Error::new(ErrorKind::Unsupported))?;
                Ok(Some((cap, child.metadata)))
            }
            None => Ok(None),
        }
    }

    fn pending(&self, dir: &Cap, name: &str) -> Option<PendingEntry> {
        self.commits()?.pending(dir.storage_index()?, name)
    }

    /// Waits until the links of `dir` acknowledged so far are published, so a change made next
    /// is neither overtaken by them nor by a replay of them.
    async fn settle(&self, dir: &Cap) -> Result<(), Error> {
        if let (Some(queue), Some(si)) = (self.commits(), dir.storage_index())
            && queue.has_pending(si)
        {
            queue.flush(si).await?;
        }
        Ok(())
    }

    /// Files up to this size may be committed with [`Vfs::commit_contents`] (`None`: no journal).
    pub fn journaled_size_limit(&self) -> Option<u64> {
        if self.is_read_only() {
            return None;
        }
        self.commits().map(|q| q.max_file_size())
    }

    /// Commits a small file's contents as the file at `path` (replacing a file there): returns
    /// once it is in the journal and visible to reads; it is stored on the grid and linked
    /// shortly after. `memory` is the budget held for `data`.
    pub async fn commit_contents(
        &self,
        path: &[u8],
        data: Vec<u8>,
        memory: BudgetPermit,
        metadata: impl Into<EntryMetadata>,
    ) -> Result<(), Error> {
        let metadata = metadata.into();
        let (dir, name) = self.parent(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        let queue = self.commits().ok_or(Error::new(ErrorKind::Internal))?;
        let body = PendingBody::Contents(bytes::Bytes::from(data));
        Ok(queue
            .link(&dir, &name, body, metadata.mtime, metadata.extra(), true, memory)
            .await?)
    }

    /// Resolves the parent of `path` (which must be a directory) and the last name.
    async fn parent(&self, path: &[u8]) -> Result<(Cap, String), Error> {
        let mut names = split_path(path)?;
        if uri_paths::is_bare_cap(&names) {
            // `/uri/<cap>` is in no directory: it cannot be unlinked, renamed or replaced.
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        let name = names.pop().ok_or(Error::new(ErrorKind::InvalidName))?;
        let (dir, _, _) = self.resolve(&names).await?;
        if !matches!(dir, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        Ok((dir, name))
    }

    /// The cap linked at `path` (for streaming a file's contents, or sharing it).
    pub async fn cap_of(&self, path: &[u8]) -> Result<Cap, Error> {
        Ok(self.resolve(&split_path(path)?).await?.0)
    }

    /// The parent directory of `path`, the last name, and the cap that name links (if any), from one listing.
    async fn entry(&self, path: &[u8]) -> Result<(Cap, String, Option<Cap>), Error> {
        let (dir, name) = self.parent(path).await?;
        let linked = self.child(&dir, &name).await?.map(|(cap, _)| cap);
        Ok((dir, name, linked))
    }

    /// Kind, size, mtime and read-only state of `path`.
    pub async fn stat(&self, path: &[u8]) -> Result<Stat, Error> {
        let names = split_path(path)?;
        let (cap, metadata, parent_writable) = match self.resolve(&names).await {
            Err(e) if e.kind() == ErrorKind::NotFound && uri_paths::is_cap_parent(&names) => {
                return Ok(uri_paths::cap_parent_stat());
            }
            resolved => resolved?,
        };
        let stat = stat_of(&cap, metadata.as_ref(), parent_writable)?;
        self.sized(&cap, stat).await
    }

    /// The entries of the directory at `path`, with their stats (unknown cap kinds are left out).
    pub async fn list(&self, path: &[u8]) -> Result<Vec<(String, Stat)>, Error> {
        let names = split_path(path)?;
        let (dir, _, _) = match self.resolve(&names).await {
            // `/uri` lists nothing: caps are not enumerable.
            Err(e) if e.kind() == ErrorKind::NotFound && uri_paths::is_cap_parent(&names) => return Ok(Vec::new()),
            resolved => resolved?,
        };
        if !matches!(dir, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        let writable = !dir.is_read_only();
        let children = self.grid.list_directory(&dir).await?;
        let entries = children
            .into_iter()
            .filter_map(|(name, child)| {
                let cap = child_cap(&child)?;
                stat_of(&cap, Some(&child.metadata), writable)
                    .ok()
                    .map(|stat| (name, cap, stat))
            })
            .collect();
        let mut listed: std::collections::BTreeMap<String, Stat> =
            self.sized_listing(entries).await.into_iter().collect();
        if let (Some(queue), Some(si)) = (self.commits(), dir.storage_index()) {
            for (name, pending) in queue.pending_in(si) {
                if let Ok(stat) = stat_of(&pending.cap, Some(&pending_metadata(&pending)), writable) {
                    // Contents not yet stored read as a literal cap: the size is the pending one.
                    listed.insert(
                        name,
                        Stat {
                            size: pending.size,
                            ..stat
                        },
                    );
                }
            }
        }
        Ok(listed.into_iter().collect())
    }

    /// Reads up to `len` bytes of the file at `path` from `offset`.
    pub async fn read(&self, path: &[u8], offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let (cap, _, _) = self.resolve(&split_path(path)?).await?;
        match cap {
            Cap::Directory(_) => Err(Error::new(ErrorKind::IsADirectory)),
            Cap::Literal(lit) => {
                let start = (offset as usize).min(lit.data.len());
                let end = start.saturating_add(len as usize).min(lit.data.len());
                Ok(lit.data[start..end].to_vec())
            }
            Cap::Chk(chk) => Ok(self.grid.open_file(&chk).await?.read_range(offset, len).await?),
            Cap::Mutable(m) => {
                let (data, _permit) = mutable_files::read_whole(&self.grid, &m).await?;
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
                let end = start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(data.len());
                Ok(data[start..end].to_vec())
            }
            _ => Err(Error::new(ErrorKind::Unsupported)),
        }
    }

    /// Stores `size` bytes from `source` as the file at `path`; replaces an existing file only if
    /// `overwrite`. `mtime` (Unix seconds) is kept as the entry's modification time.
    pub async fn write_file<R: Read + Seek + Send + 'static>(
        &self,
        path: &[u8],
        source: R,
        size: u64,
        overwrite: bool,
        metadata: impl Into<EntryMetadata>,
    ) -> Result<(), Error> {
        let (dir, name, existing) = self.entry(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        match existing {
            Some(Cap::Directory(_)) => return Err(Error::new(ErrorKind::IsADirectory)),
            Some(_) if !overwrite => return Err(Error::new(ErrorKind::AlreadyExists)),
            _ => {}
        }
        let cap = self.grid.upload(source, size, KeyChoice::Convergent, None).await?;
        self.link_into(&dir, &name, &cap, overwrite, metadata.into()).await
    }

    /// Stores `size` bytes from `source` as an immutable file, linked nowhere yet (see [`Vfs::link_file`]).
    pub async fn upload<R: Read + Seek + Send + 'static>(&self, source: R, size: u64) -> Result<Cap, Error> {
        if self.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        Ok(self.grid.upload(source, size, KeyChoice::Convergent, None).await?)
    }

    /// Links an already stored file `cap` at `path` (replacing a file there only if `overwrite`).
    pub async fn link_file(
        &self,
        path: &[u8],
        cap: &Cap,
        overwrite: bool,
        metadata: impl Into<EntryMetadata>,
    ) -> Result<(), Error> {
        let metadata = metadata.into();
        if overwrite && let Some(queue) = self.commits() {
            // Checked when the file was opened; a directory linked there since by another
            // writer makes the publish use a conflict name rather than lose either.
            let (dir, name) = self.parent(path).await?;
            if dir.is_read_only() {
                return Err(Error::new(ErrorKind::PermissionDenied));
            }
            let body = PendingBody::Stored(cap.clone());
            let (mtime, extra) = (metadata.mtime, metadata.extra());
            return Ok(queue
                .link(&dir, &name, body, mtime, extra, true, BudgetPermit::empty())
                .await?);
        }
        let (dir, name, existing) = self.entry(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        match existing {
            Some(Cap::Directory(_)) => Err(Error::new(ErrorKind::IsADirectory)),
            Some(_) if !overwrite => Err(Error::new(ErrorKind::AlreadyExists)),
            _ => self.link_into(&dir, &name, cap, overwrite, metadata).await,
        }
    }

    /// Links several stored files, each `(name, cap, mtime)`, into the directory at `dir` in one
    /// write (replacing files of those names). Returns the names refused because a directory has them.
    pub async fn link_files(&self, dir: &[u8], entries: &[(String, Cap, f64)]) -> Result<Vec<String>, Error> {
        let dircap = self.resolve(&split_path(dir)?).await?.0;
        if !matches!(dircap, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        if dircap.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        self.settle(&dircap).await?;
        let mut linked = Vec::with_capacity(entries.len());
        for (name, cap, mtime) in entries {
            let name = check_name(name.as_bytes())?;
            let mut metadata = Map::new();
            metadata.insert("mtime".into(), Value::from(*mtime));
            linked.push((name, cap.clone(), metadata));
        }
        Ok(self.grid.link_files(&dircap, &linked).await?)
    }

    async fn link_into(
        &self,
        dir: &Cap,
        name: &str,
        cap: &Cap,
        overwrite: bool,
        metadata: EntryMetadata,
    ) -> Result<(), Error> {
        if overwrite && let Some(queue) = self.commits() {
            let body = PendingBody::Stored(cap.clone());
            let (mtime, extra) = (metadata.mtime, metadata.extra());
            return Ok(queue
                .link(dir, name, body, mtime, extra, true, BudgetPermit::empty())
                .await?);
        }
        self.settle(dir).await?;
        let mut keys = Map::new();
        metadata.apply_to(&mut keys);
        self.grid.link(dir, name, cap, overwrite, keys).await?;
        Ok(())
    }

    /// Creates a directory; an existing name is `AlreadyExists` (unlike Tahoe, which replaced it).
    pub async fn mkdir(&self, path: &[u8]) -> Result<(), Error> {
        self.mkdir_as(path, crate::grid::uri::MutableFormat::Sdmf).await
    }

    /// Creates a directory stored as SDMF or MDMF (see [`Vfs::mkdir`]).
    pub async fn mkdir_as(&self, path: &[u8], format: crate::grid::uri::MutableFormat) -> Result<(), Error> {
        let (dir, name, existing) = self.entry(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if existing.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists));
        }
        self.settle(&dir).await?;
        let new_dir = self.grid.create_directory_as(format).await?;
        self.grid.link(&dir, &name, &new_dir, false, Map::new()).await?;
        Ok(())
    }

    /// Removes an empty directory; a non-empty one is `DirectoryNotEmpty` (Tahoe removed it anyway).
    pub async fn rmdir(&self, path: &[u8]) -> Result<(), Error> {
        let (dir, name, linked) = self.entry(path).await?;
        let cap = linked.ok_or(Error::new(ErrorKind::NotFound))?;
        if !matches!(cap, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        self.settle(&cap).await?;
        if !self.grid.list_directory(&cap).await?.is_empty() {
            return Err(Error::new(ErrorKind::DirectoryNotEmpty));
        }
        self.settle(&dir).await?;
        let target = cap.to_string();
        self.grid
            .modify_directory(&dir, |children| match children.get(&name) {
                // Only unlink what we checked was empty, not something linked in its place since.
                Some(child)
                    if child.write_cap.as_deref() == Some(target.as_str())
                        || child.read_cap.as_deref() == Some(target.as_str()) =>
                {
                    children.remove(&name);
                    Ok(())
                }
                Some(_) => Err(DirectoryError::Exists),
                None => Err(DirectoryError::NotFound),
            })
            .await?;
        Ok(())
    }

    /// Removes a file; directories are `IsADirectory` (use rmdir).
    pub async fn remove(&self, path: &[u8]) -> Result<(), Error> {
        let (dir, name, linked) = self.entry(path).await?;
        if dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        if matches!(linked.ok_or(Error::new(ErrorKind::NotFound))?, Cap::Directory(_)) {
            return Err(Error::new(ErrorKind::IsADirectory));
        }
        self.settle(&dir).await?;
        self.grid.unlink(&dir, &name).await?;
        Ok(())
    }

    /// Moves `from` to `to`; an existing target is replaced only with `overwrite`.
    pub async fn rename(&self, from: &[u8], to: &[u8], overwrite: bool) -> Result<(), Error> {
        let (from_names, to_names) = (split_path(from)?, split_path(to)?);
        if from_names.is_empty() || (to_names.len() > from_names.len() && to_names.starts_with(&from_names)) {
            // Moving a directory into itself would detach it from the tree (POSIX: EINVAL).
            return Err(Error::new(ErrorKind::InvalidName));
        }
        let (from_dir, from_name) = self.parent(from).await?;
        let (to_dir, to_name) = self.parent(to).await?;
        if from_dir.is_read_only() || to_dir.is_read_only() {
            return Err(Error::new(ErrorKind::PermissionDenied));
        }
        self.settle(&from_dir).await?;
        self.settle(&to_dir).await?;
        if from_dir == to_dir {
            // One read-modify-write: the move is atomic within a directory.
            self.grid
                .modify_directory(&from_dir, |children| {
                    let moving: Child = children.remove(&from_name).ok_or(DirectoryError::NotFound)?;
                    if from_name != to_name && children.contains_key(&to_name) && !overwrite {
                        return Err(DirectoryError::Exists);
                    }
                    children.insert(to_name.clone(), moving);
                    Ok(())
                })
                .await?;
            return Ok(());
        }
        let mut source = self.grid.list_directory(&from_dir).await?;
        let moving = source.remove(&from_name).ok_or(Error::new(ErrorKind::NotFound))?;
        let cap = child_cap(&moving).ok_or(Error::new(ErrorKind::Unsupported))?;
        self.grid
            .link(&to_dir, &to_name, &cap, overwrite, moving.metadata.clone())
            .await?;
        self.grid.unlink(&from_dir, &from_name).await?;
        Ok(())
    }

    /// Sets the user modification time of the entry at `path`.
    pub async fn set_mtime(&self, path: &[u8], mtime: f64) -> Result<(), Error> {
        self.set_attributes(path, Some(mtime).into()).await
    }
}

/// The metadata a pending entry reads with: its modification time and the keys it will have.
fn pending_metadata(pending: &PendingEntry) -> Map<String, Value> {
    let mut metadata = pending.extra.clone();
    metadata.insert("mtime".into(), Value::from(pending.mtime));
    metadata
}
