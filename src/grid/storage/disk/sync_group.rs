//! Group sync: the shares closed at about the same time on one filesystem become durable through one `syncfs` instead of an fsync each and of their directories.
//!
//! A small file's ten shares cost about thirty fsyncs (each share file, then its directory, on
//! every server), each a commit of the filesystem's journal and a flush of the disk's cache.
//! Sixteen files published at once made that thousands a second, and the syncs that acknowledge
//! clients (the commit journal's) queued behind them: acknowledging a burst of small files ran at
//! a third of the rate it had while no publishing ran (issue 18, measured). `syncfs` writes back
//! and commits everything dirty on the filesystem at once, so it covers every close that was
//! written before it started, whichever server (of those sharing the filesystem) wrote it.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::super::Error;

/// The groups of the filesystems in use, by device number.
static GROUPS: Mutex<BTreeMap<u64, Weak<SyncGroup>>> = Mutex::new(BTreeMap::new());

/// Syncs one filesystem for everyone who wrote to it.
#[derive(Debug)]
pub(super) struct SyncGroup {
    /// Any directory on the filesystem (`syncfs` needs a descriptor on it).
    anchor: File,
    /// How many syncs have started (a sync's index is the count before it started).
    started: AtomicU64,
    /// Held while a sync runs: syncs run one at a time, so they complete in order.
    progress: tokio::sync::Mutex<Progress>,
}

#[derive(Debug, Default)]
struct Progress {
    /// One past the index of the last sync that completed.
    completed: u64,
    /// A sync failed: writeback lost data it should have kept, and since the kernel reports such
    /// an error once, a later sync could not tell whose data it was. Nothing more is durable.
    failed: Option<String>,
}

impl SyncGroup {
    /// The group of the filesystem `dir` is on (made when first asked for).
    pub(super) fn for_filesystem_of(dir: &Path) -> Result<Arc<SyncGroup>, Error> {
        let anchor = File::open(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
        let device = anchor
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", dir.display()), e))?
            .dev();
        // The map stays consistent whatever panicked while holding it.
        let mut groups = GROUPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.retain(|_, group| group.strong_count() > 0);
        if let Some(group) = groups.get(&device).and_then(Weak::upgrade) {
            return Ok(group);
        }
        let group = Arc::new(SyncGroup::new(anchor));
        groups.insert(device, Arc::downgrade(&group));
        Ok(group)
    }

    fn new(anchor: File) -> SyncGroup {
        SyncGroup {
            anchor,
            started: AtomicU64::new(0),
            progress: tokio::sync::Mutex::new(Progress::default()),
        }
    }

    /// Returns once everything written to the filesystem before the call is on stable storage.
    pub(super) async fn sync(self: &Arc<Self>) -> Result<(), Error> {
        // A sync that starts after this point covers what the caller wrote before it.
        let arrived = self.started.load(Ordering::SeqCst);
        let mut progress = self.progress.lock().await;
        if let Some(failure) = &progress.failed {
            return Err(failed(failure));
        }
        if progress.completed > arrived {
            return Ok(());
        }
        let index = self.started.fetch_add(1, Ordering::SeqCst);
        let group = Arc::clone(self);
        let outcome = tokio::task::spawn_blocking(move || nix::unistd::syncfs(&group.anchor))
            .await
            .map_err(|e| e.to_string())
            .and_then(|synced| synced.map_err(|e| e.to_string()));
        match outcome {
            Ok(()) => {
                progress.completed = index + 1;
                Ok(())
            }
            Err(e) => {
                tracing::error!("storage: syncing the filesystem failed, no more shares are accepted: {e}");
                let error = failed(&e);
                progress.failed = Some(e);
                Err(error)
            }
        }
    }
}

fn failed(cause: &str) -> Error {
    Error::Unavailable(format!(
        "writing back to disk failed ({cause}); restart the node after checking the disk"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_on_one_filesystem_share_one_group_and_others_get_their_own() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let a = SyncGroup::for_filesystem_of(&dir.path().join("a")).unwrap();
        let b = SyncGroup::for_filesystem_of(&dir.path().join("b")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // /proc is another filesystem.
        let proc = SyncGroup::for_filesystem_of(Path::new("/proc")).unwrap();
        assert!(!Arc::ptr_eq(&a, &proc));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn callers_that_arrive_during_a_sync_share_the_next_one() {
        // A group of its own: the filesystem's shared one also syncs for tests running beside.
        let group = Arc::new(SyncGroup::new(File::open(std::env::temp_dir()).unwrap()));
        let callers: Vec<_> = (0..64)
            .map(|_| {
                let group = Arc::clone(&group);
                tokio::spawn(async move { group.sync().await })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        let syncs = group.started.load(Ordering::SeqCst);
        // Each sync covers everyone who arrived before it started: at most the first caller's
        // own sync and one more for those who came while it ran, and so on; never one each.
        assert!((1..64).contains(&syncs), "{syncs} syncs for 64 callers");
        // A caller after all of them still gets a sync of its own (its writes came later).
        group.sync().await.unwrap();
        assert_eq!(group.started.load(Ordering::SeqCst), syncs + 1);
    }
}
