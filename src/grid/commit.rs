//! The node's commit queue: links acknowledged once journaled, then published into their directories, many per directory write.
//!
//! A link (a name for a file already stored, or a small file's contents still to be stored)
//! is appended to the [`journal`] and synced (closes that arrive together share one sync),
//! registered in the queue of its directory, and only then acknowledged. One task per busy
//! directory takes everything queued, uploads the small files, and applies every link in one
//! `modify_directory`; links that arrive meanwhile go into the next write. Once a write is
//! published its records are retired in the journal (durably, before the directory's queue
//! counts as empty), so a restart replays exactly the links not yet published.
//!
//! Until then the queue is an overlay: [`CommitQueue::pending`] and [`CommitQueue::pending_in`]
//! answer for the names it holds, so every read through this node sees a close at once.
//! Other changes to a directory (remove, rename, mkdir, times) first wait for its queue to
//! drain ([`CommitQueue::flush`]), so they are never overtaken by a publish or a replay.
//!
//! Each write waits [`publish::GATHER`] first, so that closes arriving one after another share
//! it, and then, while this node keeps acknowledging links (one in the last [`publish::QUIET`]),
//! for the burst to end, at most [`publish::HOLD`] after the directory's oldest pending link:
//! publishing takes more CPU than acknowledging, and on a small machine running both at once
//! halved the rate a client's burst of small files was acknowledged at (issue 18, measured). A
//! change that waits for the queue ([`CommitQueue::flush`], [`CommitQueue::drain`]), or a queue
//! holding half of `[journal] max_pending_mib`, ends the hold at once. When the grid refuses a
//! write, the task retries with a backoff growing to [`MAX_RETRY_DELAY`]: a link is published at
//! most that long after the grid can take it again, and otherwise within the hold plus one
//! directory write (and the one before it).

mod background;
pub mod journal;
mod publish;
pub mod record;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::grid::budget::BudgetPermit;
use crate::grid::dirnode;
use crate::grid::uri::{Cap, LiteralCap, StorageIndex};
use crate::grid::{Error, Grid};
use journal::{Journal, JournalError};
use record::{LinkBody, LinkRecord, Record};

/// The longest wait between two attempts to publish a directory the grid refused.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How long a change waits for a directory's queue to drain before giving up (grid unreachable).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes counted per link beyond its contents (name, caps, bookkeeping).
const LINK_OVERHEAD: usize = 512;

/// What `[journal]` in lafs.toml sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitSettings {
    /// Files up to this size are acknowledged from the journal, stored on the grid later.
    pub max_file_size: u64,
    /// Closes wait while the links not yet published hold this many bytes.
    pub max_pending_bytes: u64,
}

impl Default for CommitSettings {
    fn default() -> Self {
        CommitSettings {
            max_file_size: 128 << 10,
            max_pending_bytes: 64 << 20,
        }
    }
}

/// What a pending link names: contents still to be stored, or a stored file.
#[derive(Clone)]
pub(crate) enum PendingBody {
    Contents(Bytes),
    Stored(Cap),
}

impl PendingBody {
    /// The cap reads use: a stored file's, or the contents themselves as a literal cap (never
    /// linked anywhere: changes that could copy it wait for the publish first).
    fn cap(&self) -> Cap {
        match self {
            PendingBody::Contents(data) => Cap::Literal(LiteralCap { data: data.to_vec() }),
            PendingBody::Stored(cap) => cap.clone(),
        }
    }

    fn size(&self) -> u64 {
        match self {
            PendingBody::Contents(data) => data.len() as u64,
            PendingBody::Stored(Cap::Chk(chk)) => chk.size,
            PendingBody::Stored(Cap::Literal(lit)) => lit.data.len() as u64,
            PendingBody::Stored(_) => 0,
        }
    }
}

