//! The lease crawler of a disk storage server: walks the 1,024 share prefix directories a
//! slice at a time, resumably (its state is a JSON file), counting shares and their leases,
//! and, when expiration is enabled, deleting shares whose every lease has expired (Tahoe's
//! "age" mode). Blocking file I/O only; the caller paces it and runs it off the async runtime.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use super::disk::{DiskServer, LEASE_SECONDS, ShareKind, ShareLocks, share_lease_expirations};
use crate::grid::uri::StorageIndex;

/// Tahoe's base32 alphabet: share directories are named by the first two characters of the SI.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Number of prefix directories (`aa` … `77`).
pub const PREFIXES: usize = 1024;

/// The name of prefix directory `index`.
pub fn prefix_name(index: usize) -> String {
    let a = ALPHABET[(index / 32) % 32] as char;
    let b = ALPHABET[index % 32] as char;
    format!("{a}{b}")
}

/// What the expirer may delete (Tahoe's `[storage] expire.*`, age mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirationPolicy {
    /// Delete expired shares (off by default: the crawler only counts them).
    pub enabled: bool,
    /// Judge a lease by its age against this many seconds instead of its own expiration time.
    pub override_lease_duration: Option<u64>,
    /// Consider immutable shares.
    pub immutable: bool,
    /// Consider mutable shares.
    pub mutable: bool,
}

impl Default for ExpirationPolicy {
    fn default() -> Self {
        ExpirationPolicy {
            enabled: false,
            override_lease_duration: None,
            immutable: true,
            mutable: true,
        }
    }
}

impl ExpirationPolicy {
    /// Whether a lease that expires at `expiration` has expired at `now`.
    fn lease_expired(&self, expiration: u32, now: u64) -> bool {
        let expiration = u64::from(expiration);
        match self.override_lease_duration {
            // The lease was granted (or last renewed) a full lease period before it expires.
            Some(duration) => now.saturating_sub(expiration.saturating_sub(LEASE_SECONDS)) > duration,
            None => expiration < now,
        }
    }

    fn applies_to(&self, kind: ShareKind) -> bool {
        match kind {
            ShareKind::Immutable => self.immutable,
            ShareKind::Mutable => self.mutable,
        }
    }
}

/// Counts of one crawl cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleCounts {
    /// Share files looked at.
    pub shares: u64,
    /// Shares with at least one live lease.
    pub leased: u64,
    /// Shares whose every lease has expired (or that have none).
    pub expired: u64,
    /// Expired shares deleted.
    pub deleted: u64,
    /// Bytes freed by deleting them.
    pub bytes_deleted: u64,
    /// Share files that could not be read.
    pub unreadable: u64,
}

impl CycleCounts {
    fn add(&mut self, other: &CycleCounts) {
        self.shares += other.shares;
        self.leased += other.leased;
        self.expired += other.expired;
        self.deleted += other.deleted;
        self.bytes_deleted += other.bytes_deleted;
        self.unreadable += other.unreadable;
    }
}

/// Where the crawler is; saved after every prefix so a restart resumes there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrawlerState {
    /// Completed cycles.
    pub cycle: u64,
    /// The next prefix directory to crawl (0..1024).
    pub next_prefix: usize,
    /// When the current cycle began (Unix seconds; 0 before the first).
    pub cycle_started: u64,
    /// Counts so far in this cycle.
    pub current: CycleCounts,
    /// The counts of the last complete cycle.
    pub last_cycle: Option<CycleCounts>,
    /// When the last complete cycle ended (Unix seconds).
    pub last_cycle_finished: u64,
}

/// A crawler over one server's share directory.
#[derive(Debug, Clone)]
pub struct LeaseCrawler {
    shares_dir: PathBuf,
    state_file: PathBuf,
    policy: ExpirationPolicy,
    /// The server's own locks: a share is judged again and deleted under the lock its lease
    /// renewals take.
    locks: ShareLocks,
}

