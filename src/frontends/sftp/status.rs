//! How vfs errors become SFTP v3 status codes (one exhaustive match; OpenSSH's sftp-server choices where v3 is vague).

use russh_sftp::protocol::StatusCode;
use russh_sftp::server::StatusReply;

use crate::vfs::{self, ErrorKind};

/// The status code for an error kind.
pub fn status_code(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NoSuchFile,
        // As OpenSSH maps ENOTDIR: a path through a file names nothing.
        ErrorKind::NotADirectory => StatusCode::NoSuchFile,
        // v3 has no EEXIST; FAILURE is what OpenSSH sends and what gvfs/sshfs turn into EEXIST.
        ErrorKind::AlreadyExists => StatusCode::Failure,
        ErrorKind::IsADirectory => StatusCode::Failure,
        ErrorKind::DirectoryNotEmpty => StatusCode::Failure,
        ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        // OpenSSH answers EINVAL with BAD_MESSAGE.
        ErrorKind::InvalidName => StatusCode::BadMessage,
        ErrorKind::Transient => StatusCode::Failure,
        ErrorKind::Unsupported => StatusCode::OpUnsupported,
        // OpenSSH maps EFBIG to FAILURE; the message says "file too large".
        ErrorKind::TooLarge => StatusCode::Failure,
        ErrorKind::Internal => StatusCode::Failure,
    }
}

/// The status reply for an error: its code and its message (vfs messages never contain caps).
pub fn reply(error: &vfs::Error) -> StatusReply {
    status_code(error.kind()).with_message(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status() {
        let table = [
            (ErrorKind::NotFound, StatusCode::NoSuchFile),
            (ErrorKind::NotADirectory, StatusCode::NoSuchFile),
            (ErrorKind::AlreadyExists, StatusCode::Failure),
            (ErrorKind::IsADirectory, StatusCode::Failure),
            (ErrorKind::DirectoryNotEmpty, StatusCode::Failure),
            (ErrorKind::PermissionDenied, StatusCode::PermissionDenied),
            (ErrorKind::InvalidName, StatusCode::BadMessage),
            (ErrorKind::Transient, StatusCode::Failure),
            (ErrorKind::Unsupported, StatusCode::OpUnsupported),
            (ErrorKind::TooLarge, StatusCode::Failure),
            (ErrorKind::Internal, StatusCode::Failure),
        ];
        for (kind, code) in table {
            assert_eq!(status_code(kind), code, "{kind:?}");
            let message = reply(&vfs::Error::new(kind)).error_message.unwrap();
            assert!(!message.is_empty());
        }
    }
}
