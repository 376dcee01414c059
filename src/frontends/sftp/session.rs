//! One SFTP session: every SFTP v3 request of a logged-in user, answered through the vfs.
//!
//! Requests arrive one at a time ([`super::serve`] answers each before reading
//! the next), and offsets and sizes are checked against [`MAX_FILE_SIZE`] and
//! [`MAX_GAP`] before any work. Files opened for writing collect their bytes in a [`FileWriter`] and
//! are committed on close, and the close status is the commit's result; files
//! opened for reading keep the version they opened and stream it with read-ahead.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use russh_sftp::extensions::{self, Statvfs};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use serde::Deserialize;

use super::attrs::{attributes, entry};
use super::status::reply;
use crate::frontends::file_reader::FileContents;
use crate::frontends::file_writer::FileWriter;
use crate::vfs::{self, ErrorKind, Kind, MAX_FILE_SIZE, Stat, Vfs};

/// Directory entries sent per READDIR reply.
const ENTRIES_PER_REPLY: usize = 128;
/// Open handles one session may hold.
const MAX_HANDLES: usize = 512;
/// The largest packet a client may send (russh-sftp's default limit).
const MAX_PACKET: u32 = 256 * 1024;
/// The largest WRITE advertised: a packet less room for its header.
const MAX_WRITE: u32 = MAX_PACKET - 1024;
/// The most a READ is answered with (a client asking for more gets a short read and asks again).
/// Replies of 255 KiB with 64 requests in flight stalled the SSH channel (seen with OpenSSH 9.2
/// after ~29 MB); 128 KiB replies do not.
const MAX_READ: u32 = 128 * 1024;
/// How far past a file's current end one request may write or extend it. The gap is filled with
/// zeros that are encrypted into the spool (and later encoded and uploaded like data), so a
/// 40-byte request naming a far offset would otherwise cost as much as uploading the whole gap,
/// in the request path. Bounded, a request does at most this much work (well under a second).
/// Clients write in order, or a few pipelined or parallel chunks ahead (rclone's multi-thread
/// copies use 4 streams of 64 MiB chunks); 256 MiB leaves room for those.
pub const MAX_GAP: u64 = 256 << 20;

/// What every session of one user can see of the others: files open for writing, by path.
#[derive(Debug, Default)]
pub struct OpenWrites {
    table: Mutex<HashMap<UserPath, Vec<Arc<WriteState>>>>,
}

/// A user name and a normalized path.
type UserPath = (String, String);

/// The visible state of one file open for writing.
#[derive(Debug, Default)]
pub struct WriteState {
    size: AtomicU64,
    mtime: Mutex<Option<f64>>,
}

impl WriteState {
    fn set_mtime(&self, mtime: f64) {
        if let Ok(mut slot) = self.mtime.lock() {
            *slot = Some(mtime);
        }
    }

    fn mtime(&self) -> Option<f64> {
        self.mtime.lock().ok().and_then(|slot| *slot)
    }
}

struct Registration {
    registry: Arc<OpenWrites>,
    key: (String, String),
    state: Arc<WriteState>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut table) = self.registry.table.lock()
            && let Some(states) = table.get_mut(&self.key)
        {
            states.retain(|s| !Arc::ptr_eq(s, &self.state));
            if states.is_empty() {
                table.remove(&self.key);
            }
        }
    }
}

impl OpenWrites {
    fn register(self: &Arc<Self>, user: &str, path: &str) -> Registration {
        let key = (user.to_string(), path.to_string());
        let state = Arc::new(WriteState::default());
        if let Ok(mut table) = self.table.lock() {
            table.entry(key.clone()).or_default().push(state.clone());
        }
        Registration {
            registry: self.clone(),
            key,
            state,
        }
    }

    /// The most recently opened writer of `path`, if any.
    fn latest(&self, user: &str, path: &str) -> Option<Arc<WriteState>> {
        let table = self.table.lock().ok()?;
        table
            .get(&(user.to_string(), path.to_string()))
            .and_then(|states| states.last().cloned())
    }
}

enum OpenHandle {
    Read {
        contents: FileContents,
        stat: Stat,
    },
    Write {
        path: String,
        writer: FileWriter,
        append: bool,
        readable: bool,
        registration: Registration,
    },
    Dir {
        entries: VecDeque<File>,
    },
}

