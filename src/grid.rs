//! The grid: storage servers plus the encoding parameters and client secrets that uploads and downloads use.
//!
//! Pure codecs live in the submodules (`base32`, `hashutil`, `crypto`, `erasure`, `hashtree`,
//! `uri`, `selection`); `immutable` holds the CHK side (codec, upload, download, check, repair)
//! and `mutable` the SDMF/MDMF side, both over `storage` servers.

pub mod announcement;
pub mod base32;
pub mod blocklist;
pub mod budget;
pub mod commit;
pub mod crypto;
pub mod deep;
pub mod directory;
pub mod dirnode;
pub mod erasure;
pub mod hashtree;
pub mod hashutil;
pub mod immutable;
pub mod mutable;
pub mod nurl;
pub mod selection;
pub mod spki;
pub mod spool;
pub mod storage;
pub mod uri;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::grid::hashutil::Hash;
use crate::grid::storage::disk::DiskServer;
use crate::grid::storage::{LeaseSecrets, StorageServer};
use crate::grid::uri::StorageIndex;

/// k, happy, N and the maximum segment size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingParams {
    /// Shares needed to read (k).
    pub needed: usize,
    /// Distinct servers that must hold shares for a put to succeed.
    pub happy: usize,
    /// Shares written (N).
    pub total: usize,
    /// Largest segment, in bytes.
    pub max_segment_size: u64,
}

impl Default for EncodingParams {
    fn default() -> Self {
        EncodingParams {
            needed: 3,
            happy: 7,
            total: 10,
            max_segment_size: 1024 * 1024,
        }
    }
}

impl EncodingParams {
    /// Checks 1 <= needed <= 256, needed <= total <= 256, 1 <= happy <= total and a non-zero
    /// segment size, in that order.
    pub fn validate(&self) -> Result<(), BadParams> {
        let EncodingParams {
            needed,
            happy,
            total,
            max_segment_size,
        } = *self;
        if needed == 0 || needed > 256 {
            return Err(BadParams::Needed { needed });
        }
        if total < needed || total > 256 {
            return Err(BadParams::Total { needed, total });
        }
        if happy == 0 || happy > total {
            return Err(BadParams::Happy { happy, total });
        }
        if max_segment_size == 0 {
            return Err(BadParams::MaxSegmentSize);
        }
        Ok(())
    }
}

/// Which encoding parameter is out of range (see [`EncodingParams::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadParams {
    /// `needed` (k) is 0 or over 256.
    #[error("needed = {needed}: allowed 1..=256")]
    Needed {
        /// the value given
        needed: usize,
    },
    /// `total` (N) is under `needed` or over 256.
    #[error("total = {total}: allowed needed..=256 ({needed}..=256)")]
    Total {
        /// `needed`, the lower bound
        needed: usize,
        /// the value given
        total: usize,
    },
    /// `happy` is 0 or over `total`.
    #[error("happy = {happy}: allowed 1..=total (1..={total})")]
    Happy {
        /// the value given
        happy: usize,
        /// `total`, the upper bound
        total: usize,
    },
    /// `max_segment_size` is 0.
    #[error("max_segment_size = 0: allowed 1 or more bytes")]
    MaxSegmentSize,
}

/// The node's secrets: the convergence secret and the lease secret.
#[derive(Clone)]
pub struct ClientSecrets {
    /// Mixed into every convergent key; nodes sharing it deduplicate each other's files.
    pub convergence: Vec<u8>,
    /// The root of every lease renew/cancel secret.
    pub lease: Vec<u8>,
}

impl fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecrets(..)")
    }
}

impl ClientSecrets {
    /// The lease secrets for one storage index on one server.
    pub fn lease_for(&self, si: StorageIndex, server_node_id: &[u8]) -> LeaseSecrets {
        let renew: Hash = hashutil::client_renewal_secret(&self.lease);
        let cancel: Hash = hashutil::client_cancel_secret(&self.lease);
        LeaseSecrets {
            renew: hashutil::bucket_renewal_secret(&renew, &si.0, server_node_id),
            cancel: hashutil::bucket_cancel_secret(&cancel, &si.0, server_node_id),
        }
    }
}

