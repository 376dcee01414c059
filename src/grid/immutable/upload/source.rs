//! Reading an upload's source: the plaintext a pipelined upload reads, the convergent-key pass, whole reads of small files, and read errors.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::grid::Error;
use crate::grid::budget::BudgetPermit;
use crate::grid::immutable::chk::ConvergentKeyHasher;
use crate::grid::immutable::layout::FileShape;

/// The convergent-key pass reads the source in pieces of this size, three buffers deep.
pub(super) const KEY_PASS_CHUNK: usize = 4 << 20;

/// Called with the number of plaintext bytes encoded so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// The plaintext an upload reads, and who is told how far it got.
pub(super) struct PlaintextSource<R> {
    /// Read once, segment by segment, from the start.
    pub(super) reader: R,
    /// Called with the bytes encoded so far.
    pub(super) progress: Option<Progress>,
    /// The memory-budget permit for the first segment, when the caller has taken it already.
    pub(super) first_segment: Option<BudgetPermit>,
}

/// Hashes `size` bytes of `source` into the convergent key.
///
/// A scoped reader thread fills buffers while this thread hashes the previous
/// one, so the copy out of the page cache overlaps the hashing.
pub(super) fn convergent_key<R: Read + Seek + Send>(
    source: &mut R,
    size: u64,
    secret: &[u8],
    shape: &FileShape,
) -> Result<[u8; 16], Error> {
    const CHUNK: usize = KEY_PASS_CHUNK;
    source.seek(SeekFrom::Start(0)).map_err(read_error)?;
    let mut hasher = ConvergentKeyHasher::new(secret, shape);
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    let chunk = (size.min(CHUNK as u64)) as usize;
    for _ in 0..3 {
        let _ = empty_tx.send(vec![0u8; chunk]);
    }
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<(), Error> {
            let mut remaining = size;
            while remaining > 0 {
                let Ok(mut buf) = empty_rx.recv() else { return Ok(()) };
                let n = remaining.min(chunk as u64) as usize;
                buf.truncate(n);
                buf.resize(n, 0);
                source.read_exact(&mut buf).map_err(read_error)?;
                remaining -= n as u64;
                if full_tx.send(buf).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        });
        for buf in full_rx.iter() {
            hasher.update(&buf);
            let _ = empty_tx.send(buf);
        }
        reader
            .join()
            .map_err(|_| Error::Internal("convergent key reader panicked".into()))?
    })?;
    Ok(hasher.finalize())
}

/// Reads all of a source of `size` bytes; fails if it holds fewer or more.
pub(super) fn read_whole<R: Read>(source: R, size: u64) -> Result<Vec<u8>, Error> {
    let mut data = Vec::with_capacity(size as usize);
    source.take(size + 1).read_to_end(&mut data).map_err(read_error)?;
    if data.len() as u64 != size {
        return Err(source_changed());
    }
    Ok(data)
}

/// Reads until `buf` is full or the source ends; returns how much was read.
pub(super) fn read_full<R: Read>(source: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e)),
        }
    }
    Ok(filled)
}

pub(super) fn read_error(e: std::io::Error) -> Error {
    Error::Io {
        context: "read upload source".into(),
        source: e,
    }
}

pub(super) fn source_changed() -> Error {
    Error::Io {
        context: "read upload source".into(),
        source: std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the source changed size during the upload",
        ),
    }
}
