//! A file being written by a client: its bytes, whether they changed, and committing them to the grid on close.
//!
//! A new or truncated file starts in memory. While the client writes in order
//! (as sftp, scp, curl, rclone and FTP do), once it outgrows one segment it is
//! streamed straight into a grid upload, so a big file is encoded while it
//! arrives and close only finishes the last segment. The first write out of
//! order (or a read, truncate or fsync of a streamed file) moves everything to
//! an encrypted spool file instead.
//!
//! Every byte held in memory is accounted in the grid's memory budget. Growth
//! never waits for it (a writer that waited while holding a buffer could wait
//! for the others forever): when the budget is spent, the file goes to the
//! encrypted spool instead, and its upload later waits for budget holding none.
//!
//! A writer that replaces a mutable file (SDMF, MDMF) never streams and is never journaled:
//! its contents stay in memory or the spool, and the commit publishes them as the file's next
//! version under the same cap (answering only once the grid holds it), within
//! [`vfs::MAX_MUTABLE_FILE_SIZE`].
//!
//! Nothing reaches the directory until [`FileWriter::commit`]: a client that
//! disconnects with the file open leaves the old file (if any) exactly as it was,
//! and no partial file ever appears under the real name. Dropping a writer
//! discards its spool and aborts its streamed upload.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::frontends::file_reader::FileContents;
use crate::grid::budget::BudgetPermit;
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::spool::Spool;
use crate::grid::uri::{Cap, MutableCap};
use crate::grid::{self, Grid};
use crate::vfs::{self, EntryMetadata, Vfs};

mod mutable_target;

/// Existing contents are copied into a spool in pieces of this size.
const COPY_CHUNK: u64 = 1 << 20;
/// Batches queued for a streamed upload before the client is made to wait (beyond the segment
/// its encoder is filling, which the memory budget accounts for).
const STREAM_QUEUE: usize = 4;
/// The smallest buffer a file in memory starts with.
const MIN_BUFFER: usize = 64 * 1024;
/// Client writes (32 KiB each, typically) are gathered into batches of this size before they
/// cross to the encoder thread: one hand-off per 256 KiB instead of one per write.
const STREAM_BATCH: usize = 256 * 1024;

/// The pending contents of one open-for-writing file.
pub struct FileWriter {
    body: Body,
    spool_dir: PathBuf,
    changed: bool,
    mtime: Option<f64>,
    mode: Option<u32>,
    /// The SHA-256 of the contents so far, while every write came in order from the start (the
    /// digest is then recorded with the entry at no extra pass); `None` after any other change.
    hasher: Option<Sha256>,
    /// The digest of contents taken whole from a stored file, when its entry recorded one.
    known_sha256: Option<[u8; 32]>,
    /// The mutable file these contents become the next version of (`None`: a new immutable file).
    mutable: Option<MutableCap>,
}

enum Body {
    /// Everything so far, written in order, at most one segment and a bit.
    Memory(Buffer),
    /// Flowing into a grid upload.
    Stream(Stream),
    /// Out of order: an encrypted spool file.
    Spool(Spool),
    /// A stored file taken whole (a server-side copy): linked as it is, no byte read or stored.
    Linked {
        /// The file.
        cap: Cap,
        /// Its size.
        len: u64,
    },
}

/// A file's bytes in memory and the budget permit that accounts for the buffer's capacity.
#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    permit: BudgetPermit,
}

impl Buffer {
    /// Makes room for `extra` more bytes, taking budget for it only if it is free now (the
    /// buffer grows by doubling up to one segment and a write). False: no room.
    fn make_room(&mut self, extra: usize, grid: &Grid) -> bool {
        let needed = self.data.len().saturating_add(extra);
        if needed <= self.data.capacity() {
            return true;
        }
        let limit = usize::try_from(grid.params().max_segment_size)
            .unwrap_or(usize::MAX)
            .saturating_add(STREAM_BATCH)
            .max(needed);
        let target = needed
            .max(self.data.capacity().saturating_mul(2))
            .max(MIN_BUFFER)
            .min(limit);
        let more = (target as u64).saturating_sub(self.permit.bytes());
        match grid.memory_budget().try_acquire(more) {
            Some(permit) => {
                self.permit.merge(permit);
                self.data.reserve_exact(target - self.data.len());
                true
            }
            None => false,
        }
    }
}

