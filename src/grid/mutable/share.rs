//! A mutable share of either format (SDMF or MDMF), told apart by its first byte.

use crate::grid::hashutil::Hash;
use crate::grid::mutable::{FormatError, mdmf, sdmf};
use crate::grid::uri::MutableFormat;

/// A parsed mutable share.
#[derive(Debug, Clone)]
pub enum AnyShare {
    /// Version byte 0.
    Sdmf(sdmf::Share),
    /// Version byte 1.
    Mdmf(mdmf::Share),
}

impl AnyShare {
    /// Parses a share image of either format.
    pub fn parse(image: &[u8]) -> Result<AnyShare, FormatError> {
        match image.first() {
            Some(0) => sdmf::Share::parse(image).map(AnyShare::Sdmf),
            Some(1) => mdmf::Share::parse(image).map(AnyShare::Mdmf),
            other => Err(FormatError::UnknownVersion {
                version: other.copied(),
            }),
        }
    }

    /// The share image.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AnyShare::Sdmf(s) => s.encode(),
            AnyShare::Mdmf(s) => s.encode(),
        }
    }

    /// Checks share `shnum` against the cap's fingerprint.
    pub fn verify(&self, shnum: usize, fingerprint: &Hash) -> Result<(), FormatError> {
        match self {
            AnyShare::Sdmf(s) => s.verify(shnum, fingerprint),
            AnyShare::Mdmf(s) => s.verify(shnum, fingerprint),
        }
    }

    /// SDMF or MDMF.
    pub fn format(&self) -> MutableFormat {
        match self {
            AnyShare::Sdmf(_) => MutableFormat::Sdmf,
            AnyShare::Mdmf(_) => MutableFormat::Mdmf,
        }
    }

    /// `(seqnum, root hash)`: which version this share belongs to.
    pub fn version(&self) -> (u64, Hash) {
        match self {
            AnyShare::Sdmf(s) => (s.prefix.seqnum, s.prefix.root_hash),
            AnyShare::Mdmf(s) => (s.header.seqnum, s.header.root_hash),
        }
    }

    /// k.
    pub fn needed(&self) -> usize {
        match self {
            AnyShare::Sdmf(s) => s.prefix.needed as usize,
            AnyShare::Mdmf(s) => s.header.needed as usize,
        }
    }

    /// N.
    pub fn total(&self) -> usize {
        match self {
            AnyShare::Sdmf(s) => s.prefix.total as usize,
            AnyShare::Mdmf(s) => s.header.total as usize,
        }
    }

    /// The encrypted signing key every share carries.
    pub fn encrypted_private_key(&self) -> &[u8] {
        match self {
            AnyShare::Sdmf(s) => &s.encrypted_private_key,
            AnyShare::Mdmf(s) => &s.encrypted_private_key,
        }
    }
}

/// How many leading bytes of a share image a writer tests (Tahoe's checkstring).
pub fn checkstring_len(image: &[u8]) -> usize {
    match image.first() {
        Some(1) => mdmf::CHECKSTRING_LEN,
        _ => sdmf::CHECKSTRING_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_share_is_reported_in_its_own_format() {
        let mdmf = AnyShare::parse(&[1, 0, 0, 0]).map(|_| ()).unwrap_err();
        assert_eq!(
            mdmf,
            FormatError::Malformed {
                format: MutableFormat::Mdmf
            }
        );
        assert_eq!(mdmf.to_string(), "not a well-formed MDMF share");
        let sdmf = AnyShare::parse(&[0, 0, 0, 0]).map(|_| ()).unwrap_err();
        assert_eq!(sdmf.to_string(), "not a well-formed SDMF share");
        let neither = AnyShare::parse(&[2, 0]).map(|_| ()).unwrap_err();
        assert_eq!(neither, FormatError::UnknownVersion { version: Some(2) });
        let empty = AnyShare::parse(&[]).map(|_| ()).unwrap_err();
        assert_eq!(empty, FormatError::UnknownVersion { version: None });
    }
}