impl LeaseCrawler {
    /// A crawler over `server`'s shares (`<root>/shares`), keeping its state in
    /// `<root>/lease_checker.state.json`.
    pub fn new(server: &DiskServer, policy: ExpirationPolicy) -> Self {
        let server_root = server.root();
        LeaseCrawler {
            shares_dir: server_root.join("shares"),
            state_file: server_root.join("lease_checker.state.json"),
            policy,
            locks: server.share_locks(),
        }
    }

    /// The saved state (a missing or unreadable file starts a fresh cycle).
    pub fn load_state(&self) -> CrawlerState {
        fs::read(&self.state_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CrawlerState>(&bytes).ok())
            .filter(|s| s.next_prefix < PREFIXES)
            .unwrap_or_default()
    }

    /// Saves the state durably (temporary file, fsync, rename).
    pub fn save_state(&self, state: &CrawlerState) -> Result<(), Error> {
        let tmp = self.state_file.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::io("encode crawler state", std::io::Error::other(e)))?;
        let write = || -> std::io::Result<()> {
            let file = fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut &file, &bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &self.state_file)
        };
        write().map_err(|e| Error::io(format!("save {}", self.state_file.display()), e))
    }

    /// Crawls the next prefix directory at time `now` and advances `state`; returns true when
    /// that finished a cycle.
    pub fn step(&self, state: &mut CrawlerState, now: u64) -> bool {
        if state.next_prefix == 0 && state.current == CycleCounts::default() {
            state.cycle_started = now;
        }
        let counts = self.crawl_prefix(&prefix_name(state.next_prefix), now);
        state.current.add(&counts);
        state.next_prefix += 1;
        if state.next_prefix < PREFIXES {
            return false;
        }
        state.cycle += 1;
        state.next_prefix = 0;
        state.last_cycle = Some(std::mem::take(&mut state.current));
        state.last_cycle_finished = now;
        true
    }

    /// Looks at every share under one prefix directory.
    pub fn crawl_prefix(&self, prefix: &str, now: u64) -> CycleCounts {
        self.crawl_prefix_pausing(prefix, now, &mut |_| {})
    }

    /// [`Self::crawl_prefix`], calling `before_delete` with each share it found expired and is
    /// about to delete (a test's pause point, where a lease renewal can land).
    fn crawl_prefix_pausing(&self, prefix: &str, now: u64, before_delete: &mut dyn FnMut(&Path)) -> CycleCounts {
        let mut counts = CycleCounts::default();
        let Ok(storage_indexes) = fs::read_dir(self.shares_dir.join(prefix)) else {
            return counts;
        };
        for si_dir in storage_indexes.flatten() {
            let si_path = si_dir.path();
            let si = si_dir
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<StorageIndex>().ok());
            let Ok(shares) = fs::read_dir(&si_path) else { continue };
            let deleted_before = counts.deleted;
            for share in shares.flatten() {
                let path = share.path();
                if share.file_name().to_str().and_then(|n| n.parse::<u16>().ok()).is_none() {
                    continue;
                }
                counts.shares += 1;
                let Ok((kind, expirations)) = share_lease_expirations(&path) else {
                    counts.unreadable += 1;
                    continue;
                };
                if expirations.iter().any(|&e| !self.policy.lease_expired(e, now)) {
                    counts.leased += 1;
                    continue;
                }
                counts.expired += 1;
                // Not a storage index directory (`incoming`, a stray): nothing the server serves.
                let Some(si) = &si else { continue };
                if self.policy.enabled && self.policy.applies_to(kind) {
                    before_delete(&path);
                    // A renewal may have landed since the leases were read: judge them again under
                    // the lock renewals take, and delete under it, so none lands in between.
                    let _lease_changes = self.locks.lock(si, kind);
                    let still_expired = matches!(
                        share_lease_expirations(&path),
                        Ok((again, expirations))
                            if again == kind && expirations.iter().all(|&e| self.policy.lease_expired(e, now))
                    );
                    if !still_expired {
                        // Renewed meanwhile (or gone): it stays.
                        continue;
                    }
                    let size = share.metadata().map(|m| m.len()).unwrap_or(0);
                    if fs::remove_file(&path).is_ok() {
                        counts.deleted += 1;
                        counts.bytes_deleted += size;
                        tracing::info!(share = %path.display(), "lease expired; share deleted");
                    }
                }
            }
            // A directory this crawl emptied goes too (fails harmlessly if not empty). Others are
            // left alone: an upload's close creates the directory just before renaming into it.
            if counts.deleted > deleted_before {
                let _ = fs::remove_dir(&si_path);
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::storage::{LeaseSecrets, StorageServer};
    use crate::grid::uri::StorageIndex;

    #[test]
    fn prefixes_are_tahoes_1024_directories() {
        assert_eq!(prefix_name(0), "aa");
        assert_eq!(prefix_name(1), "ab");
        assert_eq!(prefix_name(PREFIXES - 1), "77");
        let all: std::collections::BTreeSet<_> = (0..PREFIXES).map(prefix_name).collect();
        assert_eq!(all.len(), PREFIXES);
    }

    #[test]
    fn age_mode_judges_leases_by_expiration_or_by_age() {
        let now = 1_800_000_000u64;
        let by_expiration = ExpirationPolicy::default();
        assert!(by_expiration.lease_expired((now - 1) as u32, now));
        assert!(!by_expiration.lease_expired((now + 10) as u32, now));
        // Renewed 2 days ago: expires in 29 days; with a 1-day override it is too old.
        let renewed = (now - 2 * 86_400 + LEASE_SECONDS) as u32;
        let one_day = ExpirationPolicy {
            override_lease_duration: Some(86_400),
            ..ExpirationPolicy::default()
        };
        assert!(one_day.lease_expired(renewed, now));
        assert!(!by_expiration.lease_expired(renewed, now));
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[tokio::test]
    async fn expired_shares_are_counted_then_deleted_only_when_enabled_and_crawls_resume() {
        let dir = tempfile::tempdir().unwrap();
        let server = DiskServer::open(dir.path(), "s").unwrap();
        let lease = LeaseSecrets {
            renew: [1; 32],
            cancel: [2; 32],
        };
        let mut sis = Vec::new();
        for i in 0..6u8 {
            let si = StorageIndex([i * 40; 16]);
            let shares = [0u16, 1].into();
            server.allocate_buckets(si, lease, &shares, 5).await.unwrap();
            for n in [0, 1] {
                server
                    .write_share(si, n, 0, bytes::Bytes::from_static(b"hello"))
                    .await
                    .unwrap();
                server.close_share(si, n).await.unwrap();
            }
            sis.push(si);
        }
        let full_cycle = |crawler: &LeaseCrawler, at: u64| {
            let mut state = CrawlerState::default();
            while !crawler.step(&mut state, at) {}
            state.last_cycle.unwrap()
        };
        // Leases are fresh: all 12 shares leased.
        let report_only = LeaseCrawler::new(&server, ExpirationPolicy::default());
        let counts = full_cycle(&report_only, now());
        assert_eq!(
            (counts.shares, counts.leased, counts.expired, counts.deleted),
            (12, 12, 0, 0)
        );
        // 32 days on, every lease has expired: counted, but nothing deleted while disabled.
        let later = now() + 32 * 86_400;
        let counts = full_cycle(&report_only, later);
        assert_eq!((counts.shares, counts.expired, counts.deleted), (12, 12, 0));
        assert_eq!(server.list_shares(sis[0]).await.unwrap().len(), 2);

        // Enabled, and interrupted half-way: the saved state resumes where it stopped.
        let expirer = LeaseCrawler::new(
            &server,
            ExpirationPolicy {
                enabled: true,
                ..ExpirationPolicy::default()
            },
        );
        let mut state = expirer.load_state();
        for _ in 0..PREFIXES / 2 {
            assert!(!expirer.step(&mut state, later));
        }
        expirer.save_state(&state).unwrap();
        let mut resumed = expirer.load_state();
        assert_eq!(resumed, state);
        while !expirer.step(&mut resumed, later) {}
        let counts = resumed.last_cycle.unwrap();
        assert_eq!((counts.shares, counts.expired, counts.deleted), (12, 12, 12));
        assert_eq!(counts.bytes_deleted, 12 * (12 + 5 + 72));
        for si in sis {
            assert!(server.list_shares(si).await.unwrap().is_empty());
        }
        // Renewing a lease keeps a share: a new one, renewed now, survives the next cycle.
        let si = StorageIndex([9; 16]);
        server.allocate_buckets(si, lease, &[0].into(), 5).await.unwrap();
        server
            .write_share(si, 0, 0, bytes::Bytes::from_static(b"again"))
            .await
            .unwrap();
        server.close_share(si, 0).await.unwrap();
        let counts = full_cycle(&expirer, now());
        assert_eq!((counts.shares, counts.leased, counts.deleted), (1, 1, 0));
    }

    /// Sets the expiration time (Unix seconds) of a share's only lease, as if it were granted
    /// long ago: an immutable container ends with it (its last lease record ends with the time),
    /// a mutable one holds it after the owner number of its first header slot.
    fn age_only_lease(path: &Path, expiration: u32) {
        use std::os::unix::fs::FileExt;
        let (kind, leases) = share_lease_expirations(path).unwrap();
        assert_eq!(leases.len(), 1);
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        let at = match kind {
            ShareKind::Immutable => file.metadata().unwrap().len() - 4,
            ShareKind::Mutable => 100 + 4,
        };
        file.write_all_at(&expiration.to_be_bytes(), at).unwrap();
        assert_eq!(share_lease_expirations(path).unwrap().1, [expiration]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_renewed_while_the_crawler_deletes_keeps_its_share() {
        let dir = tempfile::tempdir().unwrap();
        let server = std::sync::Arc::new(DiskServer::open(dir.path(), "s").unwrap());
        let lease = LeaseSecrets {
            renew: [1; 32],
            cancel: [2; 32],
        };
        // An immutable and a mutable share, both under prefix "aa".
        let immutable = StorageIndex([0; 16]);
        server.allocate_buckets(immutable, lease, &[0].into(), 5).await.unwrap();
        server
            .write_share(immutable, 0, 0, bytes::Bytes::from_static(b"hello"))
            .await
            .unwrap();
        server.close_share(immutable, 0).await.unwrap();
        let mut mutable = StorageIndex([0; 16]);
        mutable.0[15] = 1;
        let create = crate::grid::storage::TestAndWrite {
            tests: vec![crate::grid::storage::TestVector {
                offset: 0,
                size: 1,
                specimen: vec![],
            }],
            writes: vec![(0, b"slot".to_vec())],
            new_length: None,
        };
        let written = server
            .mutable_read_test_write(mutable, [9; 32], lease, [(0, create)].into(), Vec::new())
            .await
            .unwrap();
        assert!(written.success);
        let paths = [
            server.share_dir(immutable).join("0"),
            server.share_dir(mutable).join("0"),
        ];
        for path in &paths {
            assert!(
                path.starts_with(dir.path().join("shares").join("aa")),
                "{}",
                path.display()
            );
            age_only_lease(path, 1_000_000);
        }
        let expirer = LeaseCrawler::new(
            &server,
            ExpirationPolicy {
                enabled: true,
                ..ExpirationPolicy::default()
            },
        );
        // The crawler has found both shares expired; each one's holder renews its lease (through
        // the server, which answers that it did) just before the crawler deletes it.
        let renewer = server.clone();
        let runtime = tokio::runtime::Handle::current();
        let (counts, renewed) = tokio::task::spawn_blocking(move || {
            let mut renewed = Vec::new();
            let counts = expirer.crawl_prefix_pausing("aa", now(), &mut |path| {
                let si = if path.starts_with(renewer.share_dir(immutable)) {
                    immutable
                } else {
                    mutable
                };
                renewed.push(runtime.block_on(renewer.add_or_renew_lease(si, lease)).is_ok());
            });
            (counts, renewed)
        })
        .await
        .unwrap();
        assert_eq!(renewed, [true, true], "both renewals were accepted");
        // An accepted renewal keeps its share.
        assert_eq!(server.list_shares(immutable).await.unwrap().len(), 1, "{counts:?}");
        assert_eq!(
            server.list_mutable_shares(mutable).await.unwrap().len(),
            1,
            "{counts:?}"
        );
        assert_eq!((counts.shares, counts.deleted), (2, 0), "{counts:?}");
    }
}
