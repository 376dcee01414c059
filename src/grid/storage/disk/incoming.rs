//! Uploads in progress: the claim files under `shares/incoming/`, their containers started and
//! trimmed, and the leftovers cleared when a server opens.
//!
//! A claim is one file, `shares/incoming/<SI>.<share number>`, not Tahoe's
//! `incoming/<prefix>/<SI>/<share number>`: making and removing two directories per share cost
//! a small file's upload more than its fsyncs did (measured, issue 18), and nothing but this
//! server reads what is in progress. Leftovers in Tahoe's nested layout are cleared too.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use super::immutable_share::new_lease;
use crate::grid::storage::immutable_container::{self, HEADER_SIZE, Header, MAX_SIZE_AT};
use crate::grid::storage::{Error, LeaseSecrets, ShareNum};
use crate::grid::uri::StorageIndex;

/// An immutable share being uploaded: its claim file and how far it was written.
#[derive(Debug)]
pub(super) struct Upload {
    pub(super) file: File,
    pub(super) incoming: PathBuf,
    pub(super) max_size: u64,
    /// The end of the furthest write: a share allocated larger than it turned out is trimmed to it.
    pub(super) written_end: AtomicU64,
}

/// Locks a just-created incoming file for as long as the upload holds it, so that a server
/// opening the same directory (another process on a local grid) leaves it alone; `None` if such
/// a server took it for a leftover and removed it before the lock was taken.
fn lock_claim(file: File, path: &Path) -> Option<File> {
    use std::os::unix::fs::MetadataExt as _;
    file.try_lock().ok()?;
    let ours = file.metadata().ok()?;
    let named = fs::metadata(path).ok()?;
    (ours.dev() == named.dev() && ours.ino() == named.ino()).then_some(file)
}

/// Where the claim on share `num` of `si` lives under `incoming`.
pub(super) fn incoming_path(incoming: &Path, si: StorageIndex, num: ShareNum) -> PathBuf {
    incoming.join(format!("{si}.{num}"))
}

/// Removes the partial uploads in `shares/incoming/`, as Tahoe's storage server does when it
/// starts: nobody can finish them, and each file is a claim that keeps its share from being
/// allocated again. Files another open server is still uploading (locked) are kept.
pub(super) fn clear_incoming(incoming: &Path) -> Result<(), Error> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>, Error> {
        match fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::io(format!("list {}", dir.display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(format!("list {}", dir.display()), e)),
        }
    };
    let clear_unlocked = |path: &Path| -> Result<(), Error> {
        let Ok(file) = File::open(path) else {
            return Ok(());
        };
        // Held while removing, so an upload cannot lock the file in between.
        if file.try_lock().is_ok() {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
            }
        }
        Ok(())
    };
    for entry in list(incoming)? {
        if !entry.is_dir() {
            clear_unlocked(&entry)?;
            continue;
        }
        // Tahoe's layout, `<prefix>/<SI>/<num>`, as earlier versions of this server wrote it.
        for si_dir in list(&entry)? {
            for path in list(&si_dir)? {
                clear_unlocked(&path)?;
            }
            // Fails, harmlessly, while another server's upload is still in it.
            let _ = fs::remove_dir(&si_dir);
        }
        let _ = fs::remove_dir(&entry);
    }
    Ok(())
}

