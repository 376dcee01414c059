//! Reading a file for a client at the offsets it asks for: a sequential stream from the grid with read-ahead, restarted where the client jumps.
//!
//! A read at the position the stream has reached is served from the stream (the
//! grid download already fetches segments ahead); a read elsewhere restarts the
//! stream there, so the first byte never waits for the whole file and resumes
//! (`reget`, `REST`) read only what they need. The contents are those of the
//! cap opened: a later write to the same path does not change what this reader sees.
//! A file of one segment (a small file) starts decoding when opened, so the client's first read
//! finds it done: what it holds is what a client that read one byte would hold, and its memory
//! budget is taken the same way.
//! A mutable file is read whole when opened (the grid decodes it whole) into an encrypted
//! spool, so a handle left open holds disk, not memory.

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::grid::Grid;
use crate::grid::budget::BudgetPermit;
use crate::grid::immutable::download::FileReader;
use crate::grid::spool::Spool;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind};

/// Pieces (a block's share of a segment each, k to a segment) buffered between the download
/// task and the client, beyond the segments it prefetches: two segments' worth at 3-of-N. Each
/// carries its memory-budget permit until the client has read it.
const PIPE_PIECES: usize = 6;
/// A mutable file is written to its spool in pieces of this size.
const SPOOL_CHUNK: usize = 1 << 20;
/// A forward jump shorter than this is read through rather than restarting the download.
const SKIP_LIMIT: u64 = 1 << 20;

/// An open file's contents.
pub struct FileContents {
    size: u64,
    source: Source,
}

impl std::fmt::Debug for FileContents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileContents(size={})", self.size)
    }
}

enum Source {
    Literal(Vec<u8>),
    Chk {
        reader: Box<FileReader>,
        stream: Option<Stream>,
    },
    /// A mutable file's version as it was when opened.
    Spooled(Spool),
}

struct Stream {
    pos: u64,
    pieces: mpsc::Receiver<(Bytes, BudgetPermit)>,
    current: Bytes,
    /// What accounts for `current`: given back as soon as it is used up.
    current_permit: BudgetPermit,
    task: JoinHandle<Result<(), crate::grid::Error>>,
}

impl Stream {
    /// Moves the stream `len` bytes on, appending them to `out` if given; how many there were
    /// (fewer than `len` only if the stream ended early).
    async fn take(&mut self, len: usize, mut out: Option<&mut BytesMut>) -> usize {
        let mut taken = 0;
        while taken < len {
            if self.current.is_empty() {
                match self.pieces.recv().await {
                    Some((piece, permit)) => (self.current, self.current_permit) = (piece, permit),
                    None => break,
                }
            }
            let n = (len - taken).min(self.current.len());
            let piece = self.current.split_to(n);
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&piece);
            }
            taken += n;
            if self.current.is_empty() {
                // Release the segment (and its budget) now, not when the next read comes.
                (self.current, self.current_permit) = (Bytes::new(), BudgetPermit::empty());
            }
        }
        self.pos += taken as u64;
        taken
    }
}

impl FileContents {
    /// Opens the file `cap` names, a mutable one too: its contents are spooled in `spool_dir`.
    pub async fn open_in(grid: &Grid, cap: &Cap, spool_dir: &std::path::Path) -> Result<FileContents, vfs::Error> {
        let Cap::Mutable(mutable) = cap else {
            return FileContents::open(grid, cap).await;
        };
        let (data, permit) = vfs::read_mutable_whole(grid, mutable).await?;
        let dir = spool_dir.to_path_buf();
        let spool = tokio::task::spawn_blocking(move || {
            let mut spool = Spool::new(&dir)?;
            // In pieces: the spool encrypts a copy of what it is given.
            for (i, piece) in data.chunks(SPOOL_CHUNK).enumerate() {
                spool.write_at((i * SPOOL_CHUNK) as u64, piece)?;
            }
            drop((data, permit));
            Ok::<_, std::io::Error>(spool)
        })
        .await
        .map_err(|_| vfs::Error::new(ErrorKind::Internal))?
        .map_err(|e| {
            vfs::Error::from(crate::grid::Error::Io {
                context: "spool a mutable file".into(),
                source: e,
            })
        })?;
        Ok(FileContents {
            size: spool.len(),
            source: Source::Spooled(spool),
        })
    }

