//! The check-file extensions (`check-file-name`, `check-file-handle`, and paramiko's `check-file`): a file's SHA-256 without downloading it.
//!
//! Request (draft-ietf-secsh-filexfer-extensions-00, 3.1): a path or handle, a comma-separated
//! list of hash algorithms, a start offset, a length (0: to the end) and a block size (0: one hash
//! of the range). Reply: EXTENDED_REPLY with `"check-file"`, the algorithm used and the digest.
//! Only SHA-256 of the whole file is served: that is the digest recorded at upload, so it costs no
//! read of the file.

use bytes::{BufMut, BytesMut};
use russh_sftp::protocol::{ExtendedReply, Packet, StatusCode};
use russh_sftp::server::StatusReply;
use serde::Deserialize;

use super::requests::vfs_err;
use crate::frontends::digest;
use crate::vfs::Vfs;

/// The path form's name.
pub const BY_NAME: &str = "check-file-name";
/// The handle form's name.
pub const BY_HANDLE: &str = "check-file-handle";
/// The name paramiko's `SFTPFile.check()` sends (the handle form, an older draft's name).
pub const PARAMIKO: &str = "check-file";
/// The one algorithm served.
const SHA256: &str = "sha256";

/// A check-file request: `target` is the path or the handle.
#[derive(Debug, Deserialize)]
pub struct CheckFile {
    /// The path (check-file-name) or handle (check-file-handle).
    pub target: String,
    algorithms: String,
    offset: u64,
    length: u64,
    block_size: u32,
}

impl CheckFile {
    /// Refuses what is not served: algorithms without SHA-256, part of a file or per-block hashes
    /// (the file's size is known only once it is looked up; [`answer`] checks the rest).
    pub fn check_algorithm(&self) -> Result<(), StatusReply> {
        if self.algorithms.split(',').any(|a| a.trim() == SHA256) {
            Ok(())
        } else {
            Err(StatusCode::OpUnsupported.with_message("only sha256 is served"))
        }
    }
}

/// Answers `request` for the file at `path` (whose size the request's range must cover).
pub async fn answer(vfs: &Vfs, id: u32, path: &str, request: &CheckFile) -> Result<Packet, StatusReply> {
    request.check_algorithm()?;
    let (digest, size) = digest::sha256(vfs, path.as_bytes()).await.map_err(vfs_err)?;
    let whole_range = request.offset == 0 && (request.length == 0 || request.length >= size);
    let one_block = request.block_size == 0 || u64::from(request.block_size) >= size;
    if !whole_range || !one_block {
        return Err(StatusCode::OpUnsupported.with_message("only whole-file hashes are served"));
    }
    let mut data = BytesMut::new();
    for text in [PARAMIKO, SHA256] {
        data.put_u32(text.len() as u32);
        data.put_slice(text.as_bytes());
    }
    data.put_slice(&digest);
    Ok(Packet::ExtendedReply(ExtendedReply {
        id,
        data: data.to_vec(),
    }))
}
