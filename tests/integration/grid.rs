//! Round trips through real on-disk servers: lost shares, corrupted bytes, too few shares, unhappy uploads.

use std::collections::BTreeSet;
use std::sync::Arc;

use lafs_gateway::grid::immutable::layout::ShareLayout;
use lafs_gateway::grid::storage::{Error as StorageError, LeaseSecrets, ShareNum, StorageServer};
use lafs_gateway::grid::uri::StorageIndex;
use lafs_gateway::grid::uri::{Cap, ChkCap};
use lafs_gateway::grid::{ClientSecrets, Grid};
use lafs_gateway::grid::{Error, immutable::check::ShareHealth};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::common::{TestGrid, params, pseudo_random, runtime, walk};

const MIB: usize = 1024 * 1024;

fn chk(cap: &Cap) -> ChkCap {
    match cap {
        Cap::Chk(c) => c.clone(),
        other => panic!("expected a CHK cap, got {other:?}"),
    }
}

/// Byte ranges of a share file that readers depend on: flipping any byte there must be caught.
fn checked_ranges(share_file: &[u8]) -> Vec<std::ops::Range<usize>> {
    let leases = u32::from_be_bytes(share_file[8..12].try_into().unwrap()) as usize;
    let data = &share_file[12..share_file.len() - 72 * leases];
    let layout = ShareLayout::decode_header(data).unwrap();
    let at = |x: u64| 12 + x as usize;
    // Readers ignore the block-size, data-size and plaintext-tree fields (as Tahoe's do).
    let (data_field, crypttext_field) = if layout.version == 1 {
        (0x0c, 0x14)
    } else {
        (0x14, 0x24)
    };
    vec![
        at(0)..at(4),
        at(data_field)..at(data_field + if layout.version == 1 { 4 } else { 8 }),
        at(crypttext_field)..at(layout.plaintext_hash_tree),
        at(layout.crypttext_hash_tree)..12 + data.len(),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    needed: usize,
    total: usize,
    size: usize,
    seed: u64,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..=255)
        .prop_flat_map(|total| (1..=total, Just(total)))
        .prop_flat_map(|(needed, total)| {
            // Keep each case's share bytes (size * N / k) under 192 MiB.
            let max_size = (8 * MIB).min(192 * MIB * needed / total);
            (Just(needed), Just(total), 0..=max_size, any::<u64>())
        })
        .prop_map(|(needed, total, size, seed)| Case {
            needed,
            total,
            size,
            seed,
        })
}

async fn run_case(case: Case) -> Result<(), TestCaseError> {
    let Case {
        needed,
        total,
        size,
        seed,
    } = case;
    let test = TestGrid::new(7, params(needed, 1, total, 128 * 1024), b"prop");
    let data = pseudo_random(size, seed);
    let cap = test.grid.upload_bytes(data.clone()).await.unwrap();
    if size <= 55 {
        prop_assert!(matches!(cap, Cap::Literal(ref l) if l.data == data));
        return Ok(());
    }
    let cap = chk(&cap);
    let si = cap.storage_index().to_string();
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    prop_assert!(reader.read_range(0, u64::MAX).await.unwrap() == data, "round trip");

    // Flip one byte that matters in one share.
    let mut files = test.share_files(&si);
    prop_assert_eq!(files.len(), total);
    let victim = (seed as usize) % total;
    let mut raw = std::fs::read(&files[victim].1).unwrap();
    let ranges = checked_ranges(&raw);
    let span: usize = ranges.iter().map(|r| r.len()).sum();
    let mut pick = (seed >> 8) as usize % span;
    let pos = ranges
        .iter()
        .find_map(|r| {
            if pick < r.len() {
                Some(r.start + pick)
            } else {
                pick -= r.len();
                None
            }
        })
        .unwrap();
    raw[pos] ^= 1 << (seed % 8);
    std::fs::write(&files[victim].1, &raw).unwrap();

    let report = test.grid.check(&cap, true).await.unwrap();
    let bad: Vec<u16> = report
        .shares
        .iter()
        .filter(|s| s.health != ShareHealth::Good)
        .map(|s| s.share)
        .collect();
    if total > needed {
        prop_assert_eq!(
            bad,
            vec![files[victim].0],
            "only the flipped share (byte {}) is reported",
            pos
        );
        let mut reader = test.grid.open_file(&cap).await.unwrap();
        prop_assert!(
            reader.read_range(0, u64::MAX).await.unwrap() == data,
            "read around a corrupt share"
        );
    } else {
        let result = match test.grid.open_file(&cap).await {
            Ok(mut reader) => reader.read_range(0, u64::MAX).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Err(Error::NotEnoughShares { needed: n, found }) => {
                prop_assert_eq!(n, needed);
                prop_assert_eq!(found, needed - 1);
            }
            other => prop_assert!(false, "corrupt share with k = N must fail, got {:?}", other.err()),
        }
    }

    // Delete N-k shares, the corrupt one first: the file still reads.
    let corrupt = files.remove(victim);
    std::fs::remove_file(&corrupt.1).unwrap();
    let extra = total - needed;
    for i in 0..extra.saturating_sub(1) {
        let idx = (seed as usize).wrapping_add(i * 7) % files.len();
        std::fs::remove_file(&files.remove(idx).1).unwrap();
    }
    if extra > 0 {
        let mut reader = test.grid.open_file(&cap).await.unwrap();
        prop_assert!(
            reader.read_range(0, u64::MAX).await.unwrap() == data,
            "read with exactly k shares"
        );
        // One more loss and the error says how many were needed and found.
        std::fs::remove_file(&files.remove(0).1).unwrap();
    }
    let err = match test.grid.open_file(&cap).await {
        Ok(mut reader) => reader.read_range(0, u64::MAX).await.unwrap_err(),
        Err(e) => e,
    };
    prop_assert!(
        matches!(err, Error::NotEnoughShares { needed: n, found } if n == needed && found == needed - 1),
        "{}",
        err
    );
    prop_assert_eq!(
        err.to_string(),
        format!("not enough shares: {} needed, {} found", needed, needed - 1)
    );
    Ok(())
}