struct Stream {
    sender: Option<mpsc::Sender<Bytes>>,
    batch: Vec<u8>,
    aborted: Arc<AtomicBool>,
    upload: Option<JoinHandle<Result<Cap, grid::Error>>>,
    len: u64,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // The upload sees the end of its input as an error, so it aborts its shares.
        self.aborted.store(true, Ordering::SeqCst);
        self.sender.take();
    }
}

impl Stream {
    /// Starts streaming `first` (and what follows) into an upload whose first segment's memory
    /// budget is `first_segment`.
    fn start(grid: &Grid, first: Buffer, first_segment: BudgetPermit) -> Stream {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        let aborted = Arc::new(AtomicBool::new(false));
        let len = first.data.len() as u64;
        let segment = usize::try_from(grid.stream_segment_len()).unwrap_or(usize::MAX);
        let source = ChannelSource::new(receiver, first, segment, aborted.clone());
        let grid = grid.clone();
        // In the caller's span: what the grid logs names the connection.
        let upload =
            tokio::spawn(async move { grid.upload_stream_with(source, Some(first_segment)).await }.in_current_span());
        Stream {
            sender: Some(sender),
            batch: Vec::with_capacity(STREAM_BATCH),
            aborted,
            upload: Some(upload),
            len,
        }
    }

    async fn push(&mut self, data: &[u8]) -> Result<(), vfs::Error> {
        self.batch.extend_from_slice(data);
        self.len += data.len() as u64;
        if self.batch.len() >= STREAM_BATCH {
            self.send_batch().await?;
        }
        Ok(())
    }

    async fn send_batch(&mut self) -> Result<(), vfs::Error> {
        let batch = Bytes::from(std::mem::replace(&mut self.batch, Vec::with_capacity(STREAM_BATCH)));
        let sent = match &self.sender {
            Some(sender) => sender.send(batch).await.is_ok(),
            None => false,
        };
        if !sent {
            // The upload stopped early: its own error says why.
            self.sender.take();
            return Err(self
                .wait()
                .await
                .err()
                .unwrap_or_else(|| vfs::Error::new(vfs::ErrorKind::Internal)));
        }
        Ok(())
    }

    /// Ends the input and waits for the file to be stored.
    async fn finish(&mut self) -> Result<Cap, vfs::Error> {
        if !self.batch.is_empty() {
            self.send_batch().await?;
        }
        self.sender.take();
        self.wait().await
    }

    async fn wait(&mut self) -> Result<Cap, vfs::Error> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| vfs::Error::new(vfs::ErrorKind::Internal))?;
        match upload.await {
            Ok(result) => Ok(result?),
            Err(e) => Err(grid::Error::Internal(e.to_string()).into()),
        }
    }
}

/// The blocking side of a streamed upload: reads what the client wrote, in order.
struct ChannelSource {
    receiver: mpsc::Receiver<Bytes>,
    current: Bytes,
    /// The budget of the buffer the stream started from, given back as the encoder takes it.
    current_permit: BudgetPermit,
    /// What the starting buffer held beyond the first segment, read before the channel.
    rest: Option<Bytes>,
    aborted: Arc<AtomicBool>,
}

impl ChannelSource {
    /// A source that starts with `first`, the buffer the stream began from, and goes on with
    /// what `receiver` brings. The upload's first segment (`segment` bytes) takes exactly that
    /// much of the buffer, and with it the buffer's budget; what is left (less than a batch
    /// and a write) follows unaccounted, like a queued batch. Were it to keep budget, the
    /// upload would wait for its second segment's budget while holding some, and a transfer
    /// waiting for the whole budget ahead of it would wait forever.
    fn new(receiver: mpsc::Receiver<Bytes>, first: Buffer, segment: usize, aborted: Arc<AtomicBool>) -> ChannelSource {
        let Buffer { data, mut permit } = first;
        let mut current = Bytes::from(data);
        let rest = current.split_off(segment.min(current.len()));
        permit.shrink_to(current.len() as u64);
        ChannelSource {
            receiver,
            current,
            current_permit: permit,
            rest: (!rest.is_empty()).then_some(rest),
            aborted,
        }
    }
}

impl Read for ChannelSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some(rest) = self.rest.take() {
                self.current = rest;
                continue;
            }
            match self.receiver.blocking_recv() {
                Some(next) => self.current = next,
                None if self.aborted.load(Ordering::SeqCst) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the client went away before closing the file",
                    ));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.current_permit.shrink_to(self.current.len() as u64);
        Ok(n)
    }
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.body {
            Body::Memory(_) => "memory",
            Body::Stream(_) => "stream",
            Body::Spool(_) => "spool",
            Body::Linked { .. } => "linked",
        };
        write!(f, "FileWriter({mode}, len={})", self.len())
    }
}

