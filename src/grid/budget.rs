//! The node-wide budget for file data in flight: bytes a transfer must hold before it buffers, encodes or reads ahead, so load waits instead of growing memory.
//!
//! One budget is shared by every clone of a [`crate::grid::Grid`]: a client's
//! buffered writes, the segments an upload is encrypting, encoding and sending,
//! and the segments a download has fetched and decoded ahead of its reader all
//! hold permits from it, and give them back when the bytes are gone (a
//! [`BudgetPermit`] releases on drop). When it is spent, uploads and downloads
//! wait for permits, so their clients wait on TCP flow control instead of the
//! node growing.
//!
//! Deadlock freedom rests on one rule, kept by every caller: a transfer *waits*
//! for permits only while the permits it already holds belong to work that
//! finishes without any more (segments being encoded or written, pieces a reader
//! consumes); anything else uses [`MemoryBudget::try_acquire`] and, when that
//! fails, falls back to a path that needs no memory (the encrypted spool) or
//! does without (no read-ahead).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget when the config does not set one: 64 MiB, about fifteen segments of 1 MiB
/// being encoded 3-of-10 at once, more than two cores keep busy (100 concurrent sessions
/// move data as fast with it as with 128 MiB: BENCHMARKS.md, issue 16).
pub const DEFAULT_BYTES: u64 = 64 << 20;

/// The smallest budget accepted: one default segment encoded 3-of-10, with room to spare.
pub const MIN_BYTES: u64 = 8 << 20;

/// A shared pool of bytes (cloning shares it).
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
    /// Requests that found too little free and waited (for tests and benchmarks).
    waits: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryBudget({} of {} bytes in use)", self.in_use(), self.total)
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::new(DEFAULT_BYTES)
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (at most what a semaphore can count).
    pub fn new(bytes: u64) -> MemoryBudget {
        let total = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
            waits: Arc::default(),
        }
    }

    /// Its size in bytes.
    pub fn total(&self) -> u64 {
        self.total as u64
    }

    /// Bytes held by permits right now.
    pub fn in_use(&self) -> u64 {
        self.total.saturating_sub(self.semaphore.available_permits()) as u64
    }

    /// How many requests so far had to wait for bytes to be given back.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// A request as the semaphore counts it: never more than the whole budget (a transfer that
    /// needs more than the node allows then runs alone instead of waiting forever).
    fn permits(&self, bytes: u64) -> u32 {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX).min(self.total);
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    /// The permit for `bytes` if it needs no wait, else the count to wait for (the wait counted).
    fn take_at_once(&self, bytes: u64) -> Result<BudgetPermit, u32> {
        let n = self.permits(bytes);
        if n == 0 {
            return Ok(BudgetPermit::empty());
        }
        if let Ok(permit) = self.semaphore.clone().try_acquire_many_owned(n) {
            return Ok(BudgetPermit(Some(permit)));
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        Err(n)
    }

    /// Waits until `bytes` are free and takes them.
    pub async fn acquire(&self, bytes: u64) -> BudgetPermit {
        let n = match self.take_at_once(bytes) {
            Ok(permit) => return permit,
            Err(n) => n,
        };
        // The semaphore is never closed, so this cannot fail; an empty permit would only make
        // the accounting generous, never stall anyone.
        BudgetPermit(self.semaphore.clone().acquire_many_owned(n).await.ok())
    }

    /// [`MemoryBudget::acquire`] for blocking threads (encoders, readers of upload sources).
    pub fn blocking_acquire(&self, bytes: u64) -> BudgetPermit {
        let n = match self.take_at_once(bytes) {
            Ok(permit) => return permit,
            Err(n) => n,
        };
        BudgetPermit(self.semaphore.clone().blocking_acquire_many_owned(n).ok())
    }

    /// Takes `bytes` if they are free now.
    pub fn try_acquire(&self, bytes: u64) -> Option<BudgetPermit> {
        let n = self.permits(bytes);
        if n == 0 {
            return Some(BudgetPermit::empty());
        }
        self.semaphore
            .clone()
            .try_acquire_many_owned(n)
            .ok()
            .map(|p| BudgetPermit(Some(p)))
    }
}

/// Bytes held from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct BudgetPermit(Option<OwnedSemaphorePermit>);

impl BudgetPermit {
    /// A permit for nothing.
    pub fn empty() -> BudgetPermit {
        BudgetPermit(None)
    }

