//! What path and handle requests share: a request's place among those being handled, OK and error statuses, the extent check of writes and size changes, the clock.
//!
//! Kept apart from `session` (path requests), `handles` (handle requests) and `dispatch` (routing)
//! so that none of those files needs another's internals.

use std::time::{SystemTime, UNIX_EPOCH};

use russh_sftp::protocol::{Status, StatusCode};
use russh_sftp::server::StatusReply;
use tokio::sync::OwnedSemaphorePermit;

use super::status::reply;
use crate::vfs::{self, MAX_FILE_SIZE};

/// How far past a file's current end one request may write or extend it. The gap is filled with
/// zeros that are encrypted into the spool (and later encoded and uploaded like data), so a
/// 40-byte request naming a far offset would otherwise cost as much as uploading the whole gap,
/// in the request path. Bounded, a request does at most this much work (well under a second).
/// Clients write in order, or a few pipelined or parallel chunks ahead (rclone's multi-thread
/// copies use 4 streams of 64 MiB chunks); 256 MiB leaves room for those.
pub const MAX_GAP: u64 = 256 << 20;

/// A request's place among those being handled, given back when it is dropped.
pub struct Ticket {
    _place: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

impl Ticket {
    /// A ticket holding a place among the requests being handled and the bytes of its request.
    pub fn new(place: OwnedSemaphorePermit, bytes: OwnedSemaphorePermit) -> Ticket {
        Ticket {
            _place: place,
            _bytes: bytes,
        }
    }
}

/// Now, in Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An OK status for request `id`.
pub fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// The status a vfs error is answered with.
pub fn vfs_err(e: vfs::Error) -> StatusReply {
    reply(&e)
}

/// Checks a write of `count` bytes at `offset`, or a size change to `offset` (`count` 0), of a file
/// now `len` bytes long, before any work: the end must be within [`MAX_FILE_SIZE`] and the gap
/// after the current end within [`MAX_GAP`].
pub fn check_extent(len: u64, offset: u64, count: u64) -> Result<(), StatusReply> {
    let end = offset.checked_add(count);
    if end.is_none_or(|end| end > MAX_FILE_SIZE) {
        // FAILURE with a message, as OpenSSH's sftp-server answers EFBIG.
        return Err(StatusCode::Failure.with_message(format!(
            "file too large: the gateway stores files of at most {} GiB",
            MAX_FILE_SIZE >> 30
        )));
    }
    if offset > len.saturating_add(MAX_GAP) {
        return Err(StatusCode::Failure.with_message(format!(
            "gap too large: a write or size change may reach at most {} MiB past the end of the file \
             ({len} bytes now); write the bytes before it first",
            MAX_GAP >> 20
        )));
    }
    Ok(())
}