/// The SFTP side of one logged-in connection.
pub struct SftpSession {
    vfs: Vfs,
    user: String,
    spool_dir: PathBuf,
    open_writes: Arc<OpenWrites>,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

impl SftpSession {
    /// A session for `user` over `vfs`, spooling random writes under `spool_dir`.
    pub fn new(vfs: Vfs, user: String, spool_dir: PathBuf, open_writes: Arc<OpenWrites>) -> Self {
        SftpSession {
            vfs,
            user,
            spool_dir,
            open_writes,
            handles: HashMap::new(),
            next_handle: 0,
        }
    }

    fn add_handle(&mut self, handle: OpenHandle) -> Result<String, StatusReply> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message("too many open handles"));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    fn handle(&mut self, handle: &str) -> Result<&mut OpenHandle, StatusReply> {
        self.handles
            .get_mut(handle)
            .ok_or_else(|| StatusCode::Failure.with_message("no such handle"))
    }

    async fn open_for_writing(&mut self, path: String, flags: OpenFlags) -> Result<OpenHandle, vfs::Error> {
        let existing = self.vfs.prepare_write(path.as_bytes()).await?;
        let create = flags.contains(OpenFlags::CREATE);
        let pending = self.open_writes.latest(&self.user, &path);
        let exists = existing.is_some() || pending.is_some();
        if !exists && !create {
            return Err(vfs::Error::new(ErrorKind::NotFound));
        }
        if exists && create && flags.contains(OpenFlags::EXCLUDE) {
            return Err(vfs::Error::new(ErrorKind::AlreadyExists));
        }
        let writer = match existing {
            Some(cap) if !flags.contains(OpenFlags::TRUNCATE) => {
                FileWriter::resume(&self.vfs, &cap, &self.spool_dir).await?
            }
            _ => FileWriter::create(&self.spool_dir),
        };
        let registration = self.open_writes.register(&self.user, &path);
        registration.state.size.store(writer.len(), Ordering::Relaxed);
        Ok(OpenHandle::Write {
            path,
            writer,
            append: flags.contains(OpenFlags::APPEND),
            readable: flags.contains(OpenFlags::READ),
            registration,
        })
    }

    /// Stat of a path, counting files open for writing (their current size) before the grid.
    async fn stat_path(&self, path: &str) -> Result<FileAttributes, vfs::Error> {
        if let Some(state) = self.open_writes.latest(&self.user, path) {
            let stat = Stat {
                kind: Kind::File,
                size: state.size.load(Ordering::Relaxed),
                mtime: state.mtime().or(Some(now_secs() as f64)),
                read_only: false,
            };
            return Ok(attributes(&stat));
        }
        let stat = self.vfs.stat(path.as_bytes()).await?;
        Ok(attributes(&stat))
    }

    async fn set_path_attributes(&mut self, path: &str, attrs: &FileAttributes) -> Result<(), StatusReply> {
        let denied = || vfs_err(vfs::Error::new(ErrorKind::PermissionDenied));
        if self.vfs.is_read_only() {
            return Err(denied());
        }
        if let Some(size) = attrs.size {
            // Past the limit costs nothing to refuse, whatever the path is.
            check_extent(size, size, 0)?;
        }
        if let Some(state) = self.open_writes.latest(&self.user, path) {
            // Applied when that writer commits, so it is not lost to the commit's fresh entry.
            if let Some(mtime) = attrs.mtime {
                state.set_mtime(f64::from(mtime));
            }
            if attrs.size.is_some() {
                return Err(vfs_err(vfs::Error::new(ErrorKind::Unsupported)));
            }
            return Ok(());
        }
        if let Some(size) = attrs.size {
            let (cap, stat) = self.vfs.lookup(path.as_bytes()).await.map_err(vfs_err)?;
            if stat.kind == Kind::Directory {
                return Err(vfs_err(vfs::Error::new(ErrorKind::IsADirectory)));
            }
            if stat.read_only {
                return Err(denied());
            }
            if size != stat.size {
                check_extent(stat.size, size, 0)?;
                let mut writer = if size == 0 {
                    FileWriter::create(&self.spool_dir)
                } else {
                    FileWriter::resume(&self.vfs, &cap, &self.spool_dir)
                        .await
                        .map_err(vfs_err)?
                };
                writer.set_len(&self.vfs, size).await.map_err(vfs_err)?;
                if let Some(mtime) = attrs.mtime {
                    writer.set_mtime(f64::from(mtime));
                }
                return writer.commit(&self.vfs, path.as_bytes()).await.map_err(vfs_err);
            }
        }
        match attrs.mtime {
            Some(mtime) => self.vfs.set_mtime(path.as_bytes(), f64::from(mtime)).await,
            // Permissions and owners have no meaning on the grid; accept them so copies with -p work.
            None => self.vfs.stat(path.as_bytes()).await.map(|_| ()),
        }
        .map_err(vfs_err)
    }