fn spool_error(e: std::io::Error) -> vfs::Error {
    grid::Error::Io {
        context: "spool an upload".into(),
        source: e,
    }
    .into()
}

impl FileWriter {
    /// A new, empty file (committed even if nothing is written: `touch`, `open(O_CREAT|O_TRUNC)`).
    pub fn create(spool_dir: &Path) -> FileWriter {
        FileWriter {
            body: Body::Memory(Buffer::default()),
            spool_dir: spool_dir.to_path_buf(),
            changed: true,
            mtime: None,
            mode: None,
            hasher: Some(Sha256::new()),
            known_sha256: None,
            mutable: None,
        }
    }

    /// Where its spool goes (and that of files it reads whole).
    pub fn spool_dir(&self) -> &Path {
        &self.spool_dir
    }

    /// A writer that starts from the contents of `existing` (open without truncation: resume, in-place edits).
    /// It commits only if something changes.
    pub async fn resume(vfs: &Vfs, existing: &Cap, spool_dir: &Path) -> Result<FileWriter, vfs::Error> {
        let spool = spool_from(vfs.grid(), existing, spool_dir).await?;
        Ok(FileWriter {
            body: Body::Spool(spool),
            spool_dir: spool_dir.to_path_buf(),
            changed: false,
            mtime: None,
            mode: None,
            hasher: None,
            known_sha256: None,
            mutable: None,
        }
        .replacing(Some(existing)))
    }

    /// The current length.
    pub fn len(&self) -> u64 {
        match &self.body {
            Body::Memory(buffer) => buffer.data.len() as u64,
            Body::Stream(stream) => stream.len,
            Body::Spool(spool) => spool.len(),
            Body::Linked { len, .. } => *len,
        }
    }

