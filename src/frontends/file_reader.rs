//! Reading a file for a client at the offsets it asks for: a sequential stream from the grid with read-ahead, restarted where the client jumps.
//!
//! A read at the position the stream has reached is served from the stream (the
//! grid download already fetches segments ahead); a read elsewhere restarts the
//! stream there, so the first byte never waits for the whole file and resumes
//! (`reget`, `REST`) read only what they need. The contents are those of the
//! cap opened: a later write to the same path does not change what this reader sees.

use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::task::JoinHandle;

use crate::grid::Grid;
use crate::grid::download::FileReader;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind};

/// Bytes buffered between the download task and the client, beyond the segments it prefetches.
const PIPE_BYTES: usize = 1 << 20;
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
}

struct Stream {
    pos: u64,
    pipe: DuplexStream,
    task: JoinHandle<Result<(), crate::grid::Error>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileContents {
    /// Opens the file `cap` names (a directory is `IsADirectory`).
    pub async fn open(grid: &Grid, cap: &Cap) -> Result<FileContents, vfs::Error> {
        match cap {
            Cap::Literal(lit) => Ok(FileContents {
                size: lit.data.len() as u64,
                source: Source::Literal(lit.data.clone()),
            }),
            Cap::Chk(chk) => {
                let reader = grid.open_file(chk).await?;
                Ok(FileContents {
                    size: reader.size(),
                    source: Source::Chk {
                        reader: Box::new(reader),
                        stream: None,
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
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let want = (end - offset) as usize;
        match &mut self.source {
            Source::Literal(data) => Ok(data[offset as usize..end as usize].to_vec()),
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
                let mut skip = offset - s.pos;
                let mut scratch = vec![0u8; (skip as usize).min(64 * 1024)];
                while skip > 0 {
                    let n = (skip as usize).min(scratch.len());
                    if let Err(e) = s.pipe.read_exact(&mut scratch[..n]).await {
                        return Err(stream_error(stream, e).await);
                    }
                    skip -= n as u64;
                    s.pos += n as u64;
                }
                let mut out = vec![0u8; want];
                if let Err(e) = s.pipe.read_exact(&mut out).await {
                    return Err(stream_error(stream, e).await);
                }
                s.pos += want as u64;
                Ok(out)
            }
        }
    }
}

fn start_stream(reader: &FileReader, offset: u64, size: u64) -> Stream {
    let (mut writer, pipe) = tokio::io::duplex(PIPE_BYTES);
    let mut reader = reader.clone();
    let task = tokio::spawn(async move { reader.write_range_to(offset, size - offset, &mut writer, None).await });
    Stream {
        pos: offset,
        pipe,
        task,
    }
}

/// The download's own error if it failed (the pipe just ends), else the pipe's.
async fn stream_error(stream: &mut Option<Stream>, pipe_error: std::io::Error) -> vfs::Error {
    let Some(mut s) = stream.take() else {
        return vfs::Error::new(ErrorKind::Internal);
    };
    match (&mut s.task).await {
        Ok(Err(grid_error)) => grid_error.into(),
        _ => crate::grid::Error::Io {
            context: "read from the grid".into(),
            source: pipe_error,
        }
        .into(),
    }
}
