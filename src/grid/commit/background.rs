//! The runtime publishing runs on, its threads at a lower CPU priority than the frontends', so
//! publishing what was acknowledged does not slow acknowledging what arrives next.
//!
//! A burst of small files is acknowledged from the journal as fast as the journal syncs, while
//! their publishing (encryption, erasure coding, ten share files each, directory writes) takes
//! what CPU is left; on two cores it took half of it from the sessions before (issue 18).
//! Nothing waits on it except what reads pending links, which are served from the queue.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// How much lower than the node's other threads publishing runs (a nice increment).
const NICER_BY: i32 = 10;

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// Runs `task` on the publishing runtime (on the caller's runtime if that could not be built).
pub(super) fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match RUNTIME.get_or_init(build) {
        Some(runtime) => {
            runtime.spawn(task);
        }
        None => {
            tokio::spawn(task);
        }
    }
}

/// How long an idle blocking thread of publishing stays (tokio's default is 10 s). A burst of
/// small files published at once starts a blocking thread per file being encoded (its threads,
/// at lower priority, are often not idle again in time to be reused): 268 after twenty `sftp -b`
/// batches of 200 files, each keeping its own allocator cache while it idles (173 MB RSS).
/// Leaving soon gives that memory back a second after the burst. A cap on the threads would
/// bound the peak too, but an upload through the pipeline holds two threads that wait on each
/// other, so a full pool could deadlock.
const IDLE_THREAD_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// A runtime of its own (never dropped: it lives as long as the process), whose worker and
/// blocking threads lower their own priority as they start.
fn build() -> Option<Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("lafs-publish")
        .thread_keep_alive(IDLE_THREAD_KEEP_ALIVE)
        .enable_all()
        .on_thread_start(lower_priority)
        .build()
        .map_err(|e| tracing::warn!("publishing runs at normal priority: cannot start its runtime: {e}"))
        .ok()
}

fn lower_priority() {
    let this_thread = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(this_thread)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(this_thread), current + NICER_BY) {
        tracing::debug!("publishing thread keeps its priority: {e}");
    }
}