    /// Makes the contents exactly those of the stored file `cap` (`len` bytes) without reading
    /// them: the commit links `cap` itself (SFTP's copy-data of a whole file).
    pub fn take_whole(&mut self, cap: Cap, len: u64, sha256: Option<[u8; 32]>) {
        self.body = Body::Linked { cap, len };
        self.changed = true;
        self.hasher = None;
        self.known_sha256 = sha256;
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `data` at `offset` (a gap before it reads as zeros).
    pub async fn write_at(&mut self, vfs: &Vfs, offset: u64, data: &[u8]) -> Result<(), vfs::Error> {
        self.check_mutable_size(offset.saturating_add(data.len() as u64))?;
        self.changed = true;
        let in_order = offset == self.len();
        match &mut self.hasher {
            Some(hasher) if in_order => hasher.update(data),
            _ => self.hasher = None,
        }
        let grid = vfs.grid();
        // No room in the budget: the spool, below.
        let room = match &mut self.body {
            Body::Memory(buffer) if in_order => buffer.make_room(data.len(), grid),
            _ => false,
        };
        match &mut self.body {
            Body::Memory(buffer) if room => {
                buffer.data.extend_from_slice(data);
                if buffer.data.len() as u64 > grid.params().max_segment_size {
                    // Shares must be allocated at their exact size unless the servers take
                    // open-ended ones: else learn the size first, in the spool. The spool too
                    // when the budget has no room for the stream's first segment now.
                    let first_segment = if self.mutable.is_none() && grid.accepts_open_ended_shares() {
                        grid.memory_budget().try_acquire(grid.stream_segment_cost())
                    } else {
                        None
                    };
                    match first_segment {
                        Some(permit) => {
                            let first = std::mem::take(buffer);
                            self.body = Body::Stream(Stream::start(grid, first, permit));
                        }
                        None => {
                            self.spool(vfs).await?;
                        }
                    }
                }
                Ok(())
            }
            Body::Stream(stream) if in_order => stream.push(data).await,
            _ => {
                let spool = self.spool(vfs).await?;
                spool.write_at(offset, data).map_err(spool_error)
            }
        }
    }

    /// Truncates or extends to `len`.
    pub async fn set_len(&mut self, vfs: &Vfs, len: u64) -> Result<(), vfs::Error> {
        self.check_mutable_size(len)?;
        self.changed = true;
        self.hasher = None;
        self.spool(vfs).await?.set_len(len).map_err(spool_error)
    }

    /// Reads back what has been written so far.
    pub async fn read_at(&mut self, vfs: &Vfs, offset: u64, len: u64) -> Result<Vec<u8>, vfs::Error> {
        let len = len.min(u32::MAX as u64) as usize;
        if let Body::Memory(Buffer { data, .. }) = &self.body {
            let start = (offset as usize).min(data.len());
            return Ok(data[start..(start.saturating_add(len)).min(data.len())].to_vec());
        }
        self.spool(vfs).await?.read_at(offset, len).map_err(spool_error)
    }

    /// The modification time to record when committing (Unix seconds).
    pub fn set_mtime(&mut self, mtime: f64) {
        self.mtime = Some(mtime);
    }

    /// The modification time set so far, if any.
    pub fn mtime(&self) -> Option<f64> {
        self.mtime
    }

    /// The permission bits to record when committing.
    pub fn set_mode(&mut self, mode: u32) {
        self.mode = Some(mode);
    }

    /// What the entry records besides its cap: the times and mode set, and the contents' digest
    /// when every byte was written in order.
    fn entry_metadata(&self) -> EntryMetadata {
        EntryMetadata {
            mtime: self.mtime,
            mode: self.mode,
            sha256: match &self.hasher {
                Some(hasher) => Some(hasher.clone().finalize().into()),
                None => self.known_sha256,
            },
        }
    }

    /// Only the times and mode set (for contents that did not change).
    fn attributes_only(&self) -> EntryMetadata {
        EntryMetadata {
            sha256: None,
            ..self.entry_metadata()
        }
    }

    /// The spool, moving the contents there first if they are in memory or streaming.
    async fn spool(&mut self, vfs: &Vfs) -> Result<&mut Spool, vfs::Error> {
        let moved = match &mut self.body {
            Body::Spool(_) => None,
            Body::Memory(buffer) => {
                let mut spool = Spool::new(&self.spool_dir).map_err(spool_error)?;
                spool.write_at(0, &buffer.data).map_err(spool_error)?;
                Some(spool)
            }
            // What was streamed is read back from the grid (the stored prefix is then unused).
            Body::Stream(stream) => {
                let cap = stream.finish().await?;
                Some(spool_from(vfs.grid(), &cap, &self.spool_dir).await?)
            }
            Body::Linked { cap, .. } => {
                self.known_sha256 = None;
                Some(spool_from(vfs.grid(), cap, &self.spool_dir).await?)
            }
        };
        if let Some(spool) = moved {
            self.body = Body::Spool(spool);
        }
        match &mut self.body {
            Body::Spool(spool) => Ok(spool),
            _ => Err(vfs::Error::new(vfs::ErrorKind::Internal)),
        }
    }

    /// Stores the contents at `path` (replacing what is there) if they changed, else only a new
    /// mtime; returns once the file is durably on the grid and linked (the close of a handle).
    pub async fn commit(mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        self.store(vfs, path).await
    }

    /// The first half of [`FileWriter::commit`]: stores the contents on the grid without linking
    /// them anywhere, so the caller can still change its mind (FTP's ABOR) before [`Uploaded::link`].
    pub async fn upload(mut self, vfs: &Vfs) -> Result<Uploaded, vfs::Error> {
        if self.changed
            && let Some(small) = self.take_journaled(vfs)
        {
            return Ok(Uploaded {
                stored: Stored::Journaled(small),
                metadata: self.entry_metadata(),
            });
        }
        if self.changed
            && let Some(cap) = self.mutable.clone()
        {
            let (data, permit) = self.take_for_publish(vfs).await?;
            return Ok(Uploaded {
                stored: Stored::Mutable { cap, data, permit },
                metadata: self.attributes_only(),
            });
        }
        let cap = if !self.changed {
            None
        } else {
            let budget = self.budget_to_upload_memory(vfs).await?;
            Some(match (&mut self.body, budget) {
                (Body::Memory(buffer), Some(permit)) => {
                    upload_memory(vfs, std::mem::take(&mut buffer.data), permit).await?
                }
                (Body::Stream(stream), _) => stream.finish().await?,
                (Body::Spool(spool), _) => vfs.upload(spool.reader(), spool.len()).await?,
                (Body::Linked { cap, .. }, _) => cap.clone(),
                (Body::Memory(_), None) => return Err(vfs::Error::new(vfs::ErrorKind::Internal)),
            })
        };
        let metadata = if cap.is_some() {
            self.entry_metadata()
        } else {
            self.attributes_only()
        };
        Ok(Uploaded {
            stored: cap.map_or(Stored::Unchanged, Stored::Cap),
            metadata,
        })
    }

    /// A small file's contents and their budget, taken out of memory to be committed through
    /// the node's journal (`None`: not in memory, too big, or no journal).
    fn take_journaled(&mut self, vfs: &Vfs) -> Option<(Vec<u8>, BudgetPermit)> {
        if self.mutable.is_some() {
            return None;
        }
        let limit = vfs.journaled_size_limit()?;
        let Body::Memory(buffer) = &mut self.body else {
            return None;
        };
        if buffer.data.len() as u64 > limit {
            return None;
        }
        let mut data = std::mem::take(&mut buffer.data);
        // Pending until published: keep only what the contents need.
        data.shrink_to_fit();
        let mut permit = std::mem::take(&mut buffer.permit);
        permit.shrink_to(data.len() as u64);
        Some((data, permit))
    }

    /// Commits what was written so far and stays open for more (`fsync`).
    pub async fn sync(&mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        if !matches!(self.body, Body::Spool(_) | Body::Linked { .. }) && self.changed {
            // A finished stream cannot take more writes, and a buffer handed to its upload is
            // gone: go on from a spool of the contents.
            self.spool(vfs).await?;
        }
        self.store(vfs, path).await
    }

    /// For a file in memory that must be uploaded: the budget for encoding it, if free now;
    /// if not, the file moves to the spool (giving its buffer's budget back), whose upload
    /// waits for budget while holding none. `None` unless the body is still in memory.
    async fn budget_to_upload_memory(&mut self, vfs: &Vfs) -> Result<Option<BudgetPermit>, vfs::Error> {
        let Body::Memory(buffer) = &mut self.body else {
            return Ok(None);
        };
        let cost = vfs.grid().one_segment_cost(buffer.data.len() as u64);
        match vfs
            .grid()
            .memory_budget()
            .try_acquire(cost.saturating_sub(buffer.permit.bytes()))
        {
            Some(more) => {
                let mut permit = std::mem::take(&mut buffer.permit);
                permit.merge(more);
                Ok(Some(permit))
            }
            None => {
                self.spool(vfs).await?;
                Ok(None)
            }
        }
    }

    async fn store(&mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        if !self.changed {
            let attributes = self.attributes_only();
            if attributes != EntryMetadata::default() {
                vfs.set_attributes(path, attributes).await?;
            }
            return Ok(());
        }
        let metadata = self.entry_metadata();
        if let Some(cap) = self.mutable.clone() {
            let (data, permit) = self.take_for_publish(vfs).await?;
            vfs.publish_mutable(path, &cap, data, permit, self.attributes_only())
                .await?;
            self.changed = false;
            return Ok(());
        }
        if let Some((data, permit)) = self.take_journaled(vfs) {
            vfs.commit_contents(path, data, permit, metadata).await?;
            self.changed = false;
            return Ok(());
        }
        let budget = self.budget_to_upload_memory(vfs).await?;
        match (&mut self.body, budget) {
            // Only a commit gets here with a file in memory (sync spools it first): the buffer
            // is the upload's from now on.
            (Body::Memory(buffer), Some(permit)) => {
                let cap = upload_memory(vfs, std::mem::take(&mut buffer.data), permit).await?;
                vfs.link_file(path, &cap, true, metadata).await?;
            }
            (Body::Memory(_), None) => return Err(vfs::Error::new(vfs::ErrorKind::Internal)),
            (Body::Stream(stream), _) => {
                let cap = stream.finish().await?;
                vfs.link_file(path, &cap, true, metadata).await?;
            }
            (Body::Linked { cap, .. }, _) => {
                vfs.link_file(path, cap, true, metadata).await?;
            }
            (Body::Spool(spool), _) => {
                vfs.write_file(path, spool.reader(), spool.len(), true, metadata)
                    .await?;
            }
        }
        self.changed = false;
        Ok(())
    }
}

/// Contents stored on the grid (or, small, held for the journal) and not yet linked under a name.
pub struct Uploaded {
    stored: Stored,
    metadata: EntryMetadata,
}

enum Stored {
    Unchanged,
    Cap(Cap),
    /// A small file's contents and their memory budget: stored when the link is published.
    Journaled((Vec<u8>, BudgetPermit)),
    /// A mutable file's next version and the budget for encoding it: published by the link.
    Mutable {
        /// The file.
        cap: MutableCap,
        /// Its new contents.
        data: Vec<u8>,
        /// Their budget.
        permit: BudgetPermit,
    },
}

impl Uploaded {
    /// Links the stored file at `path`, replacing what is there (unchanged contents: only the time).
    pub async fn link(self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        match self.stored {
            Stored::Journaled((data, permit)) => vfs.commit_contents(path, data, permit, self.metadata).await,
            Stored::Mutable { cap, data, permit } => vfs.publish_mutable(path, &cap, data, permit, self.metadata).await,
            Stored::Cap(cap) => vfs.link_file(path, &cap, true, self.metadata).await,
            Stored::Unchanged if self.metadata != EntryMetadata::default() => {
                vfs.set_attributes(path, self.metadata).await
            }
            Stored::Unchanged => Ok(()),
        }
    }
}

impl Uploaded {
    /// The stored file's cap, storing a small file held for the journal now (for callers that
    /// answer with the cap, as the web API does); `None` when nothing changed.
    pub async fn into_cap(self, vfs: &Vfs) -> Result<Option<Cap>, vfs::Error> {
        match self.stored {
            Stored::Journaled((data, permit)) => Ok(Some(upload_memory(vfs, data, permit).await?)),
            Stored::Mutable { cap, data, permit } => {
                vfs.grid().update_mutable(&cap, &data).await?;
                drop((data, permit));
                Ok(Some(Cap::Mutable(cap)))
            }
            Stored::Cap(cap) => Ok(Some(cap)),
            Stored::Unchanged => Ok(None),
        }
    }
}

/// Stores a file held in memory (at most a segment and a write) under `permit`, its budget.
async fn upload_memory(vfs: &Vfs, data: Vec<u8>, permit: BudgetPermit) -> Result<Cap, vfs::Error> {
    if vfs.is_read_only() {
        return Err(vfs::Error::new(vfs::ErrorKind::PermissionDenied));
    }
    Ok(vfs.grid().upload_in_memory(data, KeyChoice::Convergent, permit).await?)
}

/// A spool holding the contents of the file `cap`.
async fn spool_from(grid: &Grid, cap: &Cap, spool_dir: &Path) -> Result<Spool, vfs::Error> {
    let mut spool = Spool::new(spool_dir).map_err(spool_error)?;
    let mut contents = FileContents::open_in(grid, cap, spool_dir).await?;
    let mut offset = 0;
    while offset < contents.size() {
        let piece = contents.read(offset, COPY_CHUNK).await?;
        spool.write_at(offset, &piece).map_err(spool_error)?;
        offset += piece.len() as u64;
    }
    Ok(spool)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::grid::budget::MIN_BYTES;
    use crate::grid::{ClientSecrets, EncodingParams};

    fn vfs_on_local_grid(dir: &Path) -> impl std::future::Future<Output = Vfs> {
        let secrets = ClientSecrets {
            convergence: b"writer test".to_vec(),
            lease: b"writer test lease".to_vec(),
        };
        let grid = Grid::open_local(dir, 10, EncodingParams::default(), secrets)
            .expect("local grid")
            .with_memory_budget(MIN_BYTES);
        async move {
            let root = grid.create_directory().await.expect("root directory");
            Vfs::new(grid, root)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + i / 1021) as u8).collect()
    }

