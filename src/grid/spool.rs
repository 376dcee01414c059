//! An encrypted, anonymous temporary file for uploads written out of order and for repairs: plaintext never touches the disk.
//!
//! Each spool has its own random AES-128-CTR key that lives only in memory, and
//! the file is unlinked from the start, so a crash leaves nothing readable behind.
//! Unwritten gaps read back as zeros, as in a sparse file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::grid::crypto::{aes_ctr_at, random_bytes};

/// Zeros are written in pieces of this size when a file is extended.
const ZERO_CHUNK: usize = 256 * 1024;

/// The spooled bytes of one upload.
pub struct Spool {
    file: Arc<File>,
    key: [u8; 16],
    len: u64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spool(len={})", self.len)
    }
}

impl Spool {
    /// An empty spool in `dir` (created if missing).
    pub fn new(dir: &Path) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        Ok(Spool {
            file: Arc::new(tempfile::tempfile_in(dir)?),
            key: random_bytes::<16>(),
            len: 0,
        })
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` at `offset`; a gap before it reads back as zeros.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset > self.len {
            self.fill_zeros(self.len, offset)?;
        }
        let mut sealed = data.to_vec();
        aes_ctr_at(&self.key, offset, &mut sealed);
        self.file.write_all_at(&sealed, offset)?;
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    /// Truncates or extends (with zeros) to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len > self.len {
            self.fill_zeros(self.len, len)?;
        } else {
            self.file.set_len(len)?;
        }
        self.len = len;
        Ok(())
    }

    /// Reads up to `len` bytes from `offset` (fewer at the end).
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64).min(self.len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        aes_ctr_at(&self.key, offset, &mut buf);
        Ok(buf)
    }

    /// A reader over the plaintext, for uploading it (it shares the file; the spool may be dropped after).
    pub fn reader(&self) -> SpoolReader {
        SpoolReader {
            file: self.file.clone(),
            key: self.key,
            len: self.len,
            pos: 0,
        }
    }

    fn fill_zeros(&mut self, from: u64, to: u64) -> io::Result<()> {
        // Encrypted zeros, not a hole: a hole would decrypt to keystream.
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(ZERO_CHUNK);
            let mut zeros = vec![0u8; n];
            aes_ctr_at(&self.key, at, &mut zeros);
            self.file.write_all_at(&zeros, at)?;
            at += n as u64;
        }
        Ok(())
    }
}

/// Reads a spool's plaintext from the start (`Read + Seek`, as uploads need).
pub struct SpoolReader {
    file: Arc<File>,
    key: [u8; 16],
    len: u64,
    pos: u64,
}

impl Read for SpoolReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = ((self.len.saturating_sub(self.pos)) as usize).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(&mut buf[..n], self.pos)?;
        aes_ctr_at(&self.key, self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SpoolReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_writes_gaps_and_truncation_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path()).unwrap();
        spool.write_at(10, b"world").unwrap();
        spool.write_at(0, b"hello").unwrap();
        assert_eq!(spool.len(), 15);
        assert_eq!(spool.read_at(0, 100).unwrap(), b"hello\0\0\0\0\0world");
        spool.set_len(20).unwrap();
        spool.set_len(12).unwrap();
        let mut all = Vec::new();
        spool.reader().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"hello\0\0\0\0\0wo");
    }

    #[test]
    fn the_disk_never_holds_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::new(dir.path()).unwrap();
        let secret = b"a very recognisable plaintext string".repeat(10);
        spool.write_at(0, &secret).unwrap();
        let mut raw = vec![0u8; secret.len()];
        spool.file.read_exact_at(&mut raw, 0).unwrap();
        assert_ne!(raw, secret);
        assert!(!raw.windows(8).any(|w| w == b"a very r"));
    }
}