    /// Opens the immutable file `cap` names (a directory is `IsADirectory`; a mutable file
    /// needs a spool: [`FileContents::open_in`]).
    pub async fn open(grid: &Grid, cap: &Cap) -> Result<FileContents, vfs::Error> {
        match cap {
            Cap::Literal(lit) => Ok(FileContents {
                size: lit.data.len() as u64,
                source: Source::Literal(lit.data.clone()),
            }),
            Cap::Chk(chk) => {
                let reader = grid.open_file(chk).await?;
                // A file of one segment is decoded now, while the reply to the open and the
                // client's first read are on their way: a client reads what it opens.
                let stream =
                    (reader.size() <= reader.ueb().segment_size).then(|| start_stream(&reader, 0, reader.size()));
                Ok(FileContents {
                    size: reader.size(),
                    source: Source::Chk {
                        reader: Box::new(reader),
                        stream,
                    },
                })
            }
            Cap::Directory(_) => Err(vfs::Error::new(ErrorKind::IsADirectory)),
            _ => Err(vfs::Error::new(ErrorKind::Unsupported)),
        }
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `len` bytes from `offset`: fewer at the end of the file, none past it.
    pub async fn read(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, vfs::Error> {
        let mut out = BytesMut::new();
        self.read_into(offset, len, &mut out).await?;
        Ok(out.to_vec())
    }

    /// Appends up to `len` bytes from `offset` to `out` (fewer at the end of the file, none past
    /// it) and says how many: the bytes are copied once, from the downloaded segment to `out`.
    pub async fn read_into(&mut self, offset: u64, len: u64, out: &mut BytesMut) -> Result<usize, vfs::Error> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(0);
        }
        let want = (end - offset) as usize;
        match &mut self.source {
            Source::Literal(data) => {
                out.extend_from_slice(&data[offset as usize..end as usize]);
                Ok(want)
            }
            Source::Spooled(spool) => {
                let piece = spool.read_at(offset, want).map_err(|e| {
                    vfs::Error::from(crate::grid::Error::Io {
                        context: "read a spooled mutable file".into(),
                        source: e,
                    })
                })?;
                out.extend_from_slice(&piece);
                Ok(piece.len())
            }
            Source::Chk { reader, stream } => {
                let reusable = stream
                    .as_ref()
                    .is_some_and(|s| s.pos <= offset && offset - s.pos <= SKIP_LIMIT);
                if !reusable {
                    *stream = Some(start_stream(reader, offset, self.size));
                }
                let Some(s) = stream.as_mut() else {
                    return Err(vfs::Error::new(ErrorKind::Internal));
                };
                let skip = (offset - s.pos) as usize;
                if s.take(skip, None).await < skip {
                    return Err(stream_error(stream).await);
                }
                out.reserve(want);
                if s.take(want, Some(out)).await < want {
                    return Err(stream_error(stream).await);
                }
                Ok(want)
            }
        }
    }
}

fn start_stream(reader: &FileReader, offset: u64, size: u64) -> Stream {
    let (sender, pieces) = mpsc::channel(PIPE_PIECES);
    let mut reader = reader.clone();
    // The receiver gone (the client moved elsewhere or closed) ends the task.
    // In the caller's span: what the grid logs names the connection.
    let task = tokio::spawn(async move { reader.send_range(offset, size - offset, &sender).await }.in_current_span());
    Stream {
        pos: offset,
        pieces,
        current: Bytes::new(),
        current_permit: BudgetPermit::empty(),
        task,
    }
}

/// Why the stream ended early: the download's own error.
async fn stream_error(stream: &mut Option<Stream>) -> vfs::Error {
    let Some(mut s) = stream.take() else {
        return vfs::Error::new(ErrorKind::Internal);
    };
    match (&mut s.task).await {
        Ok(Err(grid_error)) => grid_error.into(),
        _ => vfs::Error::new(ErrorKind::Internal),
    }
}
