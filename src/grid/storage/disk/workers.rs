//! The blocking threads disk servers run their file operations on: how many at once, node-wide.
//!
//! Every read, write, rename and fsync of a share runs on one of tokio's blocking threads, and
//! tokio starts a new thread whenever none is idle, up to 512. A burst of small files asks for
//! hundreds at once (ten servers in a local grid, each share allocated, written, trimmed and
//! renamed, the renames queued on their directories' locks): the node went from 22 threads to
//! 548 within a tenth of a second of the second `sftp -b` batch of 200 files. Each of those
//! threads keeps its own jemalloc cache of the memory it freed, never given back while the thread
//! sleeps, and they sleep for 10 s before they exit: RSS grew 15 → 170 MB over ten batches and came
//! back only once the threads had gone (with jemalloc's thread caches off, 38 MB with as many
//! threads; measured with `sftp -b` batches of 200 files of 1-8 KiB on the default local grid).
//! Waiting for a turn as a task costs a few bytes instead.

use tokio::sync::Semaphore;

use super::super::Error;

/// How many file operations of disk servers run at once in the node. A disk gains little from
/// more requests than this in its queue; the rest wait as tasks, not threads. The filesystem's
/// `syncfs` (one at a time, see `sync_group`) does not count: a durability wait never queues
/// behind reads.
pub(super) const DISK_WORKERS: usize = 16;

/// Turns to run a disk operation, shared by every disk server of the node (they share the
/// blocking threads too).
static TURNS: Semaphore = Semaphore::const_new(DISK_WORKERS);

/// Runs `work` (file I/O) on a blocking thread once one of the node's [`DISK_WORKERS`] turns is free.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    blocking_in_turn(&TURNS, work).await
}

/// Runs `work` on a blocking thread while it holds one of `turns`.
async fn blocking_in_turn<T: Send + 'static>(
    turns: &'static Semaphore,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let turn = turns
        .acquire()
        .await
        .map_err(|e| Error::Unavailable(format!("storage workers stopped: {e}")))?;
    tokio::task::spawn_blocking(move || {
        // Held until the work is done, not until the caller stops waiting: a caller that gives
        // up (a dropped future) leaves the thread running, which still counts.
        let _turn = turn;
        work()
    })
    .await
    .map_err(|e| Error::Unavailable(format!("storage worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_disk_operations_runs_a_few_at_a_time() {
        // Turns of its own: the node's are shared with other tests' disk servers.
        static THREE: Semaphore = Semaphore::const_new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let operations: Vec<_> = (0..200)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(blocking_in_turn(&THREE, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        for operation in operations {
            operation.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=3).contains(&most), "{most} ran at once");
        assert_eq!(THREE.available_permits(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_operation_keeps_its_turn_until_its_work_ends() {
        static ONE: Semaphore = Semaphore::const_new(1);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let abandoned = tokio::spawn(blocking_in_turn(&ONE, move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok(())
        }));
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .unwrap()
            .unwrap();
        abandoned.abort();
        let _ = abandoned.await;
        // Its thread still runs, so the next operation waits for it.
        let next = tokio::spawn(blocking_in_turn(&ONE, || Ok(())));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next.is_finished());
        release_tx.send(()).unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(ONE.available_permits(), 1);
    }
}