/// One acknowledged link not yet published.
pub(crate) struct Pending {
    pub(crate) name: String,
    pub(crate) body: PendingBody,
    pub(crate) mtime: Option<f64>,
    pub(crate) overwrite: bool,
    /// More metadata keys for the entry (see [`LinkRecord::extra`]).
    pub(crate) extra: serde_json::Map<String, serde_json::Value>,
    /// When it was acknowledged (Unix seconds): its time until published.
    pub(crate) linked_at: f64,
    /// Its share of `[journal] max_pending_mib`, given back once published.
    _bytes: Option<OwnedSemaphorePermit>,
}

/// A pending entry as reads see it.
#[derive(Debug, Clone)]
pub struct PendingEntry {
    /// The file (contents not yet stored read as a literal cap).
    pub cap: Cap,
    /// Its size in bytes.
    pub size: u64,
    /// The user's modification time, else when it was acknowledged.
    pub mtime: f64,
    /// More metadata keys the entry will have.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default)]
struct DirQueue {
    dircap: Option<Cap>,
    /// Everything acknowledged and not yet published, by journal order.
    entries: BTreeMap<u64, Pending>,
    /// The latest pending seq of each name.
    by_name: HashMap<String, u64>,
    publishing: bool,
    drained: Arc<Notify>,
    /// Someone waits for this queue to drain: publish without holding.
    hurry: bool,
    /// Wakes the publishing task from its hold.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    /// Appends sent to the journal and not yet registered.
    appending: usize,
    /// Entries across every directory.
    pending: usize,
    dirs: HashMap<StorageIndex, DirQueue>,
    /// When the last link was registered (acknowledged), in any directory.
    last_registered: Option<tokio::time::Instant>,
}

pub(crate) struct Inner {
    /// The grid the queue publishes to (without a queue of its own).
    pub(crate) grid: Grid,
    journal: Journal,
    state: Mutex<State>,
    pending_bytes: Arc<Semaphore>,
    settings: CommitSettings,
}

/// The queue every frontend's links go through (see the module docs).
#[derive(Clone)]
pub struct CommitQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CommitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommitQueue({} pending)", self.pending_count())
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn journal_error(e: JournalError) -> Error {
    Error::Internal(e.to_string())
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an entry whose record is on disk, and starts its directory's task if idle.
    fn register(self: &Arc<Self>, si: StorageIndex, dircap: &Cap, seq: u64, pending: Pending) {
        let start = {
            let mut state = self.lock();
            state.pending += 1;
            state.last_registered = Some(tokio::time::Instant::now());
            let dir = state.dirs.entry(si).or_default();
            dir.dircap.get_or_insert_with(|| dircap.clone());
            dir.by_name.insert(pending.name.clone(), seq);
            dir.entries.insert(seq, pending);
            !std::mem::replace(&mut dir.publishing, true)
        };
        if start {
            background::spawn(publish::run(self.clone(), si));
        }
    }

    /// Waits before a publish of `si`: [`publish::GATHER`], then while links keep coming (see the
    /// module docs).
    pub(crate) async fn settle(&self, si: StorageIndex) {
        tokio::time::sleep(publish::GATHER).await;
        loop {
            let (wait, wake) = {
                let state = self.lock();
                let Some(dir) = state.dirs.get(&si) else {
                    return;
                };
                let quiet = state.last_registered.map_or(publish::QUIET, |t| t.elapsed());
                let oldest = dir.entries.values().next().map_or(0.0, |p| now() - p.linked_at);
                let held = Duration::try_from_secs_f64(oldest).unwrap_or(Duration::ZERO);
                let half_full = (self.pending_bytes.available_permits() as u64) < self.settings.max_pending_bytes / 2;
                if dir.hurry || half_full || quiet >= publish::QUIET || held >= publish::HOLD {
                    return;
                }
                ((publish::QUIET - quiet).min(publish::HOLD - held), dir.wake.clone())
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = wake.notified() => {}
            }
        }
    }

    /// Ends the hold of `si`'s publishing (someone waits for its queue).
    fn hurry(state: &mut State, si: StorageIndex) {
        if let Some(dir) = state.dirs.get_mut(&si) {
            dir.hurry = true;
            // A stored permit if the task is not waiting yet: it will not wait.
            dir.wake.notify_one();
        }
    }

    /// The entries of `si` now, for a publish: `(seq, name, body, mtime, overwrite)`.
    pub(crate) fn take_batch(&self, si: StorageIndex) -> Option<(Cap, Vec<publish::Link>)> {
        let mut state = self.lock();
        let dir = state.dirs.get_mut(&si)?;
        if dir.entries.is_empty() {
            dir.publishing = false;
            dir.drained.notify_waiters();
            state.dirs.remove(&si);
            return None;
        }
        let dircap = dir.dircap.clone()?;
        let batch = dir
            .entries
            .iter()
            .map(|(&seq, p)| publish::Link {
                seq,
                name: p.name.clone(),
                body: p.body.clone(),
                mtime: p.mtime,
                overwrite: p.overwrite,
                extra: p.extra.clone(),
            })
            .collect();
        Some((dircap, batch))
    }

    /// Remembers the caps a failed publish stored, so the next attempt does not store them again.
    pub(crate) fn keep_stored(&self, si: StorageIndex, batch: &[publish::Link]) {
        let mut state = self.lock();
        if let Some(dir) = state.dirs.get_mut(&si) {
            for link in batch {
                if let (Some(entry), PendingBody::Stored(cap)) = (dir.entries.get_mut(&link.seq), &link.body) {
                    entry.body = PendingBody::Stored(cap.clone());
                }
            }
        }
    }

    /// After a publish: retires `seqs` in the journal (durably), then drops them from the queue.
    pub(crate) async fn retire(&self, si: StorageIndex, seqs: Vec<u64>) {
        let synced = {
            let state = self.lock();
            let nothing_live_after = state.appending == 0 && state.pending == seqs.len();
            self.journal
                .send(record::encode(&Record::Retire(seqs.clone())), nothing_live_after)
        };
        let result = match synced {
            Ok(wait) => wait.await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // The links are published; a replay would only link them again.
            tracing::error!("commit journal: could not retire {} published links: {e}", seqs.len());
        }
        let mut state = self.lock();
        let mut removed = 0;
        if let Some(dir) = state.dirs.get_mut(&si) {
            for seq in &seqs {
                if let Some(entry) = dir.entries.remove(seq) {
                    removed += 1;
                    if dir.by_name.get(&entry.name) == Some(seq) {
                        dir.by_name.remove(&entry.name);
                    }
                }
            }
            dir.drained.notify_waiters();
        }
        state.pending -= removed;
    }

    pub(crate) fn pending_count(&self) -> usize {
        self.lock().pending
    }
}

impl CommitQueue {
    /// Opens the journal in `dir`, puts its unpublished links back in the queue (their
    /// publishes start at once), and returns the queue. Needs a Tokio runtime.
    fn start(grid: Grid, dir: &Path, settings: CommitSettings) -> Result<CommitQueue, JournalError> {
        let (journal, replay) = Journal::open(dir)?;
        let inner = Arc::new(Inner {
            grid,
            journal,
            state: Mutex::default(),
            pending_bytes: Arc::new(Semaphore::new(
                usize::try_from(settings.max_pending_bytes).unwrap_or(Semaphore::MAX_PERMITS),
            )),
            settings,
        });
        let mut replayed = 0;
        let mut next_seq = 0;
        for link in replay {
            next_seq = next_seq.max(link.seq + 1);
            let (Ok(dircap), body) = (Cap::parse(&link.dircap), link.body) else {
                tracing::error!("commit journal: a record names an unreadable directory cap; it is skipped");
                continue;
            };
            let body = match body {
                LinkBody::Contents(data) => PendingBody::Contents(Bytes::from(data)),
                LinkBody::Cap(text) => match Cap::parse(&text) {
                    Ok(cap) => PendingBody::Stored(cap),
                    Err(_) => {
                        tracing::error!("commit journal: a record names an unreadable file cap; it is skipped");
                        continue;
                    }
                },
            };
            let Some(si) = dircap.storage_index() else {
                continue;
            };
            let pending = Pending {
                name: link.name,
                body,
                mtime: link.mtime,
                overwrite: link.overwrite,
                extra: link.extra,
                linked_at: now(),
                _bytes: None,
            };
            inner.register(si, &dircap, link.seq, pending);
            replayed += 1;
        }
        inner.lock().next_seq = next_seq;
        if replayed > 0 {
            tracing::info!("commit journal: replaying {replayed} links not yet published");
        }
        Ok(CommitQueue { inner })
    }

