//! One SFTP session's requests that name paths (and INIT): answered through the vfs, several at once, each from `&self`.
//!
//! Offsets and sizes are checked against [`crate::vfs::MAX_FILE_SIZE`] and [`super::requests::MAX_GAP`] before
//! any work. Opening a file or directory makes an [`OpenHandle`]; what is done
//! with a handle afterwards is in [`super::handles`]. Which requests may run
//! beside which is [`super::dispatch`]'s business.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::extensions::{self, Statvfs};
use russh_sftp::protocol::{
    Attrs, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, StatusCode, Version,
};
use russh_sftp::server::StatusReply;
use serde::Deserialize;

use super::attrs::{attributes, entry};
use super::check_file::{self, CheckFile};
use super::framing::MAX_REQUEST_LEN;
use super::handles::{HandleTable, MAX_HANDLES, MAX_READ, OpenHandle};
use super::open_writes::OpenWrites;
use super::openssh::{self, Hardlink, ReadSource};
use super::replies::Replies;
use super::requests::{check_extent, now_secs, ok, vfs_err};
use crate::frontends::file_reader::FileContents;
use crate::frontends::file_writer::FileWriter;
use crate::vfs::{self, ErrorKind, Kind, Stat, Vfs};

/// The largest WRITE advertised: a packet less room for its header.
const MAX_WRITE: u32 = MAX_REQUEST_LEN - 1024;

/// The SFTP side of one logged-in connection: what its requests need, shared by those in progress.
pub struct SftpSession {
    vfs: Vfs,
    user: String,
    spool_dir: PathBuf,
    open_writes: Arc<OpenWrites>,
    handles: HandleTable,
}

impl SftpSession {
    /// A session for `user` over `vfs`, spooling random writes under `spool_dir`.
    pub fn new(vfs: Vfs, user: String, spool_dir: PathBuf, open_writes: Arc<OpenWrites>) -> Self {
        SftpSession {
            vfs,
            user,
            spool_dir,
            open_writes,
            handles: HandleTable::default(),
        }
    }

    /// The session's open handles.
    pub fn handles(&self) -> &HandleTable {
        &self.handles
    }

    /// The VERSION reply to INIT, with the extensions served.
    pub fn version() -> Packet {
        let mut version = Version::new();
        version.extensions.insert("posix-rename@openssh.com".into(), "1".into());
        version.extensions.insert(extensions::STATVFS.into(), "2".into());
        version.extensions.insert(extensions::FSYNC.into(), "1".into());
        version.extensions.insert(extensions::LIMITS.into(), "1".into());
        version.extensions.insert(check_file::BY_NAME.into(), "1".into());
        version.extensions.insert(check_file::BY_HANDLE.into(), "1".into());
        openssh::announce(&mut version);
        Packet::Version(version)
    }

    /// The limits@openssh.com reply: OpenSSH's client then reads and writes in 255 KiB requests
    /// instead of 32 KiB.
    pub fn limits(id: u32) -> Result<Packet, StatusReply> {
        let limits = extensions::LimitsExtension {
            max_packet_len: u64::from(MAX_REQUEST_LEN),
            max_read_len: u64::from(MAX_READ),
            max_write_len: u64::from(MAX_WRITE),
            max_open_handles: MAX_HANDLES as u64,
        };
        let data = russh_sftp::ser::to_bytes(&limits)
            .map_err(|_| StatusReply::from(StatusCode::Failure))?
            .to_vec();
        Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
    }

    /// OPEN: a handle for reading, or for writing if any write flag is set.
    pub async fn open(
        &self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        replies: &Replies,
    ) -> Result<Packet, StatusReply> {
        let path = normalize(&filename).map_err(vfs_err)?;
        if path == "/" {
            return Err(vfs_err(vfs::Error::new(ErrorKind::IsADirectory)));
        }
        let handle = if opens_for_writing(pflags) {
            self.open_for_writing(path, pflags).await.map_err(vfs_err)?
        } else {
            let (cap, stat, metadata) = self.vfs.lookup_entry(path.as_bytes()).await.map_err(vfs_err)?;
            if stat.kind == Kind::Directory {
                return Err(vfs_err(vfs::Error::new(ErrorKind::IsADirectory)));
            }
            let contents = FileContents::open_in(self.vfs.grid(), &cap, &self.spool_dir)
                .await
                .map_err(vfs_err)?;
            let source = ReadSource {
                cap,
                size: stat.size,
                sha256: vfs::sha256_of(&metadata),
            };
            OpenHandle::Read {
                contents,
                stat,
                path,
                source,
            }
        };
        let handle = self.handles.insert(handle, self.vfs.clone(), replies.clone())?;
        Ok(Packet::Handle(Handle { id, handle }))
    }