    async fn write_in_order(writer: &mut FileWriter, vfs: &Vfs, data: &[u8]) {
        for (i, piece) in data.chunks(32 * 1024).enumerate() {
            writer.write_at(vfs, (i * 32 * 1024) as u64, piece).await.unwrap();
        }
    }

    async fn read_back(vfs: &Vfs, path: &[u8]) -> Vec<u8> {
        let (cap, _) = vfs.lookup(path).await.unwrap();
        let mut contents = FileContents::open(vfs.grid(), &cap).await.unwrap();
        contents.read(0, u64::MAX).await.unwrap()
    }

    async fn until_released(vfs: &Vfs) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while vfs.grid().memory_budget().in_use() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} bytes still held",
                vfs.grid().memory_budget().in_use()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_and_streamed_writes_hold_budget_until_committed_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = vfs_on_local_grid(dir.path()).await;
        let budget = vfs.grid().memory_budget().clone();
        for size in [200_000, 3 << 20] {
            let mut writer = FileWriter::create(dir.path());
            write_in_order(&mut writer, &vfs, &data(size)).await;
            assert!(
                budget.in_use() >= 200_000,
                "{size} bytes buffered with {} accounted",
                budget.in_use()
            );
            writer.commit(&vfs, format!("f{size}").as_bytes()).await.unwrap();
            until_released(&vfs).await;
            assert!(read_back(&vfs, format!("f{size}").as_bytes()).await == data(size));
            until_released(&vfs).await;

            // A client that goes away with the file open gives everything back too.
            let mut writer = FileWriter::create(dir.path());
            write_in_order(&mut writer, &vfs, &data(size)).await;
            assert!(budget.in_use() > 0);
            drop(writer);
            until_released(&vfs).await;
        }
    }

    #[tokio::test]
    async fn a_stream_gives_back_its_whole_buffer_budget_once_its_first_segment_is_read() {
        // The upload then waits for its next segment's budget holding none of it.
        let budget = crate::grid::budget::MemoryBudget::new(MIN_BYTES);
        let segment = 1 << 20;
        let contents = data(segment + 40_000);
        let first = Buffer {
            data: contents.clone(),
            permit: budget.acquire(segment as u64 + 300_000).await,
        };
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        let mut source = ChannelSource::new(receiver, first, segment, Arc::default());
        assert_eq!(
            budget.in_use(),
            segment as u64,
            "the buffer's spare room given back at once"
        );
        sender.send(Bytes::from_static(b"and more")).await.unwrap();
        drop(sender);
        let read = tokio::task::spawn_blocking(move || {
            let mut first_segment = vec![0; segment];
            source.read_exact(&mut first_segment).unwrap();
            let held = budget.in_use();
            let mut rest = Vec::new();
            source.read_to_end(&mut rest).unwrap();
            (first_segment, held, rest)
        });
        let (first_segment, held_after_first_segment, rest) = read.await.unwrap();
        assert_eq!(held_after_first_segment, 0, "budget held past the first segment");
        assert!(first_segment[..] == contents[..segment]);
        assert!(rest[..40_000] == contents[segment..] && &rest[40_000..] == b"and more");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_the_budget_spent_writes_go_to_the_spool_instead_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = vfs_on_local_grid(dir.path()).await;
        let budget = vfs.grid().memory_budget().clone();
        let everything = budget.acquire(MIN_BYTES).await;
        let mut small = FileWriter::create(dir.path());
        write_in_order(&mut small, &vfs, &data(100_000)).await;
        let mut big = FileWriter::create(dir.path());
        write_in_order(&mut big, &vfs, &data(3 << 20)).await;
        assert_eq!(format!("{small:?}"), "FileWriter(spool, len=100000)");
        assert_eq!(format!("{big:?}"), format!("FileWriter(spool, len={})", 3 << 20));
        assert_eq!(
            budget.in_use(),
            MIN_BYTES,
            "nothing was taken beyond what this test holds"
        );
        // Committing waits for budget instead of encoding without it.
        let commit = tokio::spawn({
            let vfs = vfs.clone();
            async move {
                small.commit(&vfs, b"small").await?;
                big.commit(&vfs, b"big").await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!commit.is_finished(), "a commit encoded with no budget left");
        drop(everything);
        tokio::time::timeout(Duration::from_secs(60), commit)
            .await
            .expect("commits go on once the budget is back")
            .unwrap()
            .unwrap();
        assert!(read_back(&vfs, b"small").await == data(100_000));
        assert!(read_back(&vfs, b"big").await == data(3 << 20));
        until_released(&vfs).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_fills_the_budget_while_buffered_moves_to_the_spool_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let vfs = vfs_on_local_grid(dir.path()).await;
        let budget = vfs.grid().memory_budget().clone();
        // Room for a small buffer, not for a segment being encoded.
        let most = budget.acquire(MIN_BYTES - 300_000).await;
        let mut writer = FileWriter::create(dir.path());
        write_in_order(&mut writer, &vfs, &data(900_000)).await;
        assert!(format!("{writer:?}").starts_with("FileWriter(spool"), "{writer:?}");
        drop(most);
        writer.commit(&vfs, b"f").await.unwrap();
        assert!(read_back(&vfs, b"f").await == data(900_000));
        until_released(&vfs).await;
    }
}