    /// The largest file acknowledged from the journal.
    pub fn max_file_size(&self) -> u64 {
        self.inner.settings.max_file_size
    }

    /// Links acknowledged and not yet published, across the node.
    pub fn pending_count(&self) -> usize {
        self.inner.pending_count()
    }

    /// Journals a link of `body` as `name` in the writable directory `dircap` and returns once
    /// it is on disk and visible to reads (the caller then acknowledges it). `memory`, the
    /// budget held for the contents, is given back: pending contents are bounded by
    /// `max_pending_mib` instead, since publishing them needs budget of its own (holding the
    /// budget while waiting for it could stall every publish). Waits while too many bytes are pending.
    /// `extra` holds metadata keys for the entry besides the mtime (see [`LinkRecord::extra`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn link(
        &self,
        dircap: &Cap,
        name: &str,
        body: PendingBody,
        mtime: Option<f64>,
        extra: serde_json::Map<String, serde_json::Value>,
        overwrite: bool,
        memory: BudgetPermit,
    ) -> Result<(), Error> {
        drop(memory);
        let si = dircap.storage_index().ok_or(Error::UnsupportedCap(dircap.kind()))?;
        let name = dirnode::normalize_name(name);
        let contents_len = match &body {
            PendingBody::Contents(data) => data.len(),
            PendingBody::Stored(_) => 0,
        };
        let cost = (contents_len + LINK_OVERHEAD).min(self.inner.settings.max_pending_bytes as usize);
        let bytes = self
            .inner
            .pending_bytes
            .clone()
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let seq = {
            let mut state = self.inner.lock();
            state.appending += 1;
            let seq = state.next_seq;
            state.next_seq += 1;
            seq
        };
        let record = Record::Link(LinkRecord {
            seq,
            dircap: dircap.to_string(),
            name: name.clone(),
            body: match &body {
                PendingBody::Contents(data) => LinkBody::Contents(data.to_vec()),
                PendingBody::Stored(cap) => LinkBody::Cap(cap.to_string()),
            },
            mtime,
            overwrite,
            extra: extra.clone(),
        });
        let appended = match self.inner.journal.send(record::encode(&record), false) {
            Ok(synced) => synced.await,
            Err(e) => Err(e),
        };
        self.inner.lock().appending -= 1;
        appended.map_err(journal_error)?;
        let pending = Pending {
            name,
            body,
            mtime,
            overwrite,
            extra,
            linked_at: now(),
            _bytes: Some(bytes),
        };
        self.inner.register(si, dircap, seq, pending);
        Ok(())
    }

