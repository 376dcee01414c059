//! A storage server on local disk, in Tahoe's directory layout and share container formats.
//!
//! `<root>/shares/<2 chars>/<SI>/<shnum>` holds complete shares; uploads in
//! progress live under `<root>/shares/incoming/` and are renamed into place
//! only once their bytes are on stable storage, so a crash never leaves a partial
//! share where readers look. A real Tahoe storage node pointed at `<root>` reads
//! the same files.

mod files;
mod immutable_share;
mod incoming;
mod leases;
mod mutable_share;
mod sync_group;
mod workers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use self::files::{is_mutable_container, share_dir, share_files};
use self::immutable_share::{add_or_renew_immutable_lease, immutable_lease_expirations, read_immutable_container};
use self::incoming::{Upload, claim_incoming, clear_incoming, incoming_path, start_container, trim_container};
use self::leases::StripedLocks;
pub use self::leases::{LEASE_SECONDS, ShareKind, ShareLocks};
pub use self::mutable_share::MAX_READ_TEST_WRITE_ANSWER;
use self::mutable_share::{MutableShare, read_test_write};
use self::sync_group::SyncGroup;
use self::workers::blocking;
use super::immutable_container::{HEADER_SIZE as IMMUTABLE_HEADER, LEASE_SIZE as IMMUTABLE_LEASE};
use super::{
    Allocation, Error, LeaseSecrets, ReadTestWriteResult, ServerId, ServerVersion, ShareNum, StorageServer,
    TestAndWrite,
};
use crate::grid::base32;
use crate::grid::crypto::random_bytes;
use crate::grid::hashutil::Hash;
use crate::grid::uri::StorageIndex;

/// A storage server whose shares are files under one directory.
#[derive(Debug)]
pub struct DiskServer {
    root: PathBuf,
    id: ServerId,
    uploads: Mutex<HashMap<(StorageIndex, ShareNum), Arc<Upload>>>,
    /// Read-test-write must be atomic across all shares of a storage index.
    mutable_lock: Arc<Mutex<()>>,
    /// Adding a lease to an immutable share rewrites its lease count and appends a record:
    /// two at once would both append at the same place and one lease would be lost.
    lease_locks: Arc<StripedLocks>,
    /// Makes closed shares durable, one `syncfs` for all closed at once on the filesystem.
    sync_group: Arc<SyncGroup>,
}

fn read_identity(path: &Path) -> Option<[u8; 20]> {
    base32::decode_array(fs::read_to_string(path).ok()?.trim())
}

impl DiskServer {
    /// Opens (creating if needed) a server rooted at `root`.
    pub fn open(root: impl Into<PathBuf>, nickname: impl Into<String>) -> Result<Self, Error> {
        let root = root.into();
        let incoming = root.join("shares").join("incoming");
        clear_incoming(&incoming)?;
        fs::create_dir_all(&incoming).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let id_path = root.join("node-id");
        let node_id = match read_identity(&id_path) {
            Some(id) => id,
            None => {
                let id: [u8; 20] = random_bytes();
                fs::write(&id_path, base32::encode(&id) + "\n")
                    .map_err(|e| Error::io(format!("write {}", id_path.display()), e))?;
                id
            }
        };
        let id = ServerId {
            nickname: nickname.into(),
            node_id,
            permutation_seed: node_id.to_vec(),
        };
        let sync_group = SyncGroup::for_filesystem_of(&incoming)?;
        Ok(DiskServer {
            root,
            id,
            sync_group,
            uploads: Mutex::new(HashMap::new()),
            mutable_lock: Arc::new(Mutex::new(())),
            lease_locks: Arc::new(StripedLocks::new()),
        })
    }

