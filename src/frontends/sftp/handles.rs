//! Open handles: each served by a task of its own that takes the handle's requests in the order they arrived, so writes land in order, a listing goes on where it stopped and a close follows the requests before it.
//!
//! Requests of different handles run side by side; those of one handle never do
//! (a read streams the file from where the last one stopped, a write extends
//! what the last one wrote). The table maps handle strings to the tasks' queues;
//! a handle whose queue is dropped (the session ended) is dropped unclosed, and
//! what was written to it is not stored.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use russh_sftp::extensions::{self, FsyncExtension};
use russh_sftp::protocol::{Attrs, File, FileAttributes, Name, Packet, StatusCode};
use russh_sftp::server::StatusReply;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::attrs::attributes;
use super::check_file::{self, CheckFile};
use super::open_writes::Registration;
use super::openssh::{self, ReadSource};
use super::replies::{self, Replies};
use super::requests::{Ticket, check_extent, now_secs, ok, vfs_err};
use super::session::statvfs_reply;
use crate::frontends::file_reader::FileContents;
use crate::frontends::file_writer::FileWriter;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind, Kind, Stat, Vfs};

/// Directory entries sent per READDIR reply.
const ENTRIES_PER_REPLY: usize = 128;
/// Open handles one session may hold.
pub const MAX_HANDLES: usize = 512;
/// The most a READ is answered with: what OpenSSH's sftp-server answers and its client asks
/// (`-B 261120`, or by default after our limits@openssh.com reply). A client asking for more gets
/// a short read and asks again.
pub const MAX_READ: u32 = 255 * 1024;

/// What an open handle is.
pub enum OpenHandle {
    /// A file opened for reading: the version it opened, streamed.
    Read {
        /// The contents.
        contents: FileContents,
        /// Its stat at open.
        stat: Stat,
        /// Its normalized path.
        path: String,
        /// What a copy-data request copies from it.
        source: ReadSource,
    },
    /// A file opened for writing, committed on close.
    Write {
        /// Its normalized path.
        path: String,
        /// What was written so far.
        writer: FileWriter,
        /// Every write goes to the end.
        append: bool,
        /// Opened for reading too.
        readable: bool,
        /// What other sessions see of it.
        registration: Registration,
    },
    /// A directory listing, handed out in pieces.
    Dir {
        /// What is left of it.
        entries: VecDeque<File>,
    },
}

/// A request naming a handle.
#[derive(Debug)]
pub enum HandleRequest {
    /// SSH_FXP_READ.
    Read {
        /// Where from.
        offset: u64,
        /// How much at most.
        len: u32,
    },
    /// SSH_FXP_WRITE.
    Write {
        /// Where to.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// SSH_FXP_FSTAT.
    Fstat,
    /// SSH_FXP_FSETSTAT.
    FSetStat {
        /// The attributes to set.
        attrs: FileAttributes,
    },
    /// SSH_FXP_READDIR.
    ReadDir,
    /// fsync@openssh.com.
    Fsync,
    /// check-file-handle (and paramiko's check-file).
    CheckFile(CheckFile),
    /// fstatvfs@openssh.com.
    Statvfs,
    /// copy-data into this handle from a file open for reading.
    CopyData {
        /// The file copied from.
        source: ReadSource,
        /// Where from in it.
        read_offset: u64,
        /// How much (0: to its end).
        read_len: u64,
        /// Where to in this file.
        write_offset: u64,
    },
    /// SSH_FXP_CLOSE.
    Close,
}

/// One request for a handle's task, with the request's place in the session's limits.
pub struct HandleJob {
    /// The request id.
    pub id: u32,
    /// What is asked.
    pub request: HandleRequest,
    /// Held until the request is handled.
    pub ticket: Ticket,
}

/// The open handles of one session: handle string to the queue of its task.
#[derive(Default)]
pub struct HandleTable {
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<HandleJob>>>,
    /// The files open for reading, for copy-data requests that name them as their source.
    sources: Mutex<HashMap<String, ReadSource>>,
    next: AtomicU64,
}

impl HandleTable {
    /// Starts a task for `handle` and names it, unless the session holds [`MAX_HANDLES`] already.
    pub fn insert(&self, handle: OpenHandle, vfs: Vfs, replies: Replies) -> Result<String, StatusReply> {
        let mut queues = self.queues.lock().map_err(|_| StatusReply::from(StatusCode::Failure))?;
        if queues.len() >= MAX_HANDLES {
            return Err(StatusCode::Failure.with_message("too many open handles"));
        }
        let name = (self.next.fetch_add(1, Ordering::Relaxed) + 1).to_string();
        let (queue, jobs) = mpsc::unbounded_channel();
        queues.insert(name.clone(), queue);
        if let (OpenHandle::Read { source, .. }, Ok(mut sources)) = (&handle, self.sources.lock()) {
            sources.insert(name.clone(), source.clone());
        }
        tokio::spawn(serve_handle(handle, vfs, jobs, replies).in_current_span());
        Ok(name)
    }