    /// Changes the metadata of the pending entry `name` of `dircap` (its user mtime and other
    /// keys, through `update`) by journaling its link again with them (the later link wins when
    /// published), so a client setting times or modes after each upload neither waits for the
    /// publish nor costs a directory write of its own. `false` when `name` has nothing pending there.
    pub(crate) async fn update_pending(
        &self,
        dircap: &Cap,
        name: &str,
        update: impl FnOnce(&mut Option<f64>, &mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<bool, Error> {
        let Some(si) = dircap.storage_index() else {
            return Ok(false);
        };
        let name = dirnode::normalize_name(name);
        let (body, mut mtime, mut extra) = {
            let state = self.inner.lock();
            let Some(entry) = state
                .dirs
                .get(&si)
                .and_then(|dir| dir.entries.get(dir.by_name.get(&name)?))
            else {
                return Ok(false);
            };
            (entry.body.clone(), entry.mtime, entry.extra.clone())
        };
        update(&mut mtime, &mut extra);
        self.link(dircap, &name, body, mtime, extra, true, BudgetPermit::empty())
            .await?;
        Ok(true)
    }

    /// The pending entry `name` of the directory `si`, if any.
    pub fn pending(&self, si: StorageIndex, name: &str) -> Option<PendingEntry> {
        let state = self.inner.lock();
        let dir = state.dirs.get(&si)?;
        let entry = dir.entries.get(dir.by_name.get(name)?)?;
        Some(entry_view(entry))
    }

    /// Every pending entry of the directory `si`, by name.
    pub fn pending_in(&self, si: StorageIndex) -> Vec<(String, PendingEntry)> {
        let state = self.inner.lock();
        let Some(dir) = state.dirs.get(&si) else {
            return Vec::new();
        };
        dir.by_name
            .iter()
            .filter_map(|(name, seq)| Some((name.clone(), entry_view(dir.entries.get(seq)?))))
            .collect()
    }

    /// Whether the directory `si` has links not yet published.
    pub fn has_pending(&self, si: StorageIndex) -> bool {
        self.inner.lock().dirs.get(&si).is_some_and(|d| !d.entries.is_empty())
    }

    /// Waits until every link of the directory `si` acknowledged so far is published and retired.
    pub async fn flush(&self, si: StorageIndex) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        let target = {
            let mut state = self.inner.lock();
            let last = match state.dirs.get(&si).and_then(|d| d.entries.keys().next_back()) {
                Some(&last) => last,
                None => return Ok(()),
            };
            Inner::hurry(&mut state, si);
            last
        };
        loop {
            let drained = {
                let state = self.inner.lock();
                match state.dirs.get(&si) {
                    Some(dir) if dir.entries.keys().next().is_some_and(|&first| first <= target) => dir.drained.clone(),
                    _ => return Ok(()),
                }
            };
            let notified = drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-checked after enabling, so a notification in between is not missed.
            let still = {
                let state = self.inner.lock();
                state
                    .dirs
                    .get(&si)
                    .is_some_and(|d| d.entries.keys().next().is_some_and(|&first| first <= target))
            };
            if !still {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::UncoordinatedWrite { storage_index: si });
            }
        }
    }

