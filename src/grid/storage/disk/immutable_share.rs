//! A complete immutable share file: its container header, and its leases read, added and renewed in place.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use subtle::ConstantTimeEq;

use super::leases::{now_plus_lease, stored_secrets};
use crate::grid::storage::immutable_container::{
    EXPIRATION_IN_LEASE, HEADER_SIZE, Header, LEASE_COUNT_AT, LEASE_SIZE, Lease,
};
use crate::grid::storage::{Error, LeaseSecrets};

/// An immutable container's header fields and where its data ends.
pub(super) struct ImmutableContainer {
    pub(super) version: u32,
    pub(super) num_leases: u64,
    pub(super) data_len: u64,
}

/// The container's header, or `None` if the file is not an immutable container: too short for
/// its header, another version (a mutable container's magic, say), or too short for its leases.
pub(super) fn read_immutable_container(file: &File) -> Result<Option<ImmutableContainer>, Error> {
    let mut raw = [0u8; HEADER_SIZE as usize];
    match file.read_exact_at(&mut raw, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(Error::io("read share header", e)),
    }
    let file_len = file.metadata().map_err(|e| Error::io("stat share", e))?.len();
    let Ok(header) = Header::decode(&raw) else {
        return Ok(None);
    };
    Ok(header.data_len(file_len).ok().map(|data_len| ImmutableContainer {
        version: header.version,
        num_leases: u64::from(header.num_leases),
        data_len,
    }))
}

pub(super) fn not_immutable_container() -> Error {
    Error::io("read share", std::io::Error::other("not an immutable share container"))
}

/// A lease record given now, its secrets stored as a container of `version` stores them.
pub(super) fn new_lease(version: u32, owner_num: u32, lease: &LeaseSecrets) -> [u8; LEASE_SIZE as usize] {
    let (renew_secret, cancel_secret) = stored_secrets(version, lease);
    Lease {
        owner_num,
        renew_secret,
        cancel_secret,
        expiration: now_plus_lease(),
    }
    .encode()
}

/// Renews the share's lease with `lease`'s renew secret, or adds one. The caller holds the
/// share's lease lock: two additions at once would both append at the same place.
pub(super) fn add_or_renew_immutable_lease(path: &Path, lease: &LeaseSecrets) -> Result<(), Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let container = read_immutable_container(&file)?.ok_or_else(not_immutable_container)?;
    let leases_at = HEADER_SIZE + container.data_len;
    let (wanted, _) = stored_secrets(container.version, lease);
    for i in 0..container.num_leases {
        let at = leases_at + i * LEASE_SIZE;
        let mut record = [0u8; LEASE_SIZE as usize];
        file.read_exact_at(&mut record, at)
            .map_err(|e| Error::io("read lease", e))?;
        if bool::from(Lease::decode(&record).renew_secret.ct_eq(&wanted)) {
            file.write_all_at(&now_plus_lease().to_be_bytes(), at + EXPIRATION_IN_LEASE)
                .map_err(|e| Error::io("renew lease", e))?;
            return file.sync_data().map_err(|e| Error::io("fsync lease", e));
        }
    }
    let record = new_lease(container.version, 1, lease);
    file.write_all_at(&record, leases_at + container.num_leases * LEASE_SIZE)
        .map_err(|e| Error::io("add lease", e))?;
    let count = u32::try_from(container.num_leases + 1).unwrap_or(u32::MAX);
    file.write_all_at(&count.to_be_bytes(), LEASE_COUNT_AT)
        .map_err(|e| Error::io("add lease", e))?;
    file.sync_data().map_err(|e| Error::io("fsync lease", e))
}

/// The expiration times (Unix seconds) of an immutable share's leases.
pub(super) fn immutable_lease_expirations(path: &Path) -> Result<Vec<u32>, Error> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let container = read_immutable_container(&file)?.ok_or_else(not_immutable_container)?;
    let leases_at = HEADER_SIZE + container.data_len;
    let mut expirations = Vec::new();
    for i in 0..container.num_leases {
        let mut raw = [0u8; 4];
        file.read_exact_at(&mut raw, leases_at + i * LEASE_SIZE + EXPIRATION_IN_LEASE)
            .map_err(|e| Error::io("read leases", e))?;
        expirations.push(u32::from_be_bytes(raw));
    }
    Ok(expirations)
}
