//! Leases on a disk server's shares: their term, how their secrets are stored, and the locks
//! taken around every lease change.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use blake2::{Blake2b256, Digest};

use crate::grid::hashutil::Hash;
use crate::grid::storage::LeaseSecrets;
use crate::grid::uri::StorageIndex;

/// Tahoe's lease duration.
pub const LEASE_SECONDS: u64 = 31 * 24 * 3600;

/// When a lease given or renewed now expires (Unix seconds).
pub(super) fn now_plus_lease() -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(now + LEASE_SECONDS).unwrap_or(u32::MAX)
}

/// v2 containers store `BLAKE2b-256(secret)` rather than the secret itself.
pub(super) fn hash_lease_secret(secret: &Hash) -> Hash {
    Blake2b256::digest(secret).into()
}

/// The renew and cancel secrets as a container of `version` stores them.
pub(super) fn stored_secrets(version: u32, lease: &LeaseSecrets) -> (Hash, Hash) {
    if version == 1 {
        (lease.renew, lease.cancel)
    } else {
        (hash_lease_secret(&lease.renew), hash_lease_secret(&lease.cancel))
    }
}

/// Locks by storage index, a fixed number shared among indexes (which are uniformly random),
/// so nothing grows with the number of indexes ever touched.
pub(super) struct StripedLocks(Vec<Mutex<()>>);

impl std::fmt::Debug for StripedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StripedLocks({})", self.0.len())
    }
}

impl StripedLocks {
    const STRIPES: usize = 64;

    pub(super) fn new() -> Self {
        StripedLocks((0..Self::STRIPES).map(|_| Mutex::new(())).collect())
    }

    pub(super) fn lock(&self, si: &StorageIndex) -> std::sync::MutexGuard<'_, ()> {
        let stripe = usize::from(u16::from_be_bytes([si.0[0], si.0[1]])) % self.0.len();
        // The lock guards no data of its own: a panic while it was held leaves nothing to repair.
        self.0[stripe].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether a share file holds an immutable or a mutable share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareKind {
    /// An immutable (CHK) share container.
    Immutable,
    /// A mutable (SDMF/MDMF) slot container.
    Mutable,
}

/// The locks a server takes to add or renew a share's leases (and, for a mutable share, to
/// write it); its lease crawler takes them too, so a lease renewed while the crawler judges a
/// share is never deleted with it.
#[derive(Debug, Clone)]
pub struct ShareLocks {
    pub(super) mutable: Arc<Mutex<()>>,
    pub(super) leases: Arc<StripedLocks>,
}

impl ShareLocks {
    /// Holds off lease changes (and mutable writes) to the `kind` shares of `si` while held.
    pub fn lock(&self, si: &StorageIndex, kind: ShareKind) -> std::sync::MutexGuard<'_, ()> {
        match kind {
            ShareKind::Immutable => self.leases.lock(si),
            // The lock guards no data of its own: a panic while it was held leaves nothing to repair.
            ShareKind::Mutable => self.mutable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }
}
