//! A file being written by a client: its bytes, whether they changed, and committing them to the grid on close.
//!
//! A new or truncated file starts in memory. While the client writes in order
//! (as sftp, scp, curl, rclone and FTP do), once it outgrows one segment it is
//! streamed straight into a grid upload, so a big file is encoded while it
//! arrives and close only finishes the last segment. The first write out of
//! order (or a read, truncate or fsync of a streamed file) moves everything to
//! an encrypted spool file instead.
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
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::frontends::file_reader::FileContents;
use crate::grid::spool::Spool;
use crate::grid::uri::Cap;
use crate::grid::{self, Grid};
use crate::vfs::{self, Vfs};

/// Existing contents are copied into a spool in pieces of this size.
const COPY_CHUNK: u64 = 1 << 20;
/// Batches queued for a streamed upload before the client is made to wait.
const STREAM_QUEUE: usize = 16;
/// Client writes (32 KiB each, typically) are gathered into batches of this size before they
/// cross to the encoder thread: one hand-off per 256 KiB instead of one per write.
const STREAM_BATCH: usize = 256 * 1024;

/// The pending contents of one open-for-writing file.
pub struct FileWriter {
    body: Body,
    spool_dir: PathBuf,
    changed: bool,
    mtime: Option<f64>,
}

enum Body {
    /// Everything so far, written in order, at most one segment and a bit.
    Memory(Vec<u8>),
    /// Flowing into a grid upload.
    Stream(Stream),
    /// Out of order: an encrypted spool file.
    Spool(Spool),
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
    fn start(grid: &Grid, first: Vec<u8>) -> Stream {
        let (sender, receiver) = mpsc::channel(STREAM_QUEUE);
        let aborted = Arc::new(AtomicBool::new(false));
        let len = first.len() as u64;
        let source = ChannelSource {
            receiver,
            current: Bytes::from(first),
            aborted: aborted.clone(),
        };
        let grid = grid.clone();
        let upload = tokio::spawn(async move { grid.upload_stream(source).await });
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
    aborted: Arc<AtomicBool>,
}

impl Read for ChannelSource {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
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
        Ok(n)
    }
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.body {
            Body::Memory(_) => "memory",
            Body::Stream(_) => "stream",
            Body::Spool(_) => "spool",
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
            body: Body::Memory(Vec::new()),
            spool_dir: spool_dir.to_path_buf(),
            changed: true,
            mtime: None,
        }
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
        })
    }

    /// The current length.
    pub fn len(&self) -> u64 {
        match &self.body {
            Body::Memory(data) => data.len() as u64,
            Body::Stream(stream) => stream.len,
            Body::Spool(spool) => spool.len(),
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `data` at `offset` (a gap before it reads as zeros).
    pub async fn write_at(&mut self, vfs: &Vfs, offset: u64, data: &[u8]) -> Result<(), vfs::Error> {
        self.changed = true;
        let in_order = offset == self.len();
        match &mut self.body {
            Body::Memory(buffer) if in_order => {
                buffer.extend_from_slice(data);
                if buffer.len() as u64 > vfs.grid().params().max_segment_size {
                    if vfs.grid().accepts_open_ended_shares() {
                        let first = std::mem::take(buffer);
                        self.body = Body::Stream(Stream::start(vfs.grid(), first));
                    } else {
                        // Shares must be allocated at their exact size: learn it first.
                        self.spool(vfs).await?;
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
        self.changed = true;
        self.spool(vfs).await?.set_len(len).map_err(spool_error)
    }

    /// Reads back what has been written so far.
    pub async fn read_at(&mut self, vfs: &Vfs, offset: u64, len: u64) -> Result<Vec<u8>, vfs::Error> {
        let len = len.min(u32::MAX as u64) as usize;
        if let Body::Memory(data) = &self.body {
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

    /// The spool, moving the contents there first if they are in memory or streaming.
    async fn spool(&mut self, vfs: &Vfs) -> Result<&mut Spool, vfs::Error> {
        let moved = match &mut self.body {
            Body::Spool(_) => None,
            Body::Memory(data) => {
                let mut spool = Spool::new(&self.spool_dir).map_err(spool_error)?;
                spool.write_at(0, data).map_err(spool_error)?;
                Some(spool)
            }
            // What was streamed is read back from the grid (the stored prefix is then unused).
            Body::Stream(stream) => {
                let cap = stream.finish().await?;
                Some(spool_from(vfs.grid(), &cap, &self.spool_dir).await?)
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
        let cap = if !self.changed {
            None
        } else {
            Some(match &mut self.body {
                Body::Memory(data) => {
                    let size = data.len() as u64;
                    vfs.upload(std::io::Cursor::new(std::mem::take(data)), size).await?
                }
                Body::Stream(stream) => stream.finish().await?,
                Body::Spool(spool) => vfs.upload(spool.reader(), spool.len()).await?,
            })
        };
        Ok(Uploaded { cap, mtime: self.mtime })
    }

    /// Commits what was written so far and stays open for more (`fsync`).
    pub async fn sync(&mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        if matches!(self.body, Body::Stream(_)) {
            // A finished stream cannot take more writes: go on from a spool of what it stored.
            self.spool(vfs).await?;
        }
        self.store(vfs, path).await
    }

    async fn store(&mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        if !self.changed {
            if let Some(mtime) = self.mtime {
                vfs.set_mtime(path, mtime).await?;
            }
            return Ok(());
        }
        match &mut self.body {
            Body::Memory(data) => {
                let size = data.len() as u64;
                vfs.write_file(path, std::io::Cursor::new(data.clone()), size, true, self.mtime)
                    .await?;
            }
            Body::Stream(stream) => {
                let cap = stream.finish().await?;
                vfs.link_file(path, &cap, true, self.mtime).await?;
            }
            Body::Spool(spool) => {
                vfs.write_file(path, spool.reader(), spool.len(), true, self.mtime)
                    .await?;
            }
        }
        self.changed = false;
        Ok(())
    }
}

/// Contents stored on the grid and not yet linked under a name.
pub struct Uploaded {
    cap: Option<Cap>,
    mtime: Option<f64>,
}

impl Uploaded {
    /// Links the stored file at `path`, replacing what is there (unchanged contents: only the time).
    pub async fn link(self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        match (self.cap, self.mtime) {
            (Some(cap), mtime) => vfs.link_file(path, &cap, true, mtime).await,
            (None, Some(mtime)) => vfs.set_mtime(path, mtime).await,
            (None, None) => Ok(()),
        }
    }
}

/// A spool holding the contents of the file `cap`.
async fn spool_from(grid: &Grid, cap: &Cap, spool_dir: &Path) -> Result<Spool, vfs::Error> {
    let mut spool = Spool::new(spool_dir).map_err(spool_error)?;
    let mut contents = FileContents::open(grid, cap).await?;
    let mut offset = 0;
    while offset < contents.size() {
        let piece = contents.read(offset, COPY_CHUNK).await?;
        spool.write_at(offset, &piece).map_err(spool_error)?;
        offset += piece.len() as u64;
    }
    Ok(spool)
}