#[test]
fn random_files_survive_loss_and_corruption_of_any_shares() {
    let rt = runtime();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case_strategy(), |case| rt.block_on(run_case(case)))
        .unwrap();
}

#[test]
fn edge_parameters_round_trip() {
    let rt = runtime();
    for case in [
        Case {
            needed: 1,
            total: 1,
            size: 56,
            seed: 1,
        },
        Case {
            needed: 255,
            total: 255,
            size: 3 * MIB + 17,
            seed: 2,
        },
        Case {
            needed: 1,
            total: 255,
            size: 300_000,
            seed: 3,
        },
        Case {
            needed: 3,
            total: 10,
            size: 8 * MIB,
            seed: 4,
        },
        Case {
            needed: 3,
            total: 10,
            size: 131_072 * 3,
            seed: 5,
        },
    ] {
        rt.block_on(run_case(case.clone()))
            .unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_encoding_spreads_ten_shares_over_ten_servers_and_reads_ranges() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let data = pseudo_random(5 * MIB + 3, 9);
    let cap = chk(&test.grid.upload_bytes(data.clone()).await.unwrap());
    let files = test.share_files(&cap.storage_index().to_string());
    let servers: std::collections::BTreeSet<_> = files
        .iter()
        .map(|(_, p)| p.ancestors().nth(4).unwrap().to_path_buf())
        .collect();
    assert_eq!((files.len(), servers.len()), (10, 10));
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    for (offset, len) in [
        (0, 1),
        (MIB as u64 - 1, 2),
        (3 * MIB as u64 + 5, 100_000),
        (5 * MIB as u64, 10),
    ] {
        let got = reader.read_range(offset, len).await.unwrap();
        let end = (offset + len).min(data.len() as u64) as usize;
        assert_eq!(got, data[offset as usize..end], "range {offset}+{len}");
    }
    // Uploading the same bytes again converges on the same cap and writes nothing new.
    let again = chk(&test.grid.upload_bytes(data).await.unwrap());
    assert_eq!(again, cap);
    assert_eq!(test.share_files(&cap.storage_index().to_string()).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhappy_upload_fails_clearly_and_leaves_no_shares() {
    let test = TestGrid::new(3, params(3, 7, 10, 1 << 20), b"conv");
    let err = test.grid.upload_bytes(pseudo_random(100_000, 1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::HappinessNotMet {
                happy: 7,
                achieved: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("7 needed"), "{err}");
    let leftovers: Vec<_> = walk(test.dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/shares/") && p.is_file())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_servers_are_skipped_while_happiness_holds() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    // Break two servers: their share directory becomes a plain file.
    for name in ["server-03", "server-07"] {
        let shares = test.dir.path().join(name).join("shares");
        std::fs::remove_dir_all(&shares).unwrap();
        std::fs::write(&shares, b"not a directory").unwrap();
    }
    let data = pseudo_random(2 * MIB, 5);
    let cap = chk(&test.grid.upload_bytes(data.clone()).await.unwrap());
    let files = test.share_files(&cap.storage_index().to_string());
    assert_eq!(files.len(), 10, "all ten shares placed on the eight good servers");
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    assert_eq!(reader.read_range(0, u64::MAX).await.unwrap(), data);
    // With four broken, only six servers remain: happiness 7 cannot be met.
    for name in ["server-01", "server-05"] {
        let shares = test.dir.path().join(name).join("shares");
        std::fs::remove_dir_all(&shares).unwrap();
        std::fs::write(&shares, b"not a directory").unwrap();
    }
    let err = test.grid.upload_bytes(pseudo_random(2 * MIB, 6)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::HappinessNotMet {
                happy: 7,
                achieved: 6,
                ..
            }
        ),
        "{err}"
    );
}

/// A real disk server that starts failing every write after a number of them (a disk dying
/// mid-upload), and whose share listings can be made slow (a distant server) to see which reads
/// a download sends before any listing has answered.
#[derive(Debug)]
struct FailingWrites {
    inner: lafs_gateway::grid::storage::disk::DiskServer,
    writes_before_failure: std::sync::atomic::AtomicI64,
    reads: Arc<ReadOrder>,
}

/// Shared by a grid's wrapped servers: how reads and listings interleaved.
#[derive(Debug, Default)]
struct ReadOrder {
    listings_answered: std::sync::atomic::AtomicUsize,
    reads_before_listings: std::sync::atomic::AtomicUsize,
    reads_after_listings: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl StorageServer for FailingWrites {
    fn id(&self) -> &lafs_gateway::grid::storage::ServerId {
        self.inner.id()
    }
    async fn version(&self) -> Result<lafs_gateway::grid::storage::ServerVersion, StorageError> {
        self.inner.version().await
    }
    async fn allocate_buckets(
        &self,
        si: StorageIndex,
        lease: LeaseSecrets,
        shares: &BTreeSet<ShareNum>,
        size: u64,
    ) -> Result<lafs_gateway::grid::storage::Allocation, StorageError> {
        self.inner.allocate_buckets(si, lease, shares, size).await
    }
    async fn write_share(
        &self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        data: bytes::Bytes,
    ) -> Result<(), StorageError> {
        if self
            .writes_before_failure
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            <= 0
        {
            return Err(StorageError::io(
                "write share",
                std::io::Error::other("injected disk failure"),
            ));
        }
        self.inner.write_share(si, share, offset, data).await
    }
    async fn close_share(&self, si: StorageIndex, share: ShareNum) -> Result<(), StorageError> {
        self.inner.close_share(si, share).await
    }
    async fn abort_share(&self, si: StorageIndex, share: ShareNum) -> Result<(), StorageError> {
        self.inner.abort_share(si, share).await
    }
    async fn list_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, StorageError> {
        use std::sync::atomic::Ordering::SeqCst;
        let listing = self.inner.list_shares(si).await;
        self.reads.listings_answered.fetch_add(1, SeqCst);
        listing
    }
    async fn read_share(
        &self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StorageError> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.reads.listings_answered.load(SeqCst) == 0 {
            self.reads.reads_before_listings.fetch_add(1, SeqCst);
        } else {
            self.reads.reads_after_listings.fetch_add(1, SeqCst);
        }
        self.inner.read_share(si, share, offset, len).await
    }
    async fn add_or_renew_lease(&self, si: StorageIndex, lease: LeaseSecrets) -> Result<(), StorageError> {
        self.inner.add_or_renew_lease(si, lease).await
    }
    async fn advise_corrupt_share(&self, si: StorageIndex, share: ShareNum, reason: &str) -> Result<(), StorageError> {
        self.inner.advise_corrupt_share(si, share, reason).await
    }
    async fn mutable_read_test_write(
        &self,
        si: StorageIndex,
        write_enabler: [u8; 32],
        lease: LeaseSecrets,
        test_and_writes: std::collections::BTreeMap<ShareNum, lafs_gateway::grid::storage::TestAndWrite>,
        read_vector: Vec<(u64, u64)>,
    ) -> Result<lafs_gateway::grid::storage::ReadTestWriteResult, StorageError> {
        self.inner
            .mutable_read_test_write(si, write_enabler, lease, test_and_writes, read_vector)
            .await
    }
    async fn list_mutable_shares(&self, si: StorageIndex) -> Result<BTreeSet<ShareNum>, StorageError> {
        self.inner.list_mutable_shares(si).await
    }
    async fn read_mutable_share(
        &self,
        si: StorageIndex,
        share: ShareNum,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StorageError> {
        self.inner.read_mutable_share(si, share, offset, len).await
    }
}

/// Ten disk servers, of which those in `failing` die after three writes (header and two blocks).
fn grid_with_failing_servers(dir: &std::path::Path, failing: &[usize]) -> Grid {
    wrapped_grid(dir, 10, failing, &Arc::default())
}

/// `count` wrapped disk servers sharing `reads`; those in `failing` die after three writes.
fn wrapped_grid(dir: &std::path::Path, count: usize, failing: &[usize], reads: &Arc<ReadOrder>) -> Grid {
    let servers = (0..count)
        .map(|i| {
            let name = format!("server-{i:02}");
            let inner = lafs_gateway::grid::storage::disk::DiskServer::open(dir.join(&name), name).unwrap();
            let budget = if failing.contains(&i) { 3 } else { i64::MAX };
            Arc::new(FailingWrites {
                inner,
                writes_before_failure: budget.into(),
                reads: reads.clone(),
            }) as Arc<dyn StorageServer>
        })
        .collect();
    let secrets = ClientSecrets {
        convergence: b"conv".to_vec(),
        lease: b"lease".to_vec(),
    };
    Grid::new(servers, params(3, count.min(7), 10, 128 * 1024), secrets)
}

fn files_under(dir: &std::path::Path, part: &str) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file() && p.to_string_lossy().contains(part))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_dying_mid_upload_have_their_shares_placed_elsewhere_while_happy() {
    let dir = crate::common::scratch_dir();
    let grid = grid_with_failing_servers(dir.path(), &[2, 6]);
    let data = pseudo_random(MIB + 12345, 77);
    let cap = chk(&grid.upload_bytes(data.clone()).await.unwrap());
    let si = cap.storage_index().to_string();
    let shares: Vec<_> = files_under(dir.path(), &format!("/{si}/"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("incoming"))
        .collect();
    assert_eq!(
        shares.len(),
        10,
        "the two failed servers' shares went to other servers: {shares:?}"
    );
    let numbers: BTreeSet<String> = shares
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(numbers.len(), 10, "all ten share numbers: {numbers:?}");
    assert!(
        files_under(dir.path(), "incoming").is_empty(),
        "aborted shares were removed"
    );
    for failed in ["server-02", "server-06"] {
        assert!(files_under(&dir.path().join(failed), &si).is_empty());
    }
    let mut reader = grid.open_file(&cap).await.unwrap();
    assert_eq!(reader.read_range(0, u64::MAX).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_servers_dying_mid_upload_fails_and_leaves_nothing() {
    let dir = crate::common::scratch_dir();
    let grid = grid_with_failing_servers(dir.path(), &[0, 3, 5, 8]);
    let err = grid.upload_bytes(pseudo_random(MIB + 12345, 78)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::HappinessNotMet {
                happy: 7,
                achieved: 6,
                ..
            }
        ),
        "{err}"
    );
    let left: Vec<_> = files_under(dir.path(), "/shares/");
    assert!(left.is_empty(), "a failed put leaves no share behind: {left:?}");
}

/// Feeds a streamed upload in uneven pieces, like protocol writes arrive.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    fail_after: Option<usize>,
}

impl std::io::Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fail_after.is_some_and(|limit| self.at >= limit) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "client went away",
            ));
        }
        let n = buf.len().min(self.data.len() - self.at).min(32_768 + self.at % 7);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_of_unknown_size_read_back_and_their_shares_are_trimmed() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let segment = 1_048_578; // 1 MiB rounded up to a multiple of k
    for size in [segment + 1, 3 * segment, 5 * segment + segment / 2] {
        let data = pseudo_random(size, size as u64);
        let source = Pieces {
            data: data.clone(),
            at: 0,
            fail_after: None,
        };
        let cap = chk(&test.grid.upload_stream(source).await.unwrap());
        assert_eq!(cap.size, size as u64);
        let mut reader = test.grid.open_file(&cap).await.unwrap();
        assert!(reader.read_range(0, size as u64).await.unwrap() == data, "size {size}");
        assert!(reader.verify_all().await.iter().all(|(_, health)| health.is_ok()));
        // Each share was allocated for the servers' free space and trimmed back on close:
        // container header + the v2 share + one lease, nothing more.
        let shape = lafs_gateway::grid::immutable::layout::FileShape::new(size as u64, 3, 10, 1 << 20);
        let layout = ShareLayout::with_version(&shape, 2);
        let ueb_len = reader.ueb().pack().len() as u64;
        let files = test.share_files(&cap.storage_index().to_string());
        assert_eq!(files.len(), 10);
        for (_, path) in files {
            let len = std::fs::metadata(&path).unwrap().len();
            assert_eq!(len, 12 + layout.share_size(ueb_len) + 72, "{}", path.display());
        }
    }
    // A stream that fails part-way stores nothing and leaves nothing in incoming/.
    let broken = Pieces {
        data: pseudo_random(4 * segment, 1),
        at: 0,
        fail_after: Some(2 * segment + 5),
    };
    let before = walk(test.dir.path()).iter().filter(|p| p.is_file()).count();
    assert!(test.grid.upload_stream(broken).await.is_err());
    assert!(files_under(test.dir.path(), "incoming").is_empty());
    assert_eq!(walk(test.dir.path()).iter().filter(|p| p.is_file()).count(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_repair_recreates_lost_and_corrupt_shares_on_other_servers() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    // Past the repair's 8 MiB spool chunk, so the spool is written more than once.
    let data = pseudo_random(9 * MIB + 5, 31);
    let cap = chk(&test.grid.upload_bytes(data.clone()).await.unwrap());
    let si = cap.storage_index().to_string();
    let server_of = |path: &std::path::Path| path.ancestors().nth(4).unwrap().to_path_buf();
    let original = test.share_files(&si);
    assert_eq!(original.len(), 10);
    // Shares 0-2 are lost; a byte in the middle of the blocks of shares 3 and 4 is flipped.
    let mut corrupt_on = std::collections::BTreeMap::new();
    for (share, path) in &original {
        match share {
            0..=2 => std::fs::remove_file(path).unwrap(),
            3 | 4 => {
                let mut bytes = std::fs::read(path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                std::fs::write(path, bytes).unwrap();
                corrupt_on.insert(*share, server_of(path));
            }
            _ => {}
        }
    }
    // Without verify, the corrupt shares' headers still match: they pass as present.
    let quick = test.grid.check(&cap, false).await.unwrap();
    assert_eq!(quick.good_shares(), 7);

    let scratch = test.dir.path().join("scratch");
    let report = test.grid.repair(&cap, &scratch, true).await.unwrap();
    assert!(report.repaired);
    assert_eq!(report.before.good_shares(), 5, "{:?}", report.before);
    let bad: BTreeSet<ShareNum> = report
        .before
        .shares
        .iter()
        .filter(|s| s.health != ShareHealth::Good)
        .map(|s| s.share)
        .collect();
    assert_eq!(bad, [3, 4].into());
    assert!(report.after.verified && report.after.is_healthy(), "{:?}", report.after);
    assert_eq!(report.after.good_shares(), 10);
    // The new copies of shares 3 and 4 went to servers other than the corrupt ones.
    let now = test.share_files(&si);
    for (share, corrupt_server) in &corrupt_on {
        let holders: Vec<_> = now
            .iter()
            .filter(|(s, _)| s == share)
            .map(|(_, p)| server_of(p))
            .collect();
        assert_eq!(holders.len(), 2, "share {share}: {holders:?}");
        assert!(
            holders.iter().any(|h| h != corrupt_server),
            "share {share}: {holders:?}"
        );
    }
    // The re-created shares alone (the survivors and corrupt copies removed) give the file back.
    let survivors: BTreeSet<_> = original
        .iter()
        .filter(|(s, _)| *s >= 3)
        .map(|(_, p)| p.clone())
        .collect();
    for (_, path) in &now {
        if survivors.contains(path) {
            std::fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(test.share_files(&si).len(), 5);
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    assert_eq!(reader.read_range(0, u64::MAX).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_with_nowhere_to_put_a_corrupt_share_says_so() {
    // One server holds both shares; the only home for share 1 is the server whose copy is bad.
    let test = TestGrid::new(1, params(1, 1, 2, 1 << 20), b"conv");
    let data = pseudo_random(300_000, 8);
    let cap = chk(&test.grid.upload_bytes(data.clone()).await.unwrap());
    let files = test.share_files(&cap.storage_index().to_string());
    let (_, share_1) = files.iter().find(|(s, _)| *s == 1).unwrap();
    let mut bytes = std::fs::read(share_1).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(share_1, bytes).unwrap();
    let report = test
        .grid
        .repair(&cap, &test.dir.path().join("scratch"), true)
        .await
        .unwrap();
    assert!(!report.repaired, "{report:?}");
    assert_eq!((report.before.good_shares(), report.after.good_shares()), (1, 1));
    assert!(!report.after.is_healthy() && report.after.is_recoverable());
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    assert_eq!(reader.read_range(0, u64::MAX).await.unwrap(), data);
}

/// The same file uploaded by several clients at once (the same convergent storage index): each
/// upload gets the cap, none is refused because another one is writing the shares right then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_file_uploaded_at_once_by_many_clients_is_stored_once_and_every_upload_succeeds() {
    let test = TestGrid::new(10, params(3, 7, 10, 1 << 20), b"conv");
    let data = pseudo_random(3 * MIB + 5, 61);
    let uploads = (0..8).map(|_| {
        let grid = test.grid.clone();
        let data = data.clone();
        tokio::spawn(async move { grid.upload_bytes(data).await })
    });
    let caps: Vec<_> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("every upload succeeds"))
        .collect();
    assert!(caps.windows(2).all(|pair| pair[0] == pair[1]), "{caps:?}");
    let cap = chk(&caps[0]);
    assert_eq!(test.share_files(&cap.storage_index().to_string()).len(), 10);
    let mut reader = test.grid.open_file(&cap).await.unwrap();
    assert_eq!(reader.read_range(0, u64::MAX).await.unwrap(), data);
}

/// A small file's shares are read on a guess of where they are, without asking the servers what
/// they hold (k requests in all, not a listing from every server first); when a guessed share
/// is corrupt or gone, the servers are asked and the others they name are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_files_are_read_on_a_guess_without_listing_the_servers() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = crate::common::scratch_dir();
    let reads = Arc::new(ReadOrder::default());
    let grid = wrapped_grid(dir.path(), 5, &[], &reads);
    let data = pseudo_random(4096, 31);
    let cap = chk(&grid.upload_bytes(data.clone()).await.unwrap());
    let read_back = |grid: Grid, cap: ChkCap| async move {
        let mut reader = grid.open_file(&cap).await.unwrap();
        reader.read_range(0, u64::MAX).await.unwrap()
    };
    let reset = || {
        for counter in [
            &reads.listings_answered,
            &reads.reads_before_listings,
            &reads.reads_after_listings,
        ] {
            counter.store(0, SeqCst);
        }
    };
    let shares_of_file = || {
        let si = cap.storage_index().to_string();
        files_under(dir.path(), &si)
            .into_iter()
            // Share files are named by their number (a corruption advisory names the file too).
            .filter_map(|path| Some((path.file_name()?.to_str()?.parse::<u16>().ok()?, path)))
            .collect::<Vec<_>>()
    };
    reset();
    assert!(read_back(grid.clone(), cap.clone()).await == data);
    assert_eq!(reads.reads_before_listings.load(SeqCst), 3, "k reads, one per share");
    assert_eq!(
        reads.listings_answered.load(SeqCst),
        0,
        "no server was asked what it holds"
    );
    // A corrupt block in a guessed share: the servers are asked, another share is read instead.
    let (_, share1) = shares_of_file().into_iter().find(|(share, _)| *share == 1).unwrap();
    let mut bytes = std::fs::read(&share1).unwrap();
    // The container header (12 bytes) and the share's v1 header (0x24) come before the block.
    bytes[12 + 0x24 + 100] ^= 0x55;
    std::fs::write(&share1, &bytes).unwrap();
    reset();
    assert!(read_back(grid.clone(), cap.clone()).await == data);
    assert_eq!(
        reads.listings_answered.load(SeqCst),
        5,
        "the servers were asked once the guess failed"
    );
    assert!(
        reads.reads_after_listings.load(SeqCst) >= 1,
        "then a listed share was read"
    );
    // Without the guessed shares (0, 1 and 2), the listings name the others and those are read.
    let mut removed = 0;
    for (share, path) in shares_of_file() {
        if share < 3 {
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 3);
    reset();
    assert!(read_back(grid.clone(), cap.clone()).await == data);
    assert_eq!(
        reads.reads_before_listings.load(SeqCst),
        3,
        "the guesses were still tried"
    );
    assert!(
        reads.reads_after_listings.load(SeqCst) >= 3,
        "then the listed shares were read"
    );
}