    /// Waits up to `limit` for everything pending to be published (a clean shutdown); what is
    /// left stays in the journal for the next start.
    pub async fn drain(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        {
            let mut state = self.inner.lock();
            let dirs: Vec<StorageIndex> = state.dirs.keys().copied().collect();
            for si in dirs {
                Inner::hurry(&mut state, si);
            }
        }
        loop {
            let left = self.pending_count();
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn entry_view(entry: &Pending) -> PendingEntry {
    PendingEntry {
        cap: entry.body.cap(),
        size: entry.body.size(),
        mtime: entry.mtime.unwrap_or(entry.linked_at),
        extra: entry.extra.clone(),
    }
}

impl Grid {
    /// This node's commit queue, when serving with a journal.
    pub fn commit_queue(&self) -> Option<CommitQueue> {
        self.commits.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts the commit queue with its journal in `dir` (replaying what it holds): from now on
    /// every clone of this grid acknowledges links from the journal. Needs a Tokio runtime.
    pub fn start_commit_queue(&self, dir: &Path, settings: CommitSettings) -> Result<(), JournalError> {
        let mut own = self.clone();
        own.commits = Arc::default();
        let queue = CommitQueue::start(own, dir, settings)?;
        *self.commits.write().unwrap_or_else(|p| p.into_inner()) = Some(queue);
        Ok(())
    }

    /// Publishes what is pending (waiting up to `limit`), then stops the queue; returns how
    /// many links were left in the journal for the next start.
    pub async fn stop_commit_queue(&self, limit: Duration) -> usize {
        let queue = self.commit_queue();
        let left = match &queue {
            Some(queue) => queue.drain(limit).await,
            None => 0,
        };
        *self.commits.write().unwrap_or_else(|p| p.into_inner()) = None;
        left
    }
}