    /// The file open for reading under `handle`, if it is one.
    pub fn read_source(&self, handle: &str) -> Option<ReadSource> {
        self.sources.lock().ok()?.get(handle).cloned()
    }

    /// Queues `job` for `handle`; a CLOSE also takes the handle out of the table, so requests after
    /// it find no such handle. False (the job dropped) if there is no such handle.
    pub fn queue(&self, handle: &str, job: HandleJob) -> bool {
        let Ok(mut queues) = self.queues.lock() else {
            return false;
        };
        let queue = if matches!(job.request, HandleRequest::Close) {
            if let Ok(mut sources) = self.sources.lock() {
                sources.remove(handle);
            }
            queues.remove(handle)
        } else {
            queues.get(handle).cloned()
        };
        queue.is_some_and(|queue| queue.send(job).is_ok())
    }
}

/// The task of one handle: its requests one after the other until CLOSE, or until the session
/// ends (the queue closes).
async fn serve_handle(handle: OpenHandle, vfs: Vfs, mut jobs: mpsc::UnboundedReceiver<HandleJob>, replies: Replies) {
    let mut open = Some(handle);
    while let Some(HandleJob { id, request, ticket }) = jobs.recv().await {
        let Some(handle) = open.as_mut() else {
            break;
        };
        match request {
            HandleRequest::Read { offset, len } => read(handle, &vfs, id, offset, len, &replies).await,
            HandleRequest::Close => {
                let result = match open.take() {
                    Some(handle) => close(handle, &vfs, id).await,
                    None => Err(no_such_handle()),
                };
                replies.send(id, result).await;
            }
            request => {
                let result = answer(handle, &vfs, id, request).await;
                replies.send(id, result).await;
            }
        }
        drop(ticket);
    }
}

fn no_such_handle() -> StatusReply {
    StatusCode::Failure.with_message("no such handle")
}

/// Answers a READ, its data copied once: from the file into the reply frame.
async fn read(handle: &mut OpenHandle, vfs: &Vfs, id: u32, offset: u64, len: u32, replies: &Replies) {
    let len = len.min(MAX_READ) as usize;
    let Some(budget) = replies.reserve(replies::DATA_HEADER + len).await else {
        return;
    };
    let mut frame = replies::start_data(id, len);
    let read = match handle {
        OpenHandle::Read { contents, .. } => contents
            .read_into(offset, len as u64, &mut frame)
            .await
            .map_err(vfs_err),
        OpenHandle::Write {
            writer, readable: true, ..
        } => match writer.read_at(vfs, offset, len as u64).await {
            Ok(data) => {
                frame.extend_from_slice(&data);
                Ok(data.len())
            }
            Err(error) => Err(vfs_err(error)),
        },
        OpenHandle::Write { .. } => Err(StatusCode::PermissionDenied.with_message("handle not opened for reading")),
        OpenHandle::Dir { .. } => Err(StatusCode::Failure.with_message("is a directory")),
    };
    match read {
        Ok(0) => {
            drop(budget);
            replies.send(id, Err(StatusCode::Eof.into())).await;
        }
        Ok(_) => replies.send_reserved(replies::finish_data(frame), budget),
        Err(error) => {
            drop(budget);
            replies.send(id, Err(error)).await;
        }
    }
}

/// Commits a file written through the handle; the status is the commit's result.
async fn close(handle: OpenHandle, vfs: &Vfs, id: u32) -> Result<Packet, StatusReply> {
    if let OpenHandle::Write {
        path,
        mut writer,
        registration,
        ..
    } = handle
    {
        if let Some(mtime) = registration.state.mtime() {
            writer.set_mtime(mtime);
        }
        if let Some(mode) = registration.state.mode() {
            writer.set_mode(mode);
        }
        let bytes = writer.len();
        let result = writer.commit(vfs, path.as_bytes()).await;
        drop(registration);
        result.map_err(|e| {
            tracing::warn!("upload of {} failed: {e}", vfs::loggable(&path));
            vfs_err(e)
        })?;
        tracing::info!(bytes, "stored {}", vfs::loggable(&path));
    }
    Ok(Packet::Status(ok(id)))
}

/// The answer to every other request of a handle.
async fn answer(handle: &mut OpenHandle, vfs: &Vfs, id: u32, request: HandleRequest) -> Result<Packet, StatusReply> {
    match request {
        HandleRequest::Write { offset, data } => write(handle, vfs, id, offset, &data).await,
        HandleRequest::Fstat => fstat(handle, id),
        HandleRequest::FSetStat { attrs } => fsetstat(handle, vfs, id, &attrs).await,
        HandleRequest::ReadDir => readdir(handle, id),
        HandleRequest::Fsync => fsync(handle, vfs, id).await,
        HandleRequest::Statvfs => statvfs_reply(vfs, id).await,
        HandleRequest::CopyData {
            source,
            read_offset,
            read_len,
            write_offset,
        } => copy_data(handle, vfs, id, source, (read_offset, read_len), write_offset).await,
        HandleRequest::CheckFile(request) => match handle {
            OpenHandle::Read { path, .. } => check_file::answer(vfs, id, path, &request).await,
            _ => Err(StatusCode::OpUnsupported.with_message("only files open for reading are hashed")),
        },
        // Served by serve_handle itself.
        HandleRequest::Read { .. } | HandleRequest::Close => Err(StatusCode::Failure.into()),
    }
}

async fn write(handle: &mut OpenHandle, vfs: &Vfs, id: u32, offset: u64, data: &[u8]) -> Result<Packet, StatusReply> {
    match handle {
        OpenHandle::Write {
            writer,
            append,
            registration,
            ..
        } => {
            let at = if *append { writer.len() } else { offset };
            check_extent(writer.len(), at, data.len() as u64)?;
            writer.write_at(vfs, at, data).await.map_err(vfs_err)?;
            registration.state.set_size(writer.len());
            Ok(Packet::Status(ok(id)))
        }
        _ => Err(StatusCode::PermissionDenied.with_message("handle not opened for writing")),
    }
}

fn fstat(handle: &OpenHandle, id: u32) -> Result<Packet, StatusReply> {
    let attrs = match handle {
        OpenHandle::Read { stat, .. } => attributes(stat),
        OpenHandle::Write {
            writer, registration, ..
        } => attributes(&Stat {
            kind: Kind::File,
            size: writer.len(),
            mtime: registration.state.mtime().or(Some(now_secs() as f64)),
            read_only: false,
            mode: registration.state.mode(),
        }),
        OpenHandle::Dir { .. } => return Err(StatusCode::Failure.with_message("is a directory")),
    };
    Ok(Packet::Attrs(Attrs { id, attrs }))
}

async fn fsetstat(handle: &mut OpenHandle, vfs: &Vfs, id: u32, attrs: &FileAttributes) -> Result<Packet, StatusReply> {
    match handle {
        OpenHandle::Write {
            writer, registration, ..
        } => {
            if let Some(size) = attrs.size {
                check_extent(writer.len(), size, 0)?;
                writer.set_len(vfs, size).await.map_err(vfs_err)?;
                registration.state.set_size(size);
            }
            if let Some(mtime) = attrs.mtime {
                registration.state.set_mtime(f64::from(mtime));
            }
            if let Some(permissions) = attrs.permissions {
                registration.state.set_mode(permissions & 0o7777);
            }
            Ok(Packet::Status(ok(id)))
        }
        OpenHandle::Read { .. } if vfs.is_read_only() => Err(vfs_err(vfs::Error::new(ErrorKind::PermissionDenied))),
        OpenHandle::Read { .. } if attrs.size.is_some() => {
            Err(StatusCode::PermissionDenied.with_message("handle not opened for writing"))
        }
        // Times and permissions on a read handle: accepted (nothing to store until a path is named).
        _ => Ok(Packet::Status(ok(id))),
    }
}

fn readdir(handle: &mut OpenHandle, id: u32) -> Result<Packet, StatusReply> {
    match handle {
        OpenHandle::Dir { entries } => {
            if entries.is_empty() {
                return Err(StatusCode::Eof.into());
            }
            let n = entries.len().min(ENTRIES_PER_REPLY);
            Ok(Packet::Name(Name {
                id,
                files: entries.drain(..n).collect(),
            }))
        }
        _ => Err(StatusCode::Failure.with_message("not a directory handle")),
    }
}

/// Bytes copied per step when copy-data copies part of a file.
const COPY_CHUNK: u64 = 1 << 20;

/// copy-data into a file open for writing. A copy that makes it exactly the source links the
/// source's cap on commit (no byte is read or stored); any other copy reads and writes the bytes.
async fn copy_data(
    handle: &mut OpenHandle,
    vfs: &Vfs,
    id: u32,
    source: ReadSource,
    (read_offset, read_len): (u64, u64),
    write_offset: u64,
) -> Result<Packet, StatusReply> {
    let OpenHandle::Write {
        writer, registration, ..
    } = handle
    else {
        return Err(StatusCode::PermissionDenied.with_message("handle not opened for writing"));
    };
    // A mutable source is copied by its bytes: linking its cap would share it, not copy it.
    if !matches!(source.cap, Cap::Mutable(_))
        && openssh::copies_whole(&source, read_offset, read_len, write_offset, writer.len())
    {
        writer.take_whole(source.cap, source.size, source.sha256);
        registration.state.set_size(source.size);
        return Ok(Packet::Status(ok(id)));
    }
    let end = match read_len {
        0 => source.size,
        len => read_offset.saturating_add(len).min(source.size),
    };
    check_extent(writer.len(), write_offset, end.saturating_sub(read_offset))?;
    let mut contents = FileContents::open_in(vfs.grid(), &source.cap, writer.spool_dir())
        .await
        .map_err(vfs_err)?;
    let mut at = read_offset;
    while at < end {
        let piece = contents.read(at, COPY_CHUNK.min(end - at)).await.map_err(vfs_err)?;
        if piece.is_empty() {
            break;
        }
        writer
            .write_at(vfs, write_offset + (at - read_offset), &piece)
            .await
            .map_err(vfs_err)?;
        at += piece.len() as u64;
    }
    registration.state.set_size(writer.len());
    Ok(Packet::Status(ok(id)))
}

/// A commit barrier: what was written so far is on the grid when this answers.
async fn fsync(handle: &mut OpenHandle, vfs: &Vfs, id: u32) -> Result<Packet, StatusReply> {
    if let OpenHandle::Write {
        path,
        writer,
        registration,
        ..
    } = handle
    {
        if let Some(mtime) = registration.state.mtime() {
            writer.set_mtime(mtime);
        }
        if let Some(mode) = registration.state.mode() {
            writer.set_mode(mode);
        }
        writer.sync(vfs, path.as_bytes()).await.map_err(vfs_err)?;
    }
    Ok(Packet::Status(ok(id)))
}

/// The handle an fsync@openssh.com request names.
pub fn fsync_handle(data: Vec<u8>) -> Result<String, StatusReply> {
    let mut data = bytes::Bytes::from(data);
    let request: FsyncExtension = russh_sftp::de::from_bytes(&mut data)
        .map_err(|_| StatusCode::BadMessage.with_message("malformed extended request"))?;
    Ok(request.handle)
}

/// The name fsync@openssh.com goes by.
pub const FSYNC: &str = extensions::FSYNC;
