//! A file being written by a client: its bytes, whether they changed, and committing them to the grid on close.
//!
//! Nothing reaches the directory until [`FileWriter::commit`]: a client that
//! disconnects with the file open leaves the old file (if any) exactly as it was,
//! and no partial file ever appears under the real name. Dropping a writer
//! discards its spool.

use std::path::Path;

use crate::frontends::file_reader::FileContents;
use crate::frontends::spool::Spool;
use crate::grid::uri::Cap;
use crate::vfs::{self, Vfs};

/// Existing contents are copied into a resumed writer in pieces of this size.
const COPY_CHUNK: u64 = 1 << 20;

/// The pending contents of one open-for-writing file.
#[derive(Debug)]
pub struct FileWriter {
    spool: Spool,
    changed: bool,
    mtime: Option<f64>,
}

fn spool_error(e: std::io::Error) -> vfs::Error {
    crate::grid::Error::Io {
        context: "spool an upload".into(),
        source: e,
    }
    .into()
}

impl FileWriter {
    /// A new, empty file (committed even if nothing is written: `touch`, `open(O_CREAT|O_TRUNC)`).
    pub fn create(spool_dir: &Path) -> Result<FileWriter, vfs::Error> {
        Ok(FileWriter {
            spool: Spool::new(spool_dir).map_err(spool_error)?,
            changed: true,
            mtime: None,
        })
    }

    /// A writer that starts from the contents of `existing` (open without truncation: resume, in-place edits).
    /// It commits only if something changes.
    pub async fn resume(vfs: &Vfs, existing: &Cap, spool_dir: &Path) -> Result<FileWriter, vfs::Error> {
        let mut writer = FileWriter::create(spool_dir)?;
        let mut contents = FileContents::open(vfs.grid(), existing).await?;
        let mut offset = 0;
        while offset < contents.size() {
            let piece = contents.read(offset, COPY_CHUNK).await?;
            writer.spool.write_at(offset, &piece).map_err(spool_error)?;
            offset += piece.len() as u64;
        }
        writer.changed = false;
        Ok(writer)
    }

    /// The current length.
    pub fn len(&self) -> u64 {
        self.spool.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.spool.is_empty()
    }

    /// Writes `data` at `offset` (a gap before it reads as zeros).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), vfs::Error> {
        self.spool.write_at(offset, data).map_err(spool_error)?;
        self.changed = true;
        Ok(())
    }

    /// Truncates or extends to `len`.
    pub fn set_len(&mut self, len: u64) -> Result<(), vfs::Error> {
        self.spool.set_len(len).map_err(spool_error)?;
        self.changed = true;
        Ok(())
    }

    /// Reads back what has been written so far.
    pub fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>, vfs::Error> {
        self.spool
            .read_at(offset, len.min(u32::MAX as u64) as usize)
            .map_err(spool_error)
    }

    /// The modification time to record when committing (Unix seconds).
    pub fn set_mtime(&mut self, mtime: f64) {
        self.mtime = Some(mtime);
    }

    /// The modification time set so far, if any.
    pub fn mtime(&self) -> Option<f64> {
        self.mtime
    }

    /// Stores the contents at `path` (replacing what is there) if they changed, else only a new mtime.
    /// Returns once the file is durably on the grid and linked; the writer stays usable (`fsync`).
    pub async fn commit(&mut self, vfs: &Vfs, path: &[u8]) -> Result<(), vfs::Error> {
        if self.changed {
            vfs.write_file(path, self.spool.reader(), self.spool.len(), true, self.mtime)
                .await?;
            self.changed = false;
        } else if let Some(mtime) = self.mtime {
            vfs.set_mtime(path, mtime).await?;
        }
        Ok(())
    }
}
