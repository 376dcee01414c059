//! Why a mutable share (SDMF or MDMF) could not be encoded, parsed or verified; each message names the format in hand.

use crate::grid::erasure;
use crate::grid::uri::MutableFormat;

/// Why mutable share images could not be made or read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a share of this format, or its offsets do not add up.
    #[error("not a well-formed {format} share")]
    Malformed {
        /// the format the share claimed (by its version byte) or was expected to be
        format: MutableFormat,
    },
    /// The first byte names neither format (0 is SDMF, 1 is MDMF).
    #[error("not a mutable share: {}", match .version { Some(v) => format!("unknown version byte {v}"), None => "empty".to_string() })]
    UnknownVersion {
        /// the share's first byte; none for an empty share
        version: Option<u8>,
    },
    /// The verification key is not the one the cap names.
    #[error("{format} share's verification key does not match the cap")]
    WrongKey {
        /// the share's format
        format: MutableFormat,
    },
    /// The signature over the signed header does not verify.
    #[error("{format} share signature does not verify")]
    BadSignature {
        /// the share's format
        format: MutableFormat,
    },
    /// The blocks or hash chain do not lead to the signed root hash.
    #[error("{format} share hashes do not match the signed root hash")]
    HashMismatch {
        /// the share's format
        format: MutableFormat,
    },
    /// Erasure coding failed.
    #[error(transparent)]
    Erasure(#[from] erasure::Error),
    /// Signing a new version's header failed.
    #[error("signing the {format} share header failed")]
    Signing {
        /// the format being written
        format: MutableFormat,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_format_in_hand() {
        let mdmf = FormatError::Malformed {
            format: MutableFormat::Mdmf,
        };
        assert_eq!(mdmf.to_string(), "not a well-formed MDMF share");
        let sdmf = FormatError::HashMismatch {
            format: MutableFormat::Sdmf,
        };
        assert_eq!(sdmf.to_string(), "SDMF share hashes do not match the signed root hash");
        let neither = FormatError::UnknownVersion { version: Some(7) };
        assert_eq!(neither.to_string(), "not a mutable share: unknown version byte 7");
        let empty = FormatError::UnknownVersion { version: None };
        assert_eq!(empty.to_string(), "not a mutable share: empty");
    }
}
