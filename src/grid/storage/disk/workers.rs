//! The threads disk servers run their file operations on: a fixed pool, shared node-wide.
//!
//! Every read, write, rename and fsync of a share runs off the async workers. On tokio's blocking
//! pool, a new thread starts whenever none is idle, up to 512: a burst of small files asks for
//! hundreds of operations at once (ten servers in a local grid, each share allocated, written,
//! trimmed and renamed), and the node went from 22 threads to 548 within a tenth of a second of
//! the second `sftp -b` batch of 200 files. Each of those threads keeps its own jemalloc cache of
//! the memory it freed, never given back while the thread sleeps, and they sleep 10 s before they
//! exit: RSS grew 15 → 170 MB over ten batches and came back only once the threads had gone (with
//! jemalloc's thread caches off, 38 MB with as many threads; measured with `sftp -b` batches of
//! 200 files of 1-8 KiB on the default local grid).
//!
//! A fixed pool bounds them. Operations queue as closures, not as tasks waiting for a turn: a
//! queued operation runs whether or not anyone polls its future, so a caller holding futures it
//! does not poll (a walk that awaits one result while others are in flight) cannot starve the
//! rest. A semaphore of turns did exactly that: turns handed to futures nobody polled, no thread
//! running, `lafs deep-check` hung one run in twenty.
//!
//! The threads wait on a condition variable and each queued operation wakes one of them. rayon's
//! pool, used here first, spins its idle threads through `sched_yield` before they sleep: reading
//! 1,000 small files back over sshfs spent 40 % of the gateway's samples switching between
//! sixteen yielding threads on two cores (perf, default local grid).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::super::Error;

/// How many file operations of disk servers run at once in the node. A disk gains little from
/// more requests than this in its queue. The filesystem's `syncfs` (one at a time per filesystem,
/// see `sync_group`) runs elsewhere: a durability wait never queues behind reads.
pub(super) const DISK_WORKERS: usize = 16;

type Operation = Box<dyn FnOnce() + Send>;

/// Operations waiting for a thread, and the signal that one was queued.
#[derive(Default)]
struct Queue {
    waiting: Mutex<VecDeque<Operation>>,
    queued: Condvar,
}

impl Queue {
    fn push(&self, operation: Operation) {
        // Operations never panic while holding the lock (they run outside it), so a poisoned
        // lock still holds a sound queue.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(operation);
        self.queued.notify_one();
    }

    /// Runs queued operations, one at a time, for ever.
    fn serve(&self) {
        loop {
            let operation = {
                let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                loop {
                    match waiting.pop_front() {
                        Some(operation) => break operation,
                        None => {
                            waiting = self
                                .queued
                                .wait(waiting)
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                        }
                    }
                }
            };
            operation();
        }
    }
}

static POOL: OnceLock<Result<Arc<Queue>, String>> = OnceLock::new();

fn pool() -> Result<&'static Queue, Error> {
    POOL.get_or_init(|| {
        let queue = Arc::new(Queue::default());
        for i in 0..DISK_WORKERS {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("lafs-disk-{i}"))
                .spawn(move || queue.serve())
                .map_err(|e| e.to_string())?;
        }
        Ok(queue)
    })
    .as_ref()
    .map(|queue| &**queue)
    .map_err(|e| Error::Unavailable(format!("cannot start the disk threads: {e}")))
}

/// Runs `work` (file I/O) on one of the node's [`DISK_WORKERS`] disk threads and waits for its
/// result. Dropping the future does not cancel the work: it still runs to its end.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let (done, result) = tokio::sync::oneshot::channel();
    pool()?.push(Box::new(move || {
        // A caller that stopped waiting has no use for the result.
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    }));
    match result.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(Error::Unavailable("storage worker panicked".into())),
        Err(_) => Err(Error::Unavailable("storage worker stopped".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_disk_operations_runs_on_the_few_disk_threads() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let operations: Vec<_> = (0..200)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(std::thread::current().name().map(str::to_owned))
                }))
            })
            .collect();
        for operation in operations {
            let name = operation.await.unwrap().unwrap().unwrap_or_default();
            assert!(name.starts_with("lafs-disk-"), "ran on {name}");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=DISK_WORKERS).contains(&most), "{most} ran at once");
    }

    /// The hang a semaphore of turns had: futures that are never polled again hold nothing back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_nobody_polls_do_not_hold_back_the_others() {
        // Far more operations than threads, each future polled once (its work is queued) and then
        // kept, unpolled, until the end.
        let mut forgotten = Vec::new();
        for _ in 0..(4 * DISK_WORKERS) {
            let mut op = Box::pin(blocking(|| {
                std::thread::sleep(Duration::from_millis(5));
                Ok(())
            }));
            let _ = futures::poll!(op.as_mut());
            forgotten.push(op);
        }
        let answered = tokio::time::timeout(Duration::from_secs(20), blocking(|| Ok(42))).await;
        assert_eq!(
            answered.expect("an operation waited on futures nobody polls").unwrap(),
            42
        );
        drop(forgotten);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_operation_is_an_error_and_the_threads_go_on() {
        let failed = blocking::<()>(|| panic!("injected")).await;
        assert!(matches!(failed, Err(Error::Unavailable(_))), "{failed:?}");
        assert_eq!(blocking(|| Ok(7)).await.unwrap(), 7);
    }
}