    async fn statvfs(&self) -> Statvfs {
        const BLOCK: u64 = 4096;
        let free = self.vfs.available_space().await / BLOCK;
        Statvfs {
            block_size: BLOCK,
            fragment_size: BLOCK,
            blocks: free,
            blocks_free: free,
            blocks_avail: free,
            inodes: 0,
            inodes_free: 0,
            inodes_avail: 0,
            fs_id: 0,
            flags: if self.vfs.is_read_only() { 1 } else { 0 }, // ST_RDONLY
            name_max: 255,
        }
    }
}

/// Normalizes a client path to `/a/b` (relative paths start at the root; `..` stops there).
fn normalize(path: &str) -> Result<String, vfs::Error> {
    let names = vfs::split_path(path.as_bytes())?;
    Ok(format!("/{}", names.join("/")))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn vfs_err(e: vfs::Error) -> StatusReply {
    reply(&e)
}

/// Checks a write of `count` bytes at `offset`, or a size change to `offset` (`count` 0), of a file
/// now `len` bytes long, before any work: the end must be within [`MAX_FILE_SIZE`] and the gap
/// after the current end within [`MAX_GAP`].
fn check_extent(len: u64, offset: u64, count: u64) -> Result<(), StatusReply> {
    let end = offset.checked_add(count);
    if end.is_none_or(|end| end > MAX_FILE_SIZE) {
        // FAILURE with a message, as OpenSSH's sftp-server answers EFBIG.
        return Err(StatusCode::Failure.with_message(format!(
            "file too large: the gateway stores files of at most {} GiB",
            MAX_FILE_SIZE >> 30
        )));
    }
    if offset > len.saturating_add(MAX_GAP) {
        return Err(StatusCode::Failure.with_message(format!(
            "gap too large: a write or size change may reach at most {} MiB past the end of the file \
             ({len} bytes now); write the bytes before it first",
            MAX_GAP >> 20
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
struct TwoPaths {
    from: String,
    to: String,
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(&mut self, _version: u32, _extensions: HashMap<String, String>) -> Result<Version, Self::Error> {
        let mut version = Version::new();
        version.extensions.insert("posix-rename@openssh.com".into(), "1".into());
        version.extensions.insert(extensions::STATVFS.into(), "2".into());
        version.extensions.insert(extensions::FSYNC.into(), "1".into());
        version.extensions.insert(extensions::LIMITS.into(), "1".into());
        Ok(version)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = normalize(&filename).map_err(vfs_err)?;
        if path == "/" {
            return Err(vfs_err(vfs::Error::new(ErrorKind::IsADirectory)));
        }
        let writing = pflags.intersects(OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE);
        let handle = if writing {
            self.open_for_writing(path, pflags).await.map_err(vfs_err)?
        } else {
            let (cap, stat) = self.vfs.lookup(path.as_bytes()).await.map_err(vfs_err)?;
            if stat.kind == Kind::Directory {
                return Err(vfs_err(vfs::Error::new(ErrorKind::IsADirectory)));
            }
            let contents = FileContents::open(self.vfs.grid(), &cap).await.map_err(vfs_err)?;
            OpenHandle::Read { contents, stat }
        };
        let handle = self.add_handle(handle)?;
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        let open = self
            .handles
            .remove(&handle)
            .ok_or_else(|| StatusCode::Failure.with_message("no such handle"))?;
        if let OpenHandle::Write {
            path,
            mut writer,
            registration,
            ..
        } = open
        {
            if let Some(mtime) = registration.state.mtime() {
                writer.set_mtime(mtime);
            }
            let bytes = writer.len();
            let result = writer.commit(&self.vfs, path.as_bytes()).await;
            drop(registration);
            result.map_err(|e| {
                tracing::warn!("upload of {path} failed: {e}");
                vfs_err(e)
            })?;
            tracing::info!(bytes, "stored {path}");
        }
        Ok(ok(id))
    }

    async fn read(&mut self, id: u32, handle: String, offset: u64, len: u32) -> Result<Data, Self::Error> {
        let len = u64::from(len.min(MAX_READ));
        let vfs = self.vfs.clone();
        let data = match self.handle(&handle)? {
            OpenHandle::Read { contents, .. } => contents.read(offset, len).await.map_err(vfs_err)?,
            OpenHandle::Write {
                writer, readable: true, ..
            } => writer.read_at(&vfs, offset, len).await.map_err(vfs_err)?,
            OpenHandle::Write { .. } => {
                return Err(StatusCode::PermissionDenied.with_message("handle not opened for reading"));
            }
            OpenHandle::Dir { .. } => return Err(StatusCode::Failure.with_message("is a directory")),
        };
        if data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        Ok(Data { id, data })
    }

    async fn write(&mut self, id: u32, handle: String, offset: u64, data: Vec<u8>) -> Result<Status, Self::Error> {
        let vfs = self.vfs.clone();
        match self.handle(&handle)? {
            OpenHandle::Write {
                writer,
                append,
                registration,
                ..
            } => {
                let at = if *append { writer.len() } else { offset };
                check_extent(writer.len(), at, data.len() as u64)?;
                writer.write_at(&vfs, at, &data).await.map_err(vfs_err)?;
                registration.state.size.store(writer.len(), Ordering::Relaxed);
                Ok(ok(id))
            }
            _ => Err(StatusCode::PermissionDenied.with_message("handle not opened for writing")),
        }
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        let attrs = self.stat_path(&path).await.map_err(vfs_err)?;
        Ok(Attrs { id, attrs })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handle(&handle)? {
            OpenHandle::Read { stat, .. } => attributes(stat),
            OpenHandle::Write {
                writer, registration, ..
            } => attributes(&Stat {
                kind: Kind::File,
                size: writer.len(),
                mtime: registration.state.mtime().or(Some(now_secs() as f64)),
                read_only: false,
            }),
            OpenHandle::Dir { .. } => return Err(StatusCode::Failure.with_message("is a directory")),
        };
        Ok(Attrs { id, attrs })
    }

    async fn setstat(&mut self, id: u32, path: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.set_path_attributes(&path, &attrs).await?;
        Ok(ok(id))
    }

    async fn fsetstat(&mut self, id: u32, handle: String, attrs: FileAttributes) -> Result<Status, Self::Error> {
        let read_only = self.vfs.is_read_only();
        let vfs = self.vfs.clone();
        match self.handle(&handle)? {
            OpenHandle::Write {
                writer, registration, ..
            } => {
                if let Some(size) = attrs.size {
                    check_extent(writer.len(), size, 0)?;
                    writer.set_len(&vfs, size).await.map_err(vfs_err)?;
                    registration.state.size.store(size, Ordering::Relaxed);
                }
                if let Some(mtime) = attrs.mtime {
                    registration.state.set_mtime(f64::from(mtime));
                }
                Ok(ok(id))
            }
            OpenHandle::Read { .. } if read_only => Err(vfs_err(vfs::Error::new(ErrorKind::PermissionDenied))),
            OpenHandle::Read { .. } if attrs.size.is_some() => {
                Err(StatusCode::PermissionDenied.with_message("handle not opened for writing"))
            }
            // Times and permissions on a read handle: accepted (nothing to store until a path is named).
            _ => Ok(ok(id)),
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        let mut listing = self.vfs.list(path.as_bytes()).await.map_err(vfs_err)?;
        listing.sort_by(|a, b| a.0.cmp(&b.0));
        let now = now_secs();
        let entries = listing
            .iter()
            .map(|(name, stat)| entry(name, stat, &self.user, now))
            .collect();
        let handle = self.add_handle(OpenHandle::Dir { entries })?;
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handle(&handle)? {
            OpenHandle::Dir { entries } => {
                if entries.is_empty() {
                    return Err(StatusCode::Eof.into());
                }
                let n = entries.len().min(ENTRIES_PER_REPLY);
                Ok(Name {
                    id,
                    files: entries.drain(..n).collect(),
                })
            }
            _ => Err(StatusCode::Failure.with_message("not a directory handle")),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let path = normalize(&filename).map_err(vfs_err)?;
        self.vfs.remove(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(ok(id))
    }

    async fn mkdir(&mut self, id: u32, path: String, _attrs: FileAttributes) -> Result<Status, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.vfs.mkdir(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.vfs.rmdir(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let path = normalize(&path).map_err(vfs_err)?;
        Ok(Name {
            id,
            files: vec![File::dummy(path)],
        })
    }

    async fn rename(&mut self, id: u32, oldpath: String, newpath: String) -> Result<Status, Self::Error> {
        let (from, to) = (
            normalize(&oldpath).map_err(vfs_err)?,
            normalize(&newpath).map_err(vfs_err)?,
        );
        // Plain SFTP rename never replaces (as OpenSSH); posix-rename@openssh.com does.
        self.vfs
            .rename(from.as_bytes(), to.as_bytes(), false)
            .await
            .map_err(vfs_err)?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, Self::Error> {
        Err(StatusCode::OpUnsupported.with_message("symbolic links are not supported"))
    }

    async fn symlink(&mut self, _id: u32, _linkpath: String, _targetpath: String) -> Result<Status, Self::Error> {
        Err(StatusCode::OpUnsupported.with_message("symbolic links are not supported"))
    }

    async fn extended(&mut self, id: u32, request: String, data: Vec<u8>) -> Result<Packet, Self::Error> {
        let mut data = Bytes::from(data);
        let malformed = |_| StatusCode::BadMessage.with_message("malformed extended request");
        match request.as_str() {
            "posix-rename@openssh.com" => {
                let paths: TwoPaths = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                let from = normalize(&paths.from).map_err(vfs_err)?;
                let to = normalize(&paths.to).map_err(vfs_err)?;
                self.vfs
                    .rename(from.as_bytes(), to.as_bytes(), true)
                    .await
                    .map_err(vfs_err)?;
                Ok(Packet::Status(ok(id)))
            }
            extensions::STATVFS => {
                let request: extensions::StatvfsExtension = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                let path = normalize(&request.path).map_err(vfs_err)?;
                self.vfs.stat(path.as_bytes()).await.map_err(vfs_err)?;
                let figures = self.statvfs().await;
                let data = russh_sftp::ser::to_bytes(&figures)
                    .map_err(|_| StatusReply::from(StatusCode::Failure))?
                    .to_vec();
                Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
            }
            extensions::LIMITS => {
                // OpenSSH's client then reads and writes in 255 KiB requests instead of 32 KiB.
                let limits = extensions::LimitsExtension {
                    max_packet_len: u64::from(MAX_PACKET),
                    max_read_len: u64::from(MAX_READ),
                    max_write_len: u64::from(MAX_WRITE),
                    max_open_handles: MAX_HANDLES as u64,
                };
                let data = russh_sftp::ser::to_bytes(&limits)
                    .map_err(|_| StatusReply::from(StatusCode::Failure))?
                    .to_vec();
                Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
            }
            extensions::FSYNC => {
                let request: extensions::FsyncExtension = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                let vfs = self.vfs.clone();
                if let OpenHandle::Write {
                    path,
                    writer,
                    registration,
                    ..
                } = self.handle(&request.handle)?
                {
                    // A commit barrier: what was written so far is on the grid when this returns.
                    if let Some(mtime) = registration.state.mtime() {
                        writer.set_mtime(mtime);
                    }
                    writer.sync(&vfs, path.as_bytes()).await.map_err(vfs_err)?;
                }
                Ok(Packet::Status(ok(id)))
            }
            _ => Err(StatusCode::OpUnsupported.with_message(format!("unsupported extension {request}"))),
        }
    }
}
