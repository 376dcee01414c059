//! The SHA-256 of a stored file for SFTP's check-file, FTP's HASH and the exec `sha256sum`: the digest recorded in the entry when it was written, else computed once from the grid and recorded.

use sha2::{Digest, Sha256};

use crate::frontends::file_reader::FileContents;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind, Kind, Vfs};

/// Bytes hashed per step when a digest must be computed.
const HASH_CHUNK: u64 = 1 << 20;

/// The SHA-256 of the file at `path` and its size. A digest recorded in its entry answers at
/// once; else the file is read from the grid and hashed (off the async workers), and the digest
/// is recorded when the entry is writable, so the next ask is answered at once.
pub async fn sha256(vfs: &Vfs, path: &[u8]) -> Result<([u8; 32], u64), vfs::Error> {
    let (cap, stat, metadata) = vfs.lookup_entry(path).await?;
    if stat.kind == Kind::Directory {
        return Err(vfs::Error::new(ErrorKind::IsADirectory));
    }
    if let Cap::Mutable(mutable) = &cap {
        // Anyone holding its cap may publish a new version: hash the current one, record nothing.
        let (data, permit) = vfs::read_mutable_whole(vfs.grid(), mutable).await?;
        let size = data.len() as u64;
        let digest = tokio::task::spawn_blocking(move || {
            let digest: [u8; 32] = Sha256::digest(&data).into();
            drop((data, permit));
            digest
        })
        .await
        .map_err(|_| vfs::Error::new(ErrorKind::Internal))?;
        return Ok((digest, size));
    }
    if let Some(digest) = vfs::sha256_of(&metadata) {
        return Ok((digest, stat.size));
    }
    let mut contents = FileContents::open(vfs.grid(), &cap).await?;
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < contents.size() {
        let piece = contents.read(offset, HASH_CHUNK).await?;
        if piece.is_empty() {
            return Err(vfs::Error::new(ErrorKind::Internal));
        }
        offset += piece.len() as u64;
        hasher = tokio::task::spawn_blocking(move || {
            hasher.update(&piece);
            hasher
        })
        .await
        .map_err(|_| vfs::Error::new(ErrorKind::Internal))?;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if !stat.read_only
        && !metadata.is_empty()
        && let Err(e) = vfs.record_sha256(path, &cap, digest).await
    {
        // The digest is still right; only the next ask pays again.
        tracing::debug!("could not record a file's digest: {e}");
    }
    Ok((digest, stat.size))
}