    /// The bytes it holds.
    pub fn bytes(&self) -> u64 {
        self.0.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Adds `other`'s bytes to this permit.
    pub fn merge(&mut self, other: BudgetPermit) {
        match (&mut self.0, other.0) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }

    /// Splits `bytes` off into a permit of their own (all it holds, if that is less).
    pub fn split_off(&mut self, bytes: u64) -> BudgetPermit {
        if bytes >= self.bytes() {
            return std::mem::take(self);
        }
        match (&mut self.0, usize::try_from(bytes)) {
            (Some(permit), Ok(n)) if n > 0 => BudgetPermit(permit.split(n)),
            _ => BudgetPermit::empty(),
        }
    }

    /// Gives back all but `bytes` (nothing if it holds no more than that).
    pub fn shrink_to(&mut self, bytes: u64) {
        let held = self.bytes();
        if held <= bytes {
            return;
        }
        if bytes == 0 {
            self.0 = None;
        } else if let Some(permit) = &mut self.0 {
            // Split off the excess and drop it.
            drop(permit.split((held - bytes) as usize));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_counted_merged_shrunk_and_released_on_drop() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.acquire(30).await;
        assert_eq!(budget.in_use(), 30);
        a.merge(budget.try_acquire(20).expect("free"));
        assert_eq!((a.bytes(), budget.in_use()), (50, 50));
        let mut b = a.split_off(20);
        assert_eq!((a.bytes(), b.bytes(), budget.in_use()), (30, 20, 50));
        drop(b.split_off(25));
        assert_eq!((b.bytes(), budget.in_use()), (0, 30));
        a.shrink_to(10);
        assert_eq!((a.bytes(), budget.in_use()), (10, 10));
        assert!(budget.try_acquire(91).is_none());
        let b = budget.try_acquire(90).expect("exactly what is left");
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gets_its_bytes_only_when_others_give_them_back() {
        let budget = MemoryBudget::new(100);
        let held = budget.acquire(80).await;
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(40).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "40 bytes were granted with only 20 free");
        assert_eq!(budget.waits(), 1);
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is woken")
            .expect("no panic");
        assert_eq!((got.bytes(), budget.in_use()), (40, 40));
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it_instead_of_waiting_forever() {
        let budget = MemoryBudget::new(100);
        let all = tokio::time::timeout(std::time::Duration::from_secs(5), budget.acquire(1000))
            .await
            .expect("granted");
        assert_eq!(all.bytes(), 100);
        assert!(budget.try_acquire(1).is_none());
    }
}

#[cfg(test)]
mod transfer_tests {
    //! The budget as uploads and downloads use it, on a local grid.

    use std::time::Duration;

    use crate::grid::immutable::upload::KeyChoice;
    use crate::grid::uri::Cap;
    use crate::grid::{ClientSecrets, EncodingParams, Grid};

    const BUDGET: u64 = super::MIN_BYTES;

    fn grid(dir: &std::path::Path) -> Grid {
        let secrets = ClientSecrets {
            convergence: b"budget test".to_vec(),
            lease: b"budget test lease".to_vec(),
        };
        Grid::open_local(dir, 10, EncodingParams::default(), secrets)
            .expect("local grid")
            .with_memory_budget(BUDGET)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    async fn until_released(grid: &Grid) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while grid.memory_budget().in_use() != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} bytes still held",
                grid.memory_budget().in_use()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uploads_wait_while_the_budget_is_spent_and_give_it_all_back() {
        let dir = tempfile::tempdir().unwrap();
        let grid = grid(dir.path());
        for (size, key) in [
            (3 << 20, KeyChoice::Random),     // pipelined, segment by segment
            (3 << 20, KeyChoice::Convergent), // with the key pass first
            (300_000, KeyChoice::Convergent), // one segment, encoded in memory
        ] {
            let everything = grid.memory_budget().acquire(BUDGET).await;
            let upload = tokio::spawn({
                let grid = grid.clone();
                async move {
                    grid.upload(std::io::Cursor::new(data(size)), size as u64, key, None)
                        .await
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!upload.is_finished(), "a {size}-byte upload ran with no budget left");
            drop(everything);
            let cap = tokio::time::timeout(Duration::from_secs(60), upload)
                .await
                .expect("it goes on once the budget is back")
                .unwrap()
                .unwrap();
            until_released(&grid).await;
            let Cap::Chk(chk) = cap else { panic!("not a CHK cap") };
            let back = grid
                .open_file(&chk)
                .await
                .unwrap()
                .read_range(0, u64::MAX)
                .await
                .unwrap();
            assert!(back == data(size), "round trip of {size} bytes");
            until_released(&grid).await;
        }
        assert!(grid.memory_budget().waits() >= 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn downloads_wait_while_the_budget_is_spent_and_read_ahead_only_into_free_budget() {
        let dir = tempfile::tempdir().unwrap();
        let grid = grid(dir.path());
        let size = 5 << 20;
        let Cap::Chk(chk) = grid.upload_bytes(data(size)).await.unwrap() else {
            panic!("not a CHK cap")
        };
        let everything = grid.memory_budget().acquire(BUDGET).await;
        let download = tokio::spawn({
            let (grid, chk) = (grid.clone(), chk.clone());
            async move { grid.open_file(&chk).await?.read_range(0, u64::MAX).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!download.is_finished(), "a download ran with no budget left");
        drop(everything);
        let back = tokio::time::timeout(Duration::from_secs(60), download)
            .await
            .expect("it goes on once the budget is back")
            .unwrap()
            .unwrap();
        assert!(back == data(size));
        until_released(&grid).await;

        // With room for one segment only, read-ahead is skipped rather than waited for: the
        // download still finishes, one segment at a time.
        let mut most = grid.memory_budget().acquire(BUDGET - (2 << 20) - 16).await;
        let back = tokio::time::timeout(
            Duration::from_secs(60),
            grid.open_file(&chk).await.unwrap().read_range(0, u64::MAX),
        )
        .await
        .expect("no stall with room for one segment")
        .unwrap();
        assert!(back == data(size));
        most.shrink_to(0);
        until_released(&grid).await;
    }
}
