//! Directory listings this node read or wrote a moment ago, so a path walk does not read the same directory from every server again.
//!
//! Every write of a directory through this node replaces its entry (writes take the process's
//! turn on the directory, so the cache follows them in order); what another node writes is seen
//! once the entry is older than the time to live. A time to live of zero turns the cache off.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::grid::dirnode::Child;
use crate::grid::uri::StorageIndex;

/// Directories kept at most (the oldest go first).
const MAX_DIRECTORIES: usize = 256;
/// Entries kept at most, all directories together (the oldest directories go first). A cached
/// entry costs about 1.7 KB (its name, caps and metadata map): thirty directories of 200 small
/// files held 10 MB of a node's RSS (measured), so a count of directories alone let
/// 256 large ones hold gigabytes. The newest directory is kept whatever its size: whoever read or
/// wrote it holds it in memory anyway.
const MAX_CHILDREN: usize = 8192;

struct Cached {
    children: Arc<BTreeMap<String, Child>>,
    /// Whether it was read with a write cap (its children's write caps are in it).
    with_write_caps: bool,
    at: Instant,
}

/// See the module docs.
#[derive(Default)]
pub struct DirectoryCache {
    ttl_ms: AtomicU64,
    entries: Mutex<HashMap<StorageIndex, Cached>>,
}

impl DirectoryCache {
    /// Sets how long an entry answers reads (zero: the cache is off and emptied).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms
            .store(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if ttl.is_zero() {
            self.lock().clear();
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StorageIndex, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The children of `si` if read or written within the time to live (and, when
    /// `want_write_caps`, read with a write cap). Read-only callers must strip write caps.
    pub fn get(&self, si: StorageIndex, want_write_caps: bool) -> Option<(Arc<BTreeMap<String, Child>>, bool)> {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return None;
        }
        let entries = self.lock();
        let cached = entries.get(&si)?;
        if cached.at.elapsed() >= ttl || (want_write_caps && !cached.with_write_caps) {
            return None;
        }
        Some((cached.children.clone(), cached.with_write_caps))
    }

    /// Records what `si` holds now (this node just wrote it).
    pub fn put(&self, si: StorageIndex, children: Arc<BTreeMap<String, Child>>, with_write_caps: bool) {
        self.put_read(si, children, with_write_caps, Instant::now());
    }

    /// Records what a read of `si` that started at `started` found, unless something newer was
    /// recorded since it started (a write that finished meanwhile may not be in it).
    pub fn put_read(
        &self,
        si: StorageIndex,
        children: Arc<BTreeMap<String, Child>>,
        with_write_caps: bool,
        started: Instant,
    ) {
        let ttl = self.ttl();
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.get(&si).is_some_and(|c| c.at > started) {
            return;
        }
        // Expired entries answer nothing: dropped now, not once the cache is full, so what is
        // held is what was used within the time to live (expired directories stayed for good).
        entries.retain(|_, c| c.at.elapsed() < ttl);
        entries.remove(&si);
        let mut held: usize = entries.values().map(|c| c.children.len()).sum();
        while entries.len() >= MAX_DIRECTORIES || held + children.len() > MAX_CHILDREN {
            let Some(oldest) = entries.iter().min_by_key(|(_, c)| c.at).map(|(si, _)| *si) else {
                break;
            };
            if let Some(gone) = entries.remove(&oldest) {
                held -= gone.children.len();
            }
        }
        entries.insert(
            si,
            Cached {
                children,
                with_write_caps,
                at: Instant::now().max(started),
            },
        );
    }

    /// Forgets `si` (its contents are uncertain: a write collided or failed).
    pub fn forget(&self, si: StorageIndex) {
        self.lock().remove(&si);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str) -> Arc<BTreeMap<String, Child>> {
        let mut children = BTreeMap::new();
        children.insert(
            name.to_string(),
            Child {
                write_cap: Some("URI:write".into()),
                read_cap: Some("URI:read".into()),
                metadata: Default::default(),
            },
        );
        Arc::new(children)
    }

    #[test]
    fn entries_answer_within_their_time_to_live_and_only_as_strong_as_they_were_read() {
        let cache = DirectoryCache::default();
        let si = StorageIndex([1; 16]);
        cache.put(si, one("a"), true);
        assert!(cache.get(si, false).is_none(), "off until a time to live is set");
        cache.set_ttl(Duration::from_secs(60));
        cache.put(si, one("a"), false);
        assert!(cache.get(si, false).is_some());
        assert!(
            cache.get(si, true).is_none(),
            "read without write caps cannot answer a writer"
        );
        cache.put(si, one("b"), true);
        let (children, with_write_caps) = cache.get(si, true).unwrap();
        assert!(with_write_caps && children.contains_key("b"));
        // A read that started before that write may not hold it: it does not replace it.
        let started = Instant::now() - Duration::from_secs(1);
        cache.put_read(si, one("stale"), true, started);
        assert!(cache.get(si, true).unwrap().0.contains_key("b"));
        cache.forget(si);
        assert!(cache.get(si, false).is_none());
        cache.set_ttl(Duration::from_millis(1));
        cache.put(si, one("c"), true);
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(si, false).is_none(), "expired");
    }

    fn many(n: usize) -> Arc<BTreeMap<String, Child>> {
        let child = one("x").get("x").cloned().unwrap();
        Arc::new((0..n).map(|i| (format!("f{i}"), child.clone())).collect())
    }

    fn held(cache: &DirectoryCache) -> (usize, usize) {
        let entries = cache.lock();
        (entries.len(), entries.values().map(|c| c.children.len()).sum())
    }

    #[test]
    fn expired_directories_are_dropped_at_the_next_write_not_when_the_cache_is_full() {
        let cache = DirectoryCache::default();
        cache.set_ttl(Duration::from_millis(1));
        for n in 0..10 {
            cache.put(StorageIndex([n; 16]), many(200), true);
        }
        std::thread::sleep(Duration::from_millis(5));
        cache.put(StorageIndex([99; 16]), one("a"), true);
        assert_eq!(held(&cache), (1, 1));
    }

    #[test]
    fn large_directories_are_kept_within_the_entry_bound_and_the_newest_whatever_its_size() {
        let cache = DirectoryCache::default();
        cache.set_ttl(Duration::from_secs(60));
        for n in 0..40 {
            cache.put(StorageIndex([n; 16]), many(1000), true);
            assert!(held(&cache).1 <= MAX_CHILDREN);
            assert!(cache.get(StorageIndex([n; 16]), true).is_some(), "the newest stays");
        }
        assert!(
            cache.get(StorageIndex([0; 16]), true).is_none(),
            "the oldest went first"
        );
        let huge = StorageIndex([200; 16]);
        cache.put(huge, many(MAX_CHILDREN + 1), true);
        assert_eq!(held(&cache), (1, MAX_CHILDREN + 1));
        assert!(cache.get(huge, true).is_some());
        // Rewriting a directory replaces its entries rather than counting them twice.
        let small = StorageIndex([201; 16]);
        cache.put(small, many(10), true);
        cache.put(small, many(10), true);
        assert_eq!(held(&cache), (1, 10));
    }
}