/// Creates an upload's file in `shares/incoming/` exclusively: the file is the claim on the
/// share, so of two allocations racing for it exactly one gets it (`None` for the other).
pub(super) fn claim_incoming(path: &Path) -> Result<Option<File>, Error> {
    match OpenOptions::new().read(true).write(true).create_new(true).open(path) {
        Ok(file) => Ok(lock_claim(file, path)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(Error::io(format!("create {}", path.display()), e)),
    }
}

/// Writes a new immutable container's header and its uploader's lease (owner 0, as Tahoe's).
pub(super) fn start_container(file: &File, allocated_size: u64, lease: &LeaseSecrets) -> Result<(), Error> {
    file.write_all_at(&Header::new(allocated_size).encode(), 0)
        .map_err(|e| Error::io("write share header", e))?;
    let record = new_lease(immutable_container::VERSION, 0, lease);
    file.write_all_at(&record, HEADER_SIZE + allocated_size)
        .map_err(|e| Error::io("write lease", e))
}

/// Shrinks an immutable container allocated for `allocated` data bytes to the `written` it holds:
/// the lease records move up behind the data (readers find them from the file size, as Tahoe's do).
pub(super) fn trim_container(file: &File, written: u64, allocated: u64) -> Result<(), Error> {
    let len = file.metadata().map_err(|e| Error::io("stat share", e))?.len();
    let leases = len.saturating_sub(HEADER_SIZE + allocated);
    let mut records = vec![0u8; leases as usize];
    file.read_exact_at(&mut records, HEADER_SIZE + allocated)
        .map_err(|e| Error::io("read leases", e))?;
    file.write_all_at(&records, HEADER_SIZE + written)
        .map_err(|e| Error::io("move leases", e))?;
    file.set_len(HEADER_SIZE + written + leases)
        .map_err(|e| Error::io("trim share", e))?;
    file.write_all_at(&u32::try_from(written).unwrap_or(u32::MAX).to_be_bytes(), MAX_SIZE_AT)
        .map_err(|e| Error::io("write share header", e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::grid::storage::StorageServer;
    use crate::grid::storage::disk::DiskServer;
    use crate::grid::storage::disk::tests::lease;
    use crate::grid::uri::StorageIndex;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_allocations_of_a_share_exactly_one_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let server = Arc::new(DiskServer::open(dir.path(), "s0").unwrap());
        for round in 0..5u8 {
            let si = StorageIndex([20 + round; 16]);
            let attempts: Vec<_> = (1..=16)
                .map(|n| {
                    let server = server.clone();
                    tokio::spawn(async move { server.allocate_buckets(si, lease(n), &[0, 1].into(), 8).await })
                })
                .collect();
            let mut winners = [0; 2];
            for attempt in attempts {
                let allocation = attempt.await.unwrap().unwrap();
                assert!(allocation.already_have.is_empty());
                for n in allocation.allocated {
                    winners[usize::from(n)] += 1;
                }
            }
            assert_eq!(winners, [1, 1], "round {round}");
            // The one claim is a working upload.
            server
                .write_share(si, 0, 0, Bytes::from_static(b"12345678"))
                .await
                .unwrap();
            server.close_share(si, 0).await.unwrap();
            assert_eq!(server.read_share(si, 0, 0, 8).await.unwrap(), b"12345678");
        }
    }

    #[tokio::test]
    async fn partial_uploads_are_cleared_when_the_store_opens_and_their_shares_can_be_allocated_again() {
        let dir = tempfile::tempdir().unwrap();
        let si = StorageIndex([30; 16]);
        let server = DiskServer::open(dir.path(), "s0").unwrap();
        assert_eq!(
            server
                .allocate_buckets(si, lease(1), &[0].into(), 10)
                .await
                .unwrap()
                .allocated,
            [0].into()
        );
        server.write_share(si, 0, 0, Bytes::from_static(b"part")).await.unwrap();
        let incoming_dir = dir.path().join("shares").join("incoming");
        let incoming = super::incoming_path(&incoming_dir, si, 0);
        // A leftover in Tahoe's nested layout, as earlier versions wrote them.
        let nested = incoming_dir.join("ab").join("abcdefgh");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("3"), b"partial").unwrap();
        drop(server);
        // As after a crash: the partial share is still there.
        assert!(incoming.exists());
        let reopened = DiskServer::open(dir.path(), "s0").unwrap();
        assert!(!incoming.exists());
        assert!(
            !incoming_dir.join("ab").exists(),
            "nested leftovers and their directories go too"
        );
        assert!(incoming_dir.is_dir());
        let again = reopened.allocate_buckets(si, lease(1), &[0].into(), 10).await.unwrap();
        assert_eq!(again.allocated, [0].into());
        assert!(reopened.list_shares(si).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn opening_a_store_another_server_is_uploading_to_keeps_its_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let si = StorageIndex([31; 16]);
        let first = DiskServer::open(dir.path(), "s0").unwrap();
        first.allocate_buckets(si, lease(1), &[0].into(), 4).await.unwrap();
        first.write_share(si, 0, 0, Bytes::from_static(b"ab")).await.unwrap();
        let second = DiskServer::open(dir.path(), "s0").unwrap();
        let claimed = second.allocate_buckets(si, lease(2), &[0].into(), 4).await.unwrap();
        assert!(claimed.allocated.is_empty(), "the share is still being uploaded");
        first.write_share(si, 0, 2, Bytes::from_static(b"cd")).await.unwrap();
        first.close_share(si, 0).await.unwrap();
        assert_eq!(second.read_share(si, 0, 0, 4).await.unwrap(), b"abcd");
    }
}