    async fn open_for_writing(&self, path: String, flags: OpenFlags) -> Result<OpenHandle, vfs::Error> {
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
            _ => FileWriter::create(&self.spool_dir).replacing(existing.as_ref()),
        };
        let registration = self.open_writes.register(&self.user, &path);
        registration.state.set_size(writer.len());
        Ok(OpenHandle::Write {
            path,
            writer,
            append: flags.contains(OpenFlags::APPEND),
            readable: flags.contains(OpenFlags::READ),
            registration,
        })
    }

    /// OPENDIR: the whole listing is read now and handed out by READDIR.
    pub async fn opendir(&self, id: u32, path: String, replies: &Replies) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        let mut listing = self.vfs.list(path.as_bytes()).await.map_err(vfs_err)?;
        listing.sort_by(|a, b| a.0.cmp(&b.0));
        let now = now_secs();
        let entries = listing
            .iter()
            .map(|(name, stat)| entry(name, stat, &self.user, now))
            .collect();
        let handle = self
            .handles
            .insert(OpenHandle::Dir { entries }, self.vfs.clone(), replies.clone())?;
        Ok(Packet::Handle(Handle { id, handle }))
    }

    /// STAT and LSTAT (there are no links), counting files open for writing (their current size)
    /// before the grid.
    pub async fn stat(&self, id: u32, path: String) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        if let Some(state) = self.open_writes.latest(&self.user, &path) {
            let stat = Stat {
                kind: Kind::File,
                size: state.size(),
                mtime: state.mtime().or(Some(now_secs() as f64)),
                read_only: false,
                mode: state.mode(),
            };
            return Ok(Packet::Attrs(Attrs {
                id,
                attrs: attributes(&stat),
            }));
        }
        let stat = self.vfs.stat(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(Packet::Attrs(Attrs {
            id,
            attrs: attributes(&stat),
        }))
    }

    /// SETSTAT: a size change rewrites the file; an mtime is recorded; the rest is accepted.
    pub async fn setstat(&self, id: u32, path: String, attrs: FileAttributes) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.set_path_attributes(&path, &attrs).await?;
        Ok(Packet::Status(ok(id)))
    }

    async fn set_path_attributes(&self, path: &str, attrs: &FileAttributes) -> Result<(), StatusReply> {
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
            if let Some(permissions) = attrs.permissions {
                state.set_mode(permissions & 0o7777);
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
                    FileWriter::create(&self.spool_dir).replacing(Some(&cap))
                } else {
                    FileWriter::resume(&self.vfs, &cap, &self.spool_dir)
                        .await
                        .map_err(vfs_err)?
                };
                writer.set_len(&self.vfs, size).await.map_err(vfs_err)?;
                if let Some(mtime) = attrs.mtime {
                    writer.set_mtime(f64::from(mtime));
                }
                if let Some(permissions) = attrs.permissions {
                    writer.set_mode(permissions & 0o7777);
                }
                return writer.commit(&self.vfs, path.as_bytes()).await.map_err(vfs_err);
            }
        }
        let attributes = vfs::EntryMetadata {
            mtime: attrs.mtime.map(f64::from),
            mode: attrs.permissions.map(|p| p & 0o7777),
            sha256: None,
        };
        if attributes == vfs::EntryMetadata::default() {
            // Owners have no meaning on the grid; accept them so copies with -p work.
            return self.vfs.stat(path.as_bytes()).await.map(|_| ()).map_err(vfs_err);
        }
        self.vfs
            .set_attributes(path.as_bytes(), attributes)
            .await
            .map_err(vfs_err)
    }

    /// REMOVE.
    pub async fn remove(&self, id: u32, filename: String) -> Result<Packet, StatusReply> {
        let path = normalize(&filename).map_err(vfs_err)?;
        self.vfs.remove(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(Packet::Status(ok(id)))
    }

    /// MKDIR.
    pub async fn mkdir(&self, id: u32, path: String) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.vfs.mkdir(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(Packet::Status(ok(id)))
    }

    /// RMDIR.
    pub async fn rmdir(&self, id: u32, path: String) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.vfs.rmdir(path.as_bytes()).await.map_err(vfs_err)?;
        Ok(Packet::Status(ok(id)))
    }

    /// REALPATH: the normalized path, whether or not it exists (as OpenSSH before 8.x).
    pub fn realpath(id: u32, path: String) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        Ok(Packet::Name(Name {
            id,
            files: vec![File::dummy(path)],
        }))
    }

    /// RENAME (never replaces, as OpenSSH) and posix-rename@openssh.com (replaces).
    pub async fn rename(
        &self,
        id: u32,
        oldpath: String,
        newpath: String,
        replace: bool,
    ) -> Result<Packet, StatusReply> {
        let (from, to) = (
            normalize(&oldpath).map_err(vfs_err)?,
            normalize(&newpath).map_err(vfs_err)?,
        );
        self.vfs
            .rename(from.as_bytes(), to.as_bytes(), replace)
            .await
            .map_err(vfs_err)?;
        Ok(Packet::Status(ok(id)))
    }

    /// check-file-name: the file's SHA-256.
    pub async fn check_file(&self, id: u32, request: CheckFile) -> Result<Packet, StatusReply> {
        let path = normalize(&request.target).map_err(vfs_err)?;
        check_file::answer(&self.vfs, id, &path, &request).await
    }

    /// hardlink@openssh.com: a second name for a file (the same cap), as link(2).
    pub async fn hardlink(&self, id: u32, paths: Hardlink) -> Result<Packet, StatusReply> {
        let (from, to) = (
            normalize(&paths.oldpath).map_err(vfs_err)?,
            normalize(&paths.newpath).map_err(vfs_err)?,
        );
        self.vfs
            .hard_link(from.as_bytes(), to.as_bytes())
            .await
            .map_err(vfs_err)?;
        Ok(Packet::Status(ok(id)))
    }

    /// expand-path@openssh.com: REALPATH with `~` expanded (every home is the root).
    pub fn expand_path(id: u32, path: &str) -> Result<Packet, StatusReply> {
        let path = normalize(&openssh::expand_tilde(path)).map_err(vfs_err)?;
        Ok(openssh::one_name(id, path))
    }

    /// users-groups-by-id@openssh.com.
    pub fn users_groups_by_id(&self, id: u32, data: &[u8]) -> Result<Packet, StatusReply> {
        openssh::users_groups_by_id(id, data, &self.user)
    }

    /// statvfs@openssh.com: the grid's free space, in 4 KiB blocks.
    pub async fn statvfs(&self, id: u32, path: String) -> Result<Packet, StatusReply> {
        let path = normalize(&path).map_err(vfs_err)?;
        self.vfs.stat(path.as_bytes()).await.map_err(vfs_err)?;
        statvfs_reply(&self.vfs, id).await
    }
}

