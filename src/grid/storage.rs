//! The `StorageServer` trait: the operations of Tahoe's storage protocol, whatever carries them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;

use crate::grid::base32;
use crate::grid::hashutil::Hash;
use crate::grid::uri::StorageIndex;

pub mod disk;
pub mod http;
pub mod immutable_container;
pub mod lease_crawler;
pub mod mutable_container;

/// A share number (0..N).
pub type ShareNum = u16;

/// Who a storage server is: the identity clients derive secrets and placement from.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerId {
    /// A short human name (Tahoe's nickname).
    pub nickname: String,
    /// The 20-byte node id (Tahoe's Foolscap tubid): lease and write-enabler secrets depend on it.
    pub node_id: [u8; 20],
    /// The seed of this server's place on each storage index's permuted ring.
    pub permutation_seed: Vec<u8>,
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({} {})", self.nickname, self.short_id())
    }
}

impl ServerId {
    /// The first characters of the base32 node id, as Tahoe shows servers.
    pub fn short_id(&self) -> String {
        base32::encode(&self.node_id)[..8].to_string()
    }
}

/// The secrets a lease is held by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LeaseSecrets {
    /// Presented to renew the lease.
    pub renew: Hash,
    /// Presented to cancel the lease.
    pub cancel: Hash,
}

impl fmt::Debug for LeaseSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseSecrets(..)")
    }
}

/// What `allocate_buckets` answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Shares the server holds complete already.
    pub already_have: BTreeSet<ShareNum>,
    /// Shares the server accepted for writing.
    pub allocated: BTreeSet<ShareNum>,
}

/// One test of a read-test-write: the bytes at `offset` must equal `specimen`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestVector {
    /// Where the compared range starts.
    pub offset: u64,
    /// How many bytes are compared.
    pub size: u64,
    /// The expected bytes (a missing share reads as empty).
    pub specimen: Vec<u8>,
}

/// The tests and writes for one mutable share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestAndWrite {
    /// All must pass before any write of the request happens.
    pub tests: Vec<TestVector>,
    /// `(offset, data)` writes.
    pub writes: Vec<(u64, Vec<u8>)>,
    /// Truncate (or, with 0, delete) the share to this length after writing.
    pub new_length: Option<u64>,
}

/// The answer to a read-test-write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadTestWriteResult {
    /// Whether every test passed (and so every write was applied).
    pub success: bool,
    /// The read vector's results for every share of the storage index, read before the writes.
    pub data: BTreeMap<ShareNum, Vec<Vec<u8>>>,
}

/// Space and limits a server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerVersion {
    /// Bytes the server can still accept.
    pub available_space: u64,
    /// Largest immutable share it accepts.
    pub maximum_immutable_share_size: u64,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server's disk (or connection) failed.
    #[error("storage I/O failed: {context}: {source}")]
    Io {
        /// What was being done (never names a secret).
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The share does not exist on this server.
    #[error("no such share")]
    NoSuchShare,
    /// No upload of that share is in progress.
    #[error("no upload of that share is in progress")]
    NoSuchUpload,
    /// A write reaches past the allocated size.
    #[error("write of {len} bytes at {offset} is past the allocated size {allocated}")]
    OutOfBounds {
        /// Write offset.
        offset: u64,
        /// Write length.
        len: u64,
        /// Allocated share size.
        allocated: u64,
    },
    /// The write enabler presented does not match the share's.
    #[error("write enabler mismatch")]
    BadWriteEnabler,
    /// The server has no room for the share.
    #[error("server is out of space")]
    NoSpace,
    /// The server cannot be reached.
    #[error("server unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(28) {
            return Error::NoSpace;
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The operations of Tahoe's storage protocol.
///
/// Immutable shares are written through `allocate_buckets`, `write_share` and
/// `close_share`; a share is visible to readers only once closed (and durably
/// stored). Mutable shares are changed only by `mutable_read_test_write`.
#[async_trait]
pub trait StorageServer: Send + Sync + fmt::Debug {
    /// Who this server is.
    fn id(&self) -> &ServerId;

    /// Whether a share may be allocated larger than it turns out and trimmed when closed
    /// (streamed uploads of unknown size need it; Tahoe's HTTP protocol completes a share
    /// only when its allocated size is written).
    fn accepts_open_ended_shares(&self) -> bool {
        true
    }

    /// Space and limits.
    async fn version(&self) -> Result<ServerVersion, Error>;

    /// Prepares to receive `share_nums` of `allocated_size` bytes each, with a lease.
    async fn allocate_buckets(
        &self,
        storage_index: StorageIndex,
        lease: LeaseSecrets,
        share_nums: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<Allocation, Error>;

    /// Writes bytes into an allocated share.
    async fn write_share(
        &self,
        storage_index: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        data: Bytes,
    ) -> Result<(), Error>;

    /// Makes a written share durable and visible.
    async fn close_share(&self, storage_index: StorageIndex, share_num: ShareNum) -> Result<(), Error>;

    /// Drops an unfinished share.
    async fn abort_share(&self, storage_index: StorageIndex, share_num: ShareNum) -> Result<(), Error>;

    /// The complete immutable shares held for a storage index.
    async fn list_shares(&self, storage_index: StorageIndex) -> Result<BTreeSet<ShareNum>, Error>;

    /// Reads up to `len` bytes of an immutable share from `offset` (short at the end).
    async fn read_share(
        &self,
        storage_index: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error>;

    /// Adds a lease to every share of the storage index, or renews the one held by these secrets.
    async fn add_or_renew_lease(&self, storage_index: StorageIndex, lease: LeaseSecrets) -> Result<(), Error>;

    /// Reports a share as corrupt (the server may log or quarantine it).
    async fn advise_corrupt_share(
        &self,
        storage_index: StorageIndex,
        share_num: ShareNum,
        reason: &str,
    ) -> Result<(), Error>;

    /// Atomically tests, reads and writes mutable shares (`slot_testv_and_readv_and_writev`).
    async fn mutable_read_test_write(
        &self,
        storage_index: StorageIndex,
        write_enabler: Hash,
        lease: LeaseSecrets,
        test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
        read_vector: Vec<(u64, u64)>,
    ) -> Result<ReadTestWriteResult, Error>;

    /// The mutable shares held for a storage index.
    async fn list_mutable_shares(&self, storage_index: StorageIndex) -> Result<BTreeSet<ShareNum>, Error>;

    /// Reads up to `len` bytes of a mutable share from `offset`.
    async fn read_mutable_share(
        &self,
        storage_index: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error>;
}
