//! Tahoe's server-side mutable share container (v1 read, v2 written): header, lease slots, extra leases.

use crate::grid::hashutil::{Hash, tagged_hash};

/// Bytes before the share data.
pub const DATA_OFFSET: u64 = 468;
/// Size of one lease record.
pub const LEASE_SIZE: usize = 92;
/// Lease slots inside the header area.
pub const HEADER_LEASE_SLOTS: usize = 4;
/// Size of the fixed header, after which the lease slots start.
pub const HEADER_SIZE: usize = 100;
const MAGIC_PREFIX_V1: &[u8] = b"Tahoe mutable container v1\n";
const MAGIC_PREFIX_V2: &[u8] = b"Tahoe mutable container v2\n";

/// Where lease slot `slot` (below [`HEADER_LEASE_SLOTS`]) starts.
pub fn lease_slot_offset(slot: usize) -> usize {
    HEADER_SIZE + slot * LEASE_SIZE
}

/// The 32-byte magic of a container version.
pub fn magic(version: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    if version == 1 {
        out[..27].copy_from_slice(MAGIC_PREFIX_V1);
        out[27..].copy_from_slice(&[0x75, 0x09, 0x44, 0x03, 0x8e]);
    } else {
        out[..27].copy_from_slice(MAGIC_PREFIX_V2);
        let tail = tagged_hash(b"allmydata_mutable_container_header", MAGIC_PREFIX_V2);
        out[27..].copy_from_slice(&tail[..5]);
    }
    out
}

/// The fixed header of a mutable container.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2 (2 hashes lease secrets).
    pub version: u8,
    /// The server's own node id.
    pub node_id: [u8; 20],
    /// The write enabler set when the share was created.
    pub write_enabler: Hash,
    /// Length of the share data.
    pub data_length: u64,
    /// Where the extra-lease count lives.
    pub extra_lease_offset: u64,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Header(v{}, data_length={}, extra_lease_offset={})",
            self.version, self.data_length, self.extra_lease_offset
        )
    }
}

impl Header {
    /// The 100 header bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[..32].copy_from_slice(&magic(self.version));
        out[32..52].copy_from_slice(&self.node_id);
        out[52..84].copy_from_slice(&self.write_enabler);
        out[84..92].copy_from_slice(&self.data_length.to_be_bytes());
        out[92..100].copy_from_slice(&self.extra_lease_offset.to_be_bytes());
        out
    }

    /// Parses the header; `None` if the magic is not a mutable container's.
    pub fn decode(bytes: &[u8]) -> Option<Header> {
        let bytes: &[u8; HEADER_SIZE] = bytes.get(..HEADER_SIZE)?.try_into().ok()?;
        let version = [1u8, 2].into_iter().find(|&v| bytes[..32] == magic(v))?;
        Some(Header {
            version,
            node_id: bytes[32..52].try_into().ok()?,
            write_enabler: bytes[52..84].try_into().ok()?,
            data_length: u64::from_be_bytes(bytes[84..92].try_into().ok()?),
            extra_lease_offset: u64::from_be_bytes(bytes[92..100].try_into().ok()?),
        })
    }
}

/// One lease record: `>LL32s32s20s`.
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// Nothing interprets it; 1 for mutable leases.
    pub owner_num: u32,
    /// Unix seconds.
    pub expiration: u32,
    /// Renew secret (BLAKE2b-hashed in v2).
    pub renew_secret: Hash,
    /// Cancel secret (BLAKE2b-hashed in v2).
    pub cancel_secret: Hash,
    /// The server's node id.
    pub node_id: [u8; 20],
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease(owner={}, expires={})", self.owner_num, self.expiration)
    }
}

impl Lease {
    /// The 92 record bytes.
    pub fn encode(&self) -> [u8; LEASE_SIZE] {
        let mut out = [0u8; LEASE_SIZE];
        out[..4].copy_from_slice(&self.owner_num.to_be_bytes());
        out[4..8].copy_from_slice(&self.expiration.to_be_bytes());
        out[8..40].copy_from_slice(&self.renew_secret);
        out[40..72].copy_from_slice(&self.cancel_secret);
        out[72..92].copy_from_slice(&self.node_id);
        out
    }

    /// Parses a record; `None` for an all-zero (unused) slot.
    pub fn decode(bytes: &[u8]) -> Option<Lease> {
        let bytes: &[u8; LEASE_SIZE] = bytes.get(..LEASE_SIZE)?.try_into().ok()?;
        if bytes.iter().all(|&b| b == 0) {
            return None;
        }
        Some(Lease {
            owner_num: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            expiration: u32::from_be_bytes(bytes[4..8].try_into().ok()?),
            renew_secret: bytes[8..40].try_into().ok()?,
            cancel_secret: bytes[40..72].try_into().ok()?,
            node_id: bytes[72..92].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_magic_matches_tahoe() {
        assert_eq!(&magic(2)[27..], &[0xc3, 0x55, 0x21, 0x99, 0x25]);
        assert_eq!(&magic(1)[..27], b"Tahoe mutable container v1\n");
    }

    #[test]
    fn header_and_lease_round_trip() {
        let header = Header {
            version: 2,
            node_id: [3; 20],
            write_enabler: [4; 32],
            data_length: 1234,
            extra_lease_offset: DATA_OFFSET + 1234,
        };
        assert_eq!(Header::decode(&header.encode()), Some(header));
        assert_eq!(Header::decode(&[0u8; 100]), None);
        let lease = Lease {
            owner_num: 1,
            expiration: 99,
            renew_secret: [5; 32],
            cancel_secret: [6; 32],
            node_id: [7; 20],
        };
        assert_eq!(Lease::decode(&lease.encode()), Some(lease));
        assert_eq!(Lease::decode(&[0u8; LEASE_SIZE]), None);
    }
}