/// Why a grid operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer than k good shares could be found.
    #[error("not enough shares: {needed} needed, {found} found")]
    NotEnoughShares {
        /// k
        needed: usize,
        /// good shares found
        found: usize,
    },
    /// The shares could not be spread over enough servers.
    #[error(
        "servers of happiness not met: {happy} needed, shares could be placed on only {achieved} servers ({servers} servers usable)"
    )]
    HappinessNotMet {
        /// required happiness
        happy: usize,
        /// happiness reached
        achieved: usize,
        /// servers that accepted writes
        servers: usize,
    },
    /// No share of the file passed integrity checks.
    #[error("shares of storage index {storage_index} fail integrity checks")]
    IntegrityFailure {
        /// which file
        storage_index: StorageIndex,
    },
    /// The cap names something that is not an immutable file.
    #[error("{0} caps are not supported here")]
    UnsupportedCap(&'static str),
    /// Reading the upload source or writing the download target failed.
    #[error("{context}: {source}")]
    Io {
        /// what was being done
        context: String,
        /// the underlying error
        source: std::io::Error,
    },
    /// A storage server failed.
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// Bad encoding parameters.
    #[error(transparent)]
    Erasure(#[from] erasure::Error),
    /// Another writer changed a mutable file between our read and our write.
    #[error("uncoordinated write to mutable file {storage_index}: another writer changed it; read it again and retry")]
    UncoordinatedWrite {
        /// which file
        storage_index: StorageIndex,
    },
    /// A write was attempted with a read-only cap.
    #[error("the cap is read-only")]
    ReadOnly,
    /// A mutable file's signing key is unusable.
    #[error(transparent)]
    MutableKey(#[from] mutable::keys::KeyError),
    /// A mutable share could not be encoded or decoded.
    #[error(transparent)]
    MutableFormat(#[from] mutable::FormatError),
    /// A directory change was refused.
    #[error(transparent)]
    Directory(#[from] directory::DirectoryError),
    /// A directory's body cannot be unpacked.
    #[error("directory contents are corrupt")]
    CorruptDirectory,
    /// The file is on the node's access blocklist.
    #[error("access to this file is blocked: {reason}")]
    Prohibited {
        /// the reason given in the blocklist
        reason: String,
    },
    /// A background task died.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One lock per mutable file this process writes.
type WriteLocks = std::sync::Mutex<std::collections::HashMap<StorageIndex, Arc<tokio::sync::Mutex<()>>>>;

/// A set of storage servers with the parameters and secrets to use them.
#[derive(Clone)]
pub struct Grid {
    servers: Vec<Arc<dyn StorageServer>>,
    params: EncodingParams,
    secrets: Arc<ClientSecrets>,
    /// Writers in this process take turns on each mutable file (as Tahoe's node does),
    /// so collisions come only from other processes.
    write_locks: Arc<WriteLocks>,
    blocklist: Option<Arc<blocklist::Blocklist>>,
    key_pool: Option<Arc<mutable::key_pool::KeyPool>>,
    /// The node-wide budget for file data in flight (shared by every clone).
    budget: budget::MemoryBudget,
    /// Directory listings read or written a moment ago (shared by every clone; off by default).
    dir_cache: Arc<directory::cache::DirectoryCache>,
    /// The commit queue, once a serving node starts it (shared by every clone).
    commits: Arc<std::sync::RwLock<Option<commit::CommitQueue>>>,
}

/// Brief, because frontends' log spans print it (libunftp's data channel logs its storage back-end
/// with every command): the servers by id and the encoding, never the secrets or the locks.
impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("servers", &self.servers.iter().map(|s| s.id()).collect::<Vec<_>>())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Grid {
    /// A grid over the given servers.
    pub fn new(servers: Vec<Arc<dyn StorageServer>>, params: EncodingParams, secrets: ClientSecrets) -> Self {
        Grid {
            servers,
            params,
            secrets: Arc::new(secrets),
            write_locks: Arc::default(),
            blocklist: None,
            key_pool: None,
            budget: budget::MemoryBudget::default(),
            dir_cache: Arc::default(),
            commits: Arc::default(),
        }
    }

    /// The same grid with its own budget of `bytes` for file data in flight.
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.budget = budget::MemoryBudget::new(bytes);
        self
    }

    /// The budget every upload, download and buffered write of this grid draws on.
    pub fn memory_budget(&self) -> &budget::MemoryBudget {
        &self.budget
    }

    /// Opens (creating as needed) `count` on-disk servers under `dir` (`server-00`, `server-01`, …).
    pub fn open_local(dir: &Path, count: usize, params: EncodingParams, secrets: ClientSecrets) -> Result<Self, Error> {
        let servers = (0..count)
            .map(|i| {
                let name = format!("server-{i:02}");
                DiskServer::open(dir.join(&name), name).map(|s| Arc::new(s) as Arc<dyn StorageServer>)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Grid::new(servers, params, secrets))
    }

    /// The directory cache every clone of this grid shares (see [`directory::cache`]).
    pub fn directory_cache(&self) -> &directory::cache::DirectoryCache {
        &self.dir_cache
    }

    /// The servers, in configuration order.
    pub fn servers(&self) -> &[Arc<dyn StorageServer>] {
        &self.servers
    }

    /// The same grid without the servers whose node ids are in `node_ids`.
    pub fn without_servers(&self, node_ids: &[[u8; 20]]) -> Self {
        let mut grid = self.clone();
        grid.servers.retain(|s| !node_ids.contains(&s.id().node_id));
        grid
    }

    /// Whether every server lets a share be allocated larger than it turns out (see
    /// [`StorageServer::accepts_open_ended_shares`]); else uploads must know their size first.
    pub fn accepts_open_ended_shares(&self) -> bool {
        self.servers.iter().all(|s| s.accepts_open_ended_shares())
    }

    /// The same grid with other encoding parameters.
    pub fn with_params(mut self, params: EncodingParams) -> Self {
        self.params = params;
        self
    }

    /// The encoding parameters new uploads use.
    pub fn params(&self) -> &EncodingParams {
        &self.params
    }

    /// The node's secrets.
    pub fn secrets(&self) -> &ClientSecrets {
        &self.secrets
    }

    /// Refuses reads of files listed in `blocklist`.
    pub fn with_blocklist(mut self, blocklist: blocklist::Blocklist) -> Self {
        self.blocklist = Some(Arc::new(blocklist));
        self
    }

    /// Keeps `size` RSA keys pre-generated for new directories and mutable files.
    pub fn with_key_pool(mut self, size: usize) -> Result<Self, Error> {
        self.key_pool = Some(Arc::new(mutable::key_pool::KeyPool::start(size)?));
        Ok(self)
    }

    /// A signing key for a new mutable file: from the pool when one is ready, else made now (off the runtime).
    pub async fn new_signing_key(&self) -> Result<rsa::RsaPrivateKey, Error> {
        if let Some(key) = self.key_pool.as_ref().and_then(|p| p.try_take()) {
            return Ok(key);
        }
        tokio::task::spawn_blocking(mutable::publish::generate_signing_key)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Fails if `si` is on the blocklist.
    pub fn check_allowed(&self, si: StorageIndex) -> Result<(), Error> {
        match self.blocklist.as_ref().and_then(|b| b.reason(si)) {
            Some(reason) => Err(Error::Prohibited { reason }),
            None => Ok(()),
        }
    }

    /// Waits for this process's turn to write `si`: a mutable file, or an immutable file's shares.
    pub async fn lock_for_writing(&self, si: StorageIndex) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.write_locks.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(si).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The servers in Tahoe's permuted order for `si`.
    pub fn permuted_servers(&self, si: StorageIndex) -> Vec<Arc<dyn StorageServer>> {
        let ids: Vec<_> = self.servers.iter().map(|s| s.id()).collect();
        selection::permuted_order(&si.0, &ids)
            .into_iter()
            .map(|i| self.servers[i].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_brief_and_hides_the_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = ClientSecrets {
            convergence: b"convergence-secret".to_vec(),
            lease: b"lease-secret".to_vec(),
        };
        let grid = Grid::open_local(dir.path(), 10, EncodingParams::default(), secrets).unwrap();
        let shown = format!("{grid:?}");
        // Log spans print it with every FTP data command: ten servers must stay one short line.
        assert!(shown.len() < 600, "{} bytes: {shown}", shown.len());
        assert!(shown.contains("server-09"), "{shown}");
        assert!(!shown.contains("secret") && !shown.contains("Mutex"), "{shown}");
    }
}
