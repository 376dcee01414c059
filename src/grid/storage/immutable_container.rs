//! Tahoe's server-side immutable share container: a `>LLL` header, the share data, then lease records.
//!
//! Pure codec: the disk server reads and writes these bytes in place, `lafs debug dump-share`
//! parses a whole file with [`Container::parse`].

use crate::grid::hashutil::Hash;

/// Header size: `>LLL` (version, max size, lease count).
pub const HEADER_SIZE: u64 = 12;
/// Size of one lease record: `>L32s32sL`.
pub const LEASE_SIZE: u64 = 72;
/// The container version new shares get (as Tahoe 1.20).
pub const VERSION: u32 = 2;
/// Where the header keeps the max size (rewritten when an upload is trimmed).
pub const MAX_SIZE_AT: u64 = 4;
/// Where the header keeps the lease count.
pub const LEASE_COUNT_AT: u64 = 8;
/// Where a lease record keeps its expiration time.
pub const EXPIRATION_IN_LEASE: u64 = 68;

/// Why bytes are not an immutable container.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// Fewer bytes than the header.
    #[error("too short for an immutable container header")]
    TooShort,
    /// A version field other than 1 or 2 (a mutable container's magic, say).
    #[error("unknown immutable container version {0}")]
    UnknownVersion(u32),
    /// The lease records the header counts do not fit in the file.
    #[error("{0} lease records do not fit")]
    LeasesDoNotFit(u32),
}

/// The fixed header of an immutable container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2 (2 hashes lease secrets).
    pub version: u32,
    /// The size allocated for the data (clamped to `u32::MAX`); trimmed to what was written.
    pub max_size: u32,
    /// Lease records after the data.
    pub num_leases: u32,
}

impl Header {
    /// The header of a new container for `allocated_size` data bytes, with its uploader's lease.
    pub fn new(allocated_size: u64) -> Header {
        Header {
            version: VERSION,
            max_size: u32::try_from(allocated_size).unwrap_or(u32::MAX),
            num_leases: 1,
        }
    }

    /// The 12 header bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE as usize] {
        let mut out = [0u8; HEADER_SIZE as usize];
        out[..4].copy_from_slice(&self.version.to_be_bytes());
        out[4..8].copy_from_slice(&self.max_size.to_be_bytes());
        out[8..].copy_from_slice(&self.num_leases.to_be_bytes());
        out
    }

    /// Parses the header at the start of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Header, ContainerError> {
        let word = |at: usize| -> Result<u32, ContainerError> {
            let raw = bytes.get(at..at + 4).ok_or(ContainerError::TooShort)?;
            Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
        };
        let header = Header {
            version: word(0)?,
            max_size: word(4)?,
            num_leases: word(8)?,
        };
        match header.version {
            1 | 2 => Ok(header),
            other => Err(ContainerError::UnknownVersion(other)),
        }
    }

    /// How many data bytes a container of `file_len` bytes holds (readers find the leases
    /// from the file size, as Tahoe's do, not from the max size).
    pub fn data_len(&self, file_len: u64) -> Result<u64, ContainerError> {
        file_len
            .checked_sub(HEADER_SIZE + LEASE_SIZE * u64::from(self.num_leases))
            .ok_or(ContainerError::LeasesDoNotFit(self.num_leases))
    }
}

/// One lease record, its secrets as stored (BLAKE2b-hashed in v2).
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// Nothing interprets it; 0 for the uploader's lease, 1 for later ones.
    pub owner_num: u32,
    /// Renew secret as stored.
    pub renew_secret: Hash,
    /// Cancel secret as stored.
    pub cancel_secret: Hash,
    /// Unix seconds.
    pub expiration: u32,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease(owner={}, expires={})", self.owner_num, self.expiration)
    }
}

impl Lease {
    /// The 72 record bytes.
    pub fn encode(&self) -> [u8; LEASE_SIZE as usize] {
        let mut out = [0u8; LEASE_SIZE as usize];
        out[..4].copy_from_slice(&self.owner_num.to_be_bytes());
        out[4..36].copy_from_slice(&self.renew_secret);
        out[36..68].copy_from_slice(&self.cancel_secret);
        out[68..].copy_from_slice(&self.expiration.to_be_bytes());
        out
    }

    /// Parses a record.
    pub fn decode(bytes: &[u8; LEASE_SIZE as usize]) -> Lease {
        let word = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut renew_secret = [0u8; 32];
        renew_secret.copy_from_slice(&bytes[4..36]);
        let mut cancel_secret = [0u8; 32];
        cancel_secret.copy_from_slice(&bytes[36..68]);
        Lease {
            owner_num: word(0),
            renew_secret,
            cancel_secret,
            expiration: word(68),
        }
    }
}

/// A whole immutable container file, parsed.
pub struct Container<'a> {
    /// Its header.
    pub header: Header,
    /// The share data.
    pub data: &'a [u8],
    lease_records: &'a [u8],
}

impl std::fmt::Debug for Container<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The lease records hold lease secrets (v1 stores them as they are).
        write!(
            f,
            "Container({:?}, {} data bytes, {} lease record bytes)",
            self.header,
            self.data.len(),
            self.lease_records.len()
        )
    }
}

impl<'a> Container<'a> {
    /// Parses the bytes of a container file.
    pub fn parse(raw: &'a [u8]) -> Result<Container<'a>, ContainerError> {
        let header = Header::decode(raw)?;
        let data_len = header.data_len(raw.len() as u64)?;
        let (data, lease_records) = raw[HEADER_SIZE as usize..].split_at(data_len as usize);
        Ok(Container {
            header,
            data,
            lease_records,
        })
    }

    /// The lease records after the data.
    pub fn leases(&self) -> impl Iterator<Item = Lease> + 'a {
        self.lease_records
            .chunks_exact(LEASE_SIZE as usize)
            .filter_map(|record| record.try_into().ok().map(Lease::decode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_lease_round_trip() {
        let header = Header::new(10);
        assert_eq!(header.encode(), [0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0, 1]);
        assert_eq!(Header::decode(&header.encode()), Ok(header));
        assert_eq!(Header::new(u64::MAX).max_size, u32::MAX);
        let lease = Lease {
            owner_num: 1,
            renew_secret: [5; 32],
            cancel_secret: [6; 32],
            expiration: 99,
        };
        let raw = lease.encode();
        assert_eq!(&raw[EXPIRATION_IN_LEASE as usize..], &99u32.to_be_bytes());
        assert_eq!(Lease::decode(&raw), lease);
    }

    #[test]
    fn parse_finds_the_data_and_leases_from_the_file_size() {
        let lease = Lease {
            owner_num: 0,
            renew_secret: [1; 32],
            cancel_secret: [2; 32],
            expiration: 7,
        };
        // Allocated 10, holding 4: the max size says nothing about where the leases are.
        let mut raw = Header::new(10).encode().to_vec();
        raw.extend_from_slice(b"data");
        raw.extend_from_slice(&lease.encode());
        let container = Container::parse(&raw).unwrap();
        assert_eq!(container.data, b"data");
        assert_eq!(container.leases().collect::<Vec<_>>(), vec![lease]);
    }

    #[test]
    fn parse_refuses_what_is_no_immutable_container() {
        assert_eq!(Container::parse(&[0, 0, 0, 2]).unwrap_err(), ContainerError::TooShort);
        let mut raw = Header::new(0).encode().to_vec();
        assert_eq!(Container::parse(&raw).unwrap_err(), ContainerError::LeasesDoNotFit(1));
        raw[3] = 3;
        assert_eq!(Container::parse(&raw).unwrap_err(), ContainerError::UnknownVersion(3));
    }
}