/// The statvfs@openssh.com and fstatvfs@openssh.com reply: the grid's free space in 4 KiB blocks.
pub async fn statvfs_reply(vfs: &Vfs, id: u32) -> Result<Packet, StatusReply> {
    {
        const BLOCK: u64 = 4096;
        let free = vfs.available_space().await / BLOCK;
        let figures = Statvfs {
            block_size: BLOCK,
            fragment_size: BLOCK,
            blocks: free,
            blocks_free: free,
            blocks_avail: free,
            inodes: 0,
            inodes_free: 0,
            inodes_avail: 0,
            fs_id: 0,
            flags: if vfs.is_read_only() { 1 } else { 0 }, // ST_RDONLY
            name_max: 255,
        };
        let data = russh_sftp::ser::to_bytes(&figures)
            .map_err(|_| StatusReply::from(StatusCode::Failure))?
            .to_vec();
        Ok(Packet::ExtendedReply(ExtendedReply { id, data }))
    }
}

/// Whether OPEN with these flags opens for writing.
pub fn opens_for_writing(pflags: OpenFlags) -> bool {
    pflags.intersects(OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE)
}

/// The two paths of a posix-rename@openssh.com request.
#[derive(Deserialize)]
pub struct TwoPaths {
    /// The old path.
    pub from: String,
    /// The new path.
    pub to: String,
}

/// Decodes an extended request's payload.
pub fn extended_payload<T: serde::de::DeserializeOwned>(data: Vec<u8>) -> Result<T, StatusReply> {
    let mut data = Bytes::from(data);
    russh_sftp::de::from_bytes(&mut data).map_err(|_| StatusCode::BadMessage.with_message("malformed extended request"))
}

/// The extensions' payload types, for [`extended_payload`].
pub use russh_sftp::extensions::StatvfsExtension;

/// Normalizes a client path to `/a/b` (relative paths start at the root; `..` stops there).
fn normalize(path: &str) -> Result<String, vfs::Error> {
    // `~/x` (OpenSSH sftp's `cd ~/x`) starts at the root, every user's home.
    let path = openssh::expand_tilde(path);
    let names = vfs::split_path(path.as_bytes())?;
    Ok(format!("/{}", names.join("/")))
}