    /// Reads back bytes already written to a share that is still being uploaded
    /// (so a repeated write can be told from a conflicting one).
    pub async fn read_incoming(
        &self,
        si: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, Error> {
        let upload = self
            .uploads()
            .get(&(si, share_num))
            .cloned()
            .ok_or(Error::NoSuchUpload)?;
        blocking(move || {
            let mut buf = vec![0u8; len];
            upload
                .file
                .read_exact_at(&mut buf, IMMUTABLE_HEADER + offset)
                .map_err(|e| Error::io("read incoming share", e))?;
            Ok(buf)
        })
        .await
    }

    /// The directory this server keeps its shares under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The locks this server takes around lease changes and mutable writes.
    pub fn share_locks(&self) -> ShareLocks {
        ShareLocks {
            mutable: self.mutable_lock.clone(),
            leases: self.lease_locks.clone(),
        }
    }

    /// Where complete shares of a storage index live.
    pub fn share_dir(&self, si: StorageIndex) -> PathBuf {
        share_dir(&self.root.join("shares"), si)
    }

    fn incoming_dir(&self) -> PathBuf {
        self.root.join("shares").join("incoming")
    }

    fn uploads(&self) -> std::sync::MutexGuard<'_, HashMap<(StorageIndex, ShareNum), Arc<Upload>>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.uploads.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The kind of a share file and the expiration times (Unix seconds) of its leases.
pub fn share_lease_expirations(path: &Path) -> Result<(ShareKind, Vec<u32>), Error> {
    if is_mutable_container(path)? {
        return Ok((ShareKind::Mutable, MutableShare::open(path)?.lease_expirations()?));
    }
    Ok((ShareKind::Immutable, immutable_lease_expirations(path)?))
}

#[async_trait]
impl StorageServer for DiskServer {
    fn id(&self) -> &ServerId {
        &self.id
    }

    async fn version(&self) -> Result<ServerVersion, Error> {
        let root = self.root.clone();
        let available_space =
            blocking(move || fs4::available_space(&root).map_err(|e| Error::io("statvfs", e))).await?;
        Ok(ServerVersion {
            available_space,
            maximum_immutable_share_size: available_space,
        })
    }

    async fn allocate_buckets(
        &self,
        si: StorageIndex,
        lease: LeaseSecrets,
        share_nums: &BTreeSet<ShareNum>,
        allocated_size: u64,
    ) -> Result<Allocation, Error> {
        let final_dir = self.share_dir(si);
        let incoming_dir = self.incoming_dir();
        let wanted = share_nums.clone();
        let root = self.root.clone();
        let lease_locks = self.lease_locks.clone();
        let busy: BTreeSet<ShareNum> = self
            .uploads()
            .keys()
            .filter(|(s, _)| *s == si)
            .map(|(_, n)| *n)
            .collect();
        let (allocation, opened) = blocking(move || {
            let mut opened: Vec<(ShareNum, Upload)> = Vec::new();
            let claim = || -> Result<Allocation, Error> {
                let existing = share_files(&final_dir)?;
                let mut allocation = Allocation::default();
                let mut space = fs4::available_space(&root).map_err(|e| Error::io("statvfs", e))?;
                let renew = |path: &Path| {
                    // As Tahoe does: an uploader that finds the share holds a lease on it too.
                    let _leases = lease_locks.lock(&si);
                    add_or_renew_immutable_lease(path, &lease)
                };
                for num in wanted {
                    if let Some(path) = existing.get(&num) {
                        renew(path)?;
                        allocation.already_have.insert(num);
                        continue;
                    }
                    let needed = (IMMUTABLE_HEADER + IMMUTABLE_LEASE).saturating_add(allocated_size);
                    if busy.contains(&num) || space < needed {
                        continue;
                    }
                    let path = incoming_path(&incoming_dir, si, num);
                    let Some(file) = claim_incoming(&path)? else {
                        // Another allocation claimed it since `busy` was read.
                        continue;
                    };
                    let final_path = final_dir.join(num.to_string());
                    if final_path.exists() {
                        // Its upload was closed since `existing` was read: this claim came too late.
                        let _ = fs::remove_file(&path);
                        renew(&final_path)?;
                        allocation.already_have.insert(num);
                        continue;
                    }
                    if let Err(e) = start_container(&file, allocated_size, &lease) {
                        let _ = fs::remove_file(&path);
                        return Err(e);
                    }
                    opened.push((
                        num,
                        Upload {
                            file,
                            incoming: path,
                            max_size: allocated_size,
                            written_end: std::sync::atomic::AtomicU64::new(0),
                        },
                    ));
                    space = space.saturating_sub(needed);
                    allocation.allocated.insert(num);
                }
                Ok(allocation)
            };
            match claim() {
                Ok(allocation) => Ok((allocation, opened)),
                Err(e) => {
                    // Nobody will write or abort these: unclaim them, or the shares stay busy.
                    for (_, upload) in &opened {
                        let _ = fs::remove_file(&upload.incoming);
                    }
                    Err(e)
                }
            }
        })
        .await?;
        let mut uploads = self.uploads();
        for (num, upload) in opened {
            uploads.insert((si, num), Arc::new(upload));
        }
        Ok(allocation)
    }

    async fn write_share(&self, si: StorageIndex, share_num: ShareNum, offset: u64, data: Bytes) -> Result<(), Error> {
        let upload = self
            .uploads()
            .get(&(si, share_num))
            .cloned()
            .ok_or(Error::NoSuchUpload)?;
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > upload.max_size) {
            return Err(Error::OutOfBounds {
                offset,
                len,
                allocated: upload.max_size,
            });
        }
        blocking(move || {
            let at = IMMUTABLE_HEADER + offset;
            upload
                .file
                .write_all_at(&data, at)
                .map_err(|e| Error::io("write share", e))?;
            upload
                .written_end
                .fetch_max(offset + len, std::sync::atomic::Ordering::Relaxed);
            // Start writeback now (asynchronously) rather than leaving gigabytes of
            // dirty pages for the fsync at close; durability still comes from that fsync.
            let _ = nix::fcntl::posix_fadvise(
                &upload.file,
                at as i64,
                len as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
            Ok(())
        })
        .await
    }

    async fn close_share(&self, si: StorageIndex, share_num: ShareNum) -> Result<(), Error> {
        let upload = self.uploads().remove(&(si, share_num)).ok_or(Error::NoSuchUpload)?;
        let final_dir = self.share_dir(si);
        let trimmed = Arc::clone(&upload);
        blocking(move || {
            let written = trimmed.written_end.load(std::sync::atomic::Ordering::Relaxed);
            if written < trimmed.max_size {
                trim_container(&trimmed.file, written, trimmed.max_size)?;
            }
            Ok(())
        })
        .await?;
        // The share's bytes are on disk before it appears where readers look...
        self.sync_group.sync().await?;
        blocking(move || {
            fs::create_dir_all(&final_dir).map_err(|e| Error::io(format!("create {}", final_dir.display()), e))?;
            let final_path = final_dir.join(share_num.to_string());
            fs::rename(&upload.incoming, &final_path)
                .map_err(|e| Error::io(format!("move share to {}", final_path.display()), e))
        })
        .await?;
        // ...and its name there (with any directory made for it) before the close is answered.
        self.sync_group.sync().await
    }

    async fn abort_share(&self, si: StorageIndex, share_num: ShareNum) -> Result<(), Error> {
        let upload = self.uploads().remove(&(si, share_num)).ok_or(Error::NoSuchUpload)?;
        blocking(move || match fs::remove_file(&upload.incoming) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove aborted share", e)),
        })
        .await
    }

    async fn list_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        let dir = self.share_dir(si);
        blocking(move || {
            let mut out = BTreeSet::new();
            for (num, path) in share_files(&dir)? {
                if !is_mutable_container(&path)? {
                    out.insert(num);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_share(&self, si: StorageIndex, share_num: ShareNum, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let path = self.share_dir(si).join(share_num.to_string());
        let server = self.id.nickname.clone();
        blocking(move || {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchShare),
                Err(e) => return Err(Error::io("open share", e)),
            };
            // A mutable share is no immutable share to read; nor is a truncated or corrupt file,
            // whose "data" would be garbage to the client (which finds the share elsewhere).
            let Some(container) = read_immutable_container(&file)? else {
                if !is_mutable_container(&path)? {
                    tracing::warn!(storage_index = %si, share = share_num, %server, "unreadable immutable share container");
                }
                return Err(Error::NoSuchShare);
            };
            let end = offset.saturating_add(len).min(container.data_len);
            let start = offset.min(end);
            read_range(&file, IMMUTABLE_HEADER + start, end - start).map_err(|e| Error::io("read share", e))
        })
        .await
    }

    async fn add_or_renew_lease(&self, si: StorageIndex, lease: LeaseSecrets) -> Result<(), Error> {
        let dir = self.share_dir(si);
        let node_id = self.id.node_id;
        let lock = self.mutable_lock.clone();
        let lease_locks = self.lease_locks.clone();
        blocking(move || {
            let files = share_files(&dir)?;
            if files.is_empty() {
                return Err(Error::NoSuchShare);
            }
            for path in files.values() {
                if is_mutable_container(path)? {
                    let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
                    let mut share = MutableShare::open(path)?;
                    share.add_or_renew_lease(&lease, node_id)?;
                    share.file.sync_all().map_err(|e| Error::io("fsync share", e))?;
                } else {
                    let _leases = lease_locks.lock(&si);
                    add_or_renew_immutable_lease(path, &lease)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn advise_corrupt_share(&self, si: StorageIndex, share_num: ShareNum, reason: &str) -> Result<(), Error> {
        tracing::warn!(storage_index = %si, share = share_num, server = %self.id.nickname, "share reported corrupt: {reason}");
        let dir = self.root.join("corruption-advisories");
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let report = format!("report: Share Corruption\nstorage_index: {si}\nshare_number: {share_num}\n\n{reason}\n");
        blocking(move || {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create advisories dir", e))?;
            fs::write(dir.join(format!("{stamp}-{si}-{share_num}")), report).map_err(|e| Error::io("write advisory", e))
        })
        .await
    }

    async fn mutable_read_test_write(
        &self,
        si: StorageIndex,
        write_enabler: Hash,
        lease: LeaseSecrets,
        test_and_writes: BTreeMap<ShareNum, TestAndWrite>,
        read_vector: Vec<(u64, u64)>,
    ) -> Result<ReadTestWriteResult, Error> {
        let dir = self.share_dir(si);
        let node_id = self.id.node_id;
        let lock = self.mutable_lock.clone();
        let (result, changed) = blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            read_test_write(&dir, node_id, write_enabler, lease, test_and_writes, read_vector)
        })
        .await?;
        if changed {
            // The new bytes and any share or directory made for them are durable before the
            // answer. A reader may see them before: had the node crashed then, they would be
            // gone, but this writer was never answered (Tahoe's own server syncs nothing).
            self.sync_group.sync().await?;
        }
        Ok(result)
    }

    async fn list_mutable_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, Error> {
        let dir = self.share_dir(si);
        blocking(move || {
            let mut out = BTreeSet::new();
            for (num, path) in share_files(&dir)? {
                if is_mutable_container(&path)? {
                    out.insert(num);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn read_mutable_share(
        &self,
        si: StorageIndex,
        share_num: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        let path = self.share_dir(si).join(share_num.to_string());
        let lock = self.mutable_lock.clone();
        blocking(move || {
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            if !path.exists() || !is_mutable_container(&path)? {
                return Err(Error::NoSuchShare);
            }
            MutableShare::open(&path)?.read(offset, len)
        })
        .await
    }
}

/// `len` bytes of `file` from `offset`, read into a buffer that is not zeroed first: block
/// reads are the bulk of a download, and zeroing each fresh buffer only to overwrite it cost
/// more than the read (the allocator hands large zeroed buffers back as fresh pages, each one
/// faulted in and cleared). One `pread` asks for the whole range: `Read::read_to_end` would
/// ask for 8 KiB, then twice as much each time, six system calls for a 341 KiB block.
fn read_range(file: &File, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        // Fills (part of) the spare capacity, which is at least what is still wanted.
        if rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::leases::hash_lease_secret;
    use super::*;

    pub(super) fn lease(n: u8) -> LeaseSecrets {
        LeaseSecrets {
            renew: [n; 32],
            cancel: [n + 100; 32],
        }
    }

    #[tokio::test]
    async fn immutable_share_is_invisible_until_closed_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        let si = StorageIndex([1; 16]);
        let alloc = server.allocate_buckets(si, lease(1), &[0, 1].into(), 10).await.unwrap();
        assert_eq!(alloc.allocated, [0, 1].into());
        server
            .write_share(si, 0, 0, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        server
            .write_share(si, 0, 5, Bytes::from_static(b"world"))
            .await
            .unwrap();
        assert!(matches!(
            server.write_share(si, 0, 6, Bytes::from_static(b"world")).await,
            Err(Error::OutOfBounds { .. })
        ));
        assert!(server.list_shares(si).await.unwrap().is_empty());
        server.close_share(si, 0).await.unwrap();
        server.abort_share(si, 1).await.unwrap();
        assert_eq!(server.list_shares(si).await.unwrap(), [0].into());
        assert_eq!(server.read_share(si, 0, 3, 100).await.unwrap(), b"loworld");
        assert!(matches!(server.read_share(si, 1, 0, 1).await, Err(Error::NoSuchShare)));
        // Tahoe's container: v2 header, one lease after the data.
        let raw = fs::read(server.share_dir(si).join("0")).unwrap();
        assert_eq!(&raw[..12], &[0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0, 1]);
        assert_eq!(raw.len(), 12 + 10 + 72);
        assert_eq!(&raw[12 + 10 + 4..12 + 10 + 36], &hash_lease_secret(&[1; 32]));
        server.add_or_renew_lease(si, lease(2)).await.unwrap();
        server.add_or_renew_lease(si, lease(1)).await.unwrap();
        let raw = fs::read(server.share_dir(si).join("0")).unwrap();
        assert_eq!(raw.len(), 12 + 10 + 2 * 72);
        drop(server);
        let reopened = DiskServer::open(dir.path(), "s0").unwrap();
        assert_eq!(reopened.read_share(si, 0, 0, 10).await.unwrap(), b"helloworld");
        let again = reopened
            .allocate_buckets(si, lease(1), &[0, 1].into(), 10)
            .await
            .unwrap();
        assert_eq!(again.already_have, [0].into());
        assert_eq!(again.allocated, [1].into());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lease_renewals_of_an_immutable_share_all_keep_their_lease() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(DiskServer::open(dir.path(), "s0").unwrap());
        let si = StorageIndex([12; 16]);
        server.allocate_buckets(si, lease(0), &[0].into(), 4).await.unwrap();
        server.write_share(si, 0, 0, Bytes::from_static(b"data")).await.unwrap();
        server.close_share(si, 0).await.unwrap();
        let renewals: Vec<_> = (1..=40)
            .map(|n| {
                let server = server.clone();
                tokio::spawn(async move {
                    if n % 2 == 0 {
                        server.add_or_renew_lease(si, lease(n)).await.unwrap();
                    } else {
                        // An uploader finding the share complete adds its lease the same way.
                        let allocation = server.allocate_buckets(si, lease(n), &[0].into(), 4).await.unwrap();
                        assert_eq!(allocation.already_have, [0].into());
                    }
                })
            })
            .collect();
        for renewal in renewals {
            renewal.await.unwrap();
        }
        let (_, expirations) = share_lease_expirations(&server.share_dir(si).join("0")).unwrap();
        assert_eq!(expirations.len(), 41);
        assert_eq!(server.read_share(si, 0, 0, 100).await.unwrap(), b"data");
    }
}
