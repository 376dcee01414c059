//! Drop-upload: files closed in (or moved into) a watched local folder go to a grid directory,
//! recorded in a journal so that a crash, a restart or a grid outage loses nothing and sends
//! nothing twice.
//!
//! Triggers are inotify's "closed after writing" and "moved in" (never "created" or "modified":
//! a file still open for writing is not touched), plus a full scan against the journal at start
//! and whenever the kernel's event queue overflowed. A file is uploaded once it has been quiet for
//! `settle`; if it changes while it goes up, it waits and goes again. Failures are retried with
//! exponential backoff until they succeed.

mod ignore;
mod journal;
mod scheduler;

use std::collections::HashSet;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use ignore::{DEFAULT_IGNORE, IgnoreRules};
pub use journal::{Entry, Journal, JournalError, State};
use scheduler::{Scheduler, parent_of, retry_delay};

use crate::frontends::accounts::AccountsFile;
use crate::grid::Grid;
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind, Vfs};

/// Uploads running at once per folder.
const PARALLEL_UPLOADS: usize = 4;

/// What happens on the grid when a local file is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    /// The grid keeps it.
    Ignore,
    /// It is unlinked from the target directory too.
    Unlink,
}

/// Where a folder's files go.
#[derive(Clone)]
pub enum Target {
    /// A directory write cap.
    Cap(Cap),
    /// A directory under an account's root (created if missing).
    Account {
        /// The account's user name.
        user: String,
        /// A `/`-separated path under the account's root ("" for the root itself).
        path: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The cap is a secret.
            Target::Cap(_) => f.write_str("Target::Cap(..)"),
            Target::Account { user, path } => write!(f, "Target::Account({user}:{path})"),
        }
    }
}

/// One watched folder, as configured.
#[derive(Debug, Clone)]
pub struct DropFolder {
    /// Its name in logs and `lafs drop-upload status`.
    pub name: String,
    /// The local folder.
    pub local_dir: PathBuf,
    /// The grid directory.
    pub target: Target,
    /// Names and paths that stay local.
    pub ignore: IgnoreRules,
    /// Whether subdirectories are watched (and become directories on the grid).
    pub recursive: bool,
    /// What a local deletion does on the grid.
    pub on_delete: OnDelete,
    /// How long a file must be quiet before it goes up.
    pub settle: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    /// The SQLite journal.
    pub journal: PathBuf,
}

/// Why a folder cannot be served at all.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields are named by the messages
pub enum DropUploadError {
    /// The target account does not exist.
    #[error("drop-upload {folder}: account {user:?} is not in the accounts file")]
    UnknownAccount { folder: String, user: String },
    /// The target is not a directory that can be written.
    #[error("drop-upload {folder}: the target is not a writable directory")]
    BadTarget { folder: String },
    /// The journal cannot be opened.
    #[error("drop-upload {folder}: {source}")]
    Journal { folder: String, source: JournalError },
    /// The folder cannot be watched (inotify limits, a missing folder).
    #[error("drop-upload {folder}: cannot watch {}: {source}", dir.display())]
    Watch {
        folder: String,
        dir: PathBuf,
        source: notify::Error,
    },
    /// A local file-system failure.
    #[error("drop-upload {folder}: {context}: {source}")]
    Io {
        folder: String,
        context: String,
        source: std::io::Error,
    },
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Size and modification time of a local file, as the journal compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime_ns: i64,
}

impl Version {
    fn of(metadata: &std::fs::Metadata) -> Version {
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        Version {
            size: metadata.len(),
            mtime_ns,
        }
    }

    fn mtime_secs(self) -> f64 {
        self.mtime_ns as f64 / 1e9
    }
}

/// A file stored on the grid, waiting to be linked with the others of its directory.
struct Ready {
    relative: String,
    generation: i64,
    version: Version,
    hash: Vec<u8>,
    cap: Cap,
    seconds: f64,
    /// False when the contents were already on the grid (only the time changed).
    sent: bool,
}

/// A directory write that finished: the directory, its files, and the names refused or the error.
type LinkedBatch = (String, Vec<Ready>, Result<Vec<String>, String>);

/// How one upload attempt ended.
enum Outcome {
    Uploaded(Ready),
    /// Still being written: try again at this time (Unix seconds); not a failure.
    Deferred(f64),
    /// The local file is gone.
    Gone,
    Failed(String),
}

/// What every upload of a folder shares.
struct Context {
    folder: DropFolder,
    vfs: Vfs,
    journal: Mutex<Journal>,
    /// Grid directories known to exist (relative paths).
    made_dirs: Mutex<HashSet<String>>,
}

impl Context {
    fn journal<T>(&self, f: impl FnOnce(&Journal) -> Result<T, JournalError>) -> Option<T> {
        let journal = match self.journal.lock() {
            Ok(journal) => journal,
            Err(poisoned) => poisoned.into_inner(),
        };
        match f(&journal) {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::error!(folder = %self.folder.name, "{e}");
                None
            }
        }
    }

    /// The path of `full` under the folder, `/`-separated, if it is one we upload.
    fn relative(&self, full: &Path) -> Option<String> {
        let relative = full.strip_prefix(&self.folder.local_dir).ok()?;
        if relative.as_os_str().is_empty() || self.folder.ignore.is_ignored(relative) {
            return None;
        }
        if !self.folder.recursive && relative.components().count() > 1 {
            return None;
        }
        let text = relative.to_str().or_else(|| {
            tracing::warn!(folder = %self.folder.name, path = %relative.display(), "skipped: the name is not UTF-8");
            None
        })?;
        Some(text.to_string())
    }

    /// Records `relative` as pending unless the journal already has this version.
    fn note_file(&self, relative: &str, metadata: &std::fs::Metadata) {
        let version = Version::of(metadata);
        let known = self.journal(|j| j.get(relative)).flatten();
        let unchanged = known.is_some_and(|e| {
            matches!(e.state, State::Done) && e.size == version.size && e.mtime_ns == version.mtime_ns
        });
        if !unchanged {
            self.journal(|j| j.mark_pending(relative, version.size, version.mtime_ns));
        }
    }

    /// Compares the files under `dir` with the journal; with `whole`, journal entries whose file
    /// is gone are treated as deleted.
    fn scan(&self, dir: &Path, whole: bool) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(folder = %self.folder.name, dir = %dir.display(), "cannot scan: {e}");
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(relative) = self.relative(&path) else {
                    continue;
                };
                let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if metadata.is_dir() {
                    if self.folder.recursive {
                        stack.push(path);
                    }
                } else if metadata.is_file() {
                    self.note_file(&relative, &metadata);
                    seen.insert(relative);
                }
            }
        }
        if !whole {
            return Vec::new();
        }
        let known = self.journal(|j| j.all()).unwrap_or_default();
        known
            .into_iter()
            .map(|e| e.path)
            .filter(|p| !seen.contains(p))
            .collect()
    }

    /// Creates the grid directories `relative` is in.
    async fn make_parents(&self, relative: &str) -> Result<(), vfs::Error> {
        for dir in dir_prefixes(parent_of(relative)) {
            if self.made_dirs.lock().is_ok_and(|made| made.contains(dir)) {
                continue;
            }
            ensure_dir(&self.vfs, dir).await?;
            if let Ok(mut made) = self.made_dirs.lock() {
                made.insert(dir.to_string());
            }
        }
        Ok(())
    }

    /// One attempt at `entry`.
    async fn upload(self: Arc<Self>, entry: Entry) -> Outcome {
        let full = self.folder.local_dir.join(&entry.path);
        let before = match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_file() => Version::of(&m),
            Ok(_) => return Outcome::Gone,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Gone,
            Err(e) => return Outcome::Failed(format!("cannot read the local file: {e}")),
        };
        let quiet_since = before.mtime_secs() + self.folder.settle.as_secs_f64();
        if quiet_since > now_secs() {
            return Outcome::Deferred(quiet_since);
        }
        let started = Instant::now();
        let hash_of = full.clone();
        let hash = match tokio::task::spawn_blocking(move || hash_file(&hash_of)).await {
            Ok(Ok(hash)) => hash,
            Ok(Err(e)) => return Outcome::Failed(format!("cannot read the local file: {e}")),
            Err(e) => return Outcome::Failed(format!("hashing stopped: {e}")),
        };
        let known_cap = match (&entry.hash, &entry.cap) {
            (Some(known), Some(cap)) if *known == hash => Cap::parse(cap).ok(),
            _ => None,
        };
        let sent = known_cap.is_none();
        let cap = match known_cap {
            Some(cap) => cap,
            None => {
                let file = match std::fs::File::open(&full) {
                    Ok(file) => file,
                    Err(e) => return Outcome::Failed(format!("cannot read the local file: {e}")),
                };
                match self.vfs.upload(file, before.size).await {
                    Ok(cap) => cap,
                    Err(e) => return Outcome::Failed(e.to_string()),
                }
            }
        };
        match std::fs::symlink_metadata(&full) {
            Ok(m) if Version::of(&m) == before => {}
            // Changed while it went up: the new version gets its own turn once quiet.
            Ok(_) => return Outcome::Deferred(now_secs() + self.folder.settle.as_secs_f64()),
            Err(_) => return Outcome::Gone,
        }
        Outcome::Uploaded(Ready {
            relative: entry.path,
            generation: entry.generation,
            version: before,
            hash,
            cap,
            seconds: started.elapsed().as_secs_f64(),
            sent,
        })
    }

    /// Links a batch of stored files of one directory in one directory write. Returns the names
    /// a grid directory is in the way of.
    async fn link(&self, parent: &str, batch: &[Ready]) -> Result<Vec<String>, vfs::Error> {
        if let Some(first) = batch.first() {
            self.make_parents(&first.relative).await?;
        }
        let entries: Vec<(String, Cap, f64)> = batch
            .iter()
            .map(|r| {
                (
                    file_name(&r.relative).to_string(),
                    r.cap.clone(),
                    r.version.mtime_secs(),
                )
            })
            .collect();
        let refused = self.vfs.link_files(parent.as_bytes(), &entries).await?;
        tracing::debug!(folder = %self.folder.name, files = entries.len(), "one directory write");
        Ok(refused)
    }

    /// Records a failed attempt and when to retry.
    fn fail(&self, relative: &str, error: &str) {
        let attempts = self.journal(|j| j.get(relative)).flatten().map_or(0, |e| e.attempts);
        let wait = retry_delay(attempts, self.folder.retry_max);
        self.journal(|j| j.mark_failed(relative, error, now_secs() + wait.as_secs_f64()));
        tracing::warn!(
            folder = %self.folder.name,
            path = relative,
            attempt = attempts + 1,
            retry_in = wait.as_secs_f64(),
            "upload failed: {error}"
        );
    }

    /// The local file `relative` is gone.
    async fn forget(&self, relative: &str) {
        if self.folder.on_delete == OnDelete::Unlink {
            let uploaded = self
                .journal(|j| j.get(relative))
                .flatten()
                .is_some_and(|e| e.cap.is_some());
            if uploaded {
                match self.vfs.remove(relative.as_bytes()).await {
                    Ok(()) => tracing::info!(folder = %self.folder.name, path = relative, "unlinked"),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(folder = %self.folder.name, path = relative, "cannot unlink: {e}");
                        return;
                    }
                }
            }
        }
        self.journal(|j| j.remove(relative));
    }
}

/// `a`, `a/b`, `a/b/c` for `a/b/c` (nothing for ""): the directories to create, outermost first.
fn dir_prefixes(dir: &str) -> impl Iterator<Item = &str> {
    dir.match_indices('/')
        .map(move |(end, _)| &dir[..end])
        .chain((!dir.is_empty()).then_some(dir))
        .filter(|prefix| !prefix.is_empty() && !prefix.ends_with('/'))
}

/// Creates the directory at `path` unless it exists.
async fn ensure_dir(vfs: &Vfs, path: &str) -> Result<(), vfs::Error> {
    match vfs.mkdir(path.as_bytes()).await {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

fn file_name(relative: &str) -> &str {
    relative.rsplit_once('/').map_or(relative, |(_, name)| name)
}

fn hash_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        hasher.update(&buf[..n]);
    }
}

/// The directory the folder's files go to.
async fn resolve_target(folder: &DropFolder, grid: &Grid, accounts: &AccountsFile) -> Result<Vfs, DropUploadError> {
    let bad_target = || DropUploadError::BadTarget {
        folder: folder.name.clone(),
    };
    let cap = match &folder.target {
        Target::Cap(cap) => cap.clone(),
        Target::Account { user, path } => {
            let root = accounts.current().get(user).map(|a| a.root.clone()).ok_or_else(|| {
                DropUploadError::UnknownAccount {
                    folder: folder.name.clone(),
                    user: user.clone(),
                }
            })?;
            let account = Vfs::new(grid.clone(), root.clone());
            let path = path.trim_matches('/');
            for dir in dir_prefixes(path) {
                loop {
                    match ensure_dir(&account, dir).await {
                        Ok(()) => break,
                        Err(e) if e.kind() == ErrorKind::Transient => {
                            tracing::warn!(folder = %folder.name, "target not reachable yet, retrying: {e}");
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        Err(_) => return Err(bad_target()),
                    }
                }
            }
            if path.is_empty() {
                root
            } else {
                account.cap_of(path.as_bytes()).await.map_err(|_| bad_target())?
            }
        }
    };
    let vfs = Vfs::new(grid.clone(), cap);
    if vfs.is_read_only() {
        return Err(bad_target());
    }
    Ok(vfs)
}

/// Events from the watched folder.
type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// Makes the folder and the journal's directory, opens the journal and starts watching.
fn open_folder(folder: &DropFolder) -> Result<(Journal, notify::RecommendedWatcher, Events), DropUploadError> {
    let name = &folder.name;
    let io_error = |context: String| {
        let folder = name.clone();
        move |source| DropUploadError::Io {
            folder,
            context,
            source,
        }
    };
    std::fs::create_dir_all(&folder.local_dir).map_err(io_error(format!("creating {}", folder.local_dir.display())))?;
    if let Some(parent) = folder.journal.parent() {
        // The journal holds caps: only the node's user may read it.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io_error(format!("creating {}", parent.display())))?;
    }
    let journal = Journal::open(&folder.journal).map_err(|source| DropUploadError::Journal {
        folder: name.clone(),
        source,
    })?;
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    })
    .map_err(|source| DropUploadError::Watch {
        folder: name.clone(),
        dir: folder.local_dir.clone(),
        source,
    })?;
    let mode = if folder.recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher
        .watch(&folder.local_dir, mode)
        .map_err(|source| DropUploadError::Watch {
            folder: name.clone(),
            dir: folder.local_dir.clone(),
            source,
        })?;
    Ok((journal, watcher, events))
}

/// Watches `folder` and uploads its files until `shutdown` completes.
pub async fn run(
    folder: DropFolder,
    grid: Grid,
    accounts: Arc<AccountsFile>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DropUploadError> {
    let name = folder.name.clone();
    let (journal, watcher, mut events) = open_folder(&folder)?;
    // Making an account's target retries while the grid is down, for as long as that lasts:
    // a shutdown meanwhile ends the wait (nothing was queued yet that could be lost).
    tokio::pin!(shutdown);
    let vfs = tokio::select! {
        resolved = resolve_target(&folder, &grid, &accounts) => resolved?,
        () = &mut shutdown => {
            tracing::info!(folder = %name, "stopped before its target could be reached");
            return Ok(());
        }
    };
    let context = Arc::new(Context {
        folder,
        vfs,
        journal: Mutex::new(journal),
        made_dirs: Mutex::new(HashSet::new()),
    });
    tracing::info!(folder = %name, dir = %context.folder.local_dir.display(), "drop-upload watching");

    let mut scheduler: Scheduler<Ready> = Scheduler::new(context.folder.settle, PARALLEL_UPLOADS);
    let mut uploads: JoinSet<(String, Outcome)> = JoinSet::new();
    let mut links: JoinSet<LinkedBatch> = JoinSet::new();
    loop {
        if scheduler.take_rescan() {
            let scanner = context.clone();
            let dir = context.folder.local_dir.clone();
            let gone = tokio::task::spawn_blocking(move || scanner.scan(&dir, true))
                .await
                .unwrap_or_default();
            for relative in gone {
                if !scheduler.is_busy(&relative) {
                    context.forget(&relative).await;
                }
            }
        }
        // Files quiet long enough join the journal's queue.
        for path in scheduler.take_settled(Instant::now()) {
            let Some(relative) = context.relative(&path) else {
                continue;
            };
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => context.note_file(&relative, &m),
                Ok(m) if m.is_dir() && context.folder.recursive => {
                    context.scan(&path, false);
                }
                _ => {}
            }
        }
        // Write the directories that have files waiting and are not being written.
        for (parent, batch) in scheduler.start_links() {
            let linker = context.clone();
            links.spawn(async move {
                let batch: Vec<Ready> = batch.into_iter().map(|(_, stored)| stored).collect();
                let result = linker.link(&parent, &batch).await.map_err(|e| e.to_string());
                (parent, batch, result)
            });
        }
        // Start what is due.
        let due = |limit| context.journal(|j| j.due(now_secs(), limit)).unwrap_or_default();
        for entry in scheduler.start_uploads(due, |e: &Entry| e.path.as_str()) {
            context.journal(|j| j.mark_uploading(&entry.path));
            let worker = context.clone();
            uploads.spawn(async move {
                let path = entry.path.clone();
                (path, worker.upload(entry).await)
            });
        }
        // Sleep until something can happen.
        let journal_due_in = || {
            let at = context.journal(|j| j.next_due()).flatten()?;
            Duration::try_from_secs_f64((at - now_secs()).max(0.0)).ok()
        };
        let wake = scheduler.next_wake(Instant::now(), journal_due_in);
        tokio::select! {
            () = &mut shutdown => break,
            Some(event) = events.recv() => {
                handle_event(&context, event, &mut scheduler).await;
                // Take whatever else is queued before looking at the journal again.
                while let Ok(event) = events.try_recv() {
                    handle_event(&context, event, &mut scheduler).await;
                }
            }
            Some(finished) = uploads.join_next(), if !uploads.is_empty() => match finished {
                Ok((relative, Outcome::Uploaded(stored))) => scheduler.upload_ended(relative, Some(stored)),
                Ok((relative, other)) => {
                    scheduler.upload_ended(relative.clone(), None);
                    finish(&context, &relative, other).await;
                }
                Err(_) => scheduler.upload_lost(),
            },
            Some(linked) = links.join_next(), if !links.is_empty() => {
                if let Ok((parent, batch, result)) = linked {
                    scheduler.link_ended(&parent);
                    for stored in batch {
                        linked_one(&context, stored, &result);
                    }
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    // Unfinished uploads are cut off; the journal has them as uploading, which the next start
    // turns back into pending.
    let cut_off = scheduler.shut_down();
    tracing::debug!(folder = %name, uploads = cut_off.len(), "stopped; unfinished uploads resume at the next start");
    uploads.abort_all();
    links.abort_all();
    drop(watcher);
    Ok(())
}

async fn handle_event(context: &Context, event: notify::Result<notify::Event>, scheduler: &mut Scheduler<Ready>) {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(folder = %context.folder.name, "watch error, rescanning: {e}");
            scheduler.request_rescan();
            return;
        }
    };
    for path in scheduler.on_event(&event, Instant::now()) {
        gone(context, &path, scheduler).await;
    }
}

async fn gone(context: &Context, path: &Path, scheduler: &Scheduler<Ready>) {
    if path.exists() {
        return;
    }
    if let Some(relative) = context.relative(path)
        && !scheduler.is_busy(&relative)
        && context.journal(|j| j.get(&relative)).flatten().is_some()
    {
        context.forget(&relative).await;
    }
}

/// Records how a link of `stored` went.
fn linked_one(context: &Context, stored: Ready, result: &Result<Vec<String>, String>) {
    let name = file_name(&stored.relative);
    match result {
        Ok(refused) if refused.iter().any(|r| r == name) => {
            context.fail(&stored.relative, "a directory on the grid has this name");
        }
        Ok(_) => {
            let cap = stored.cap.to_string();
            let version = stored.version;
            context.journal(|j| {
                j.mark_done(
                    &stored.relative,
                    stored.generation,
                    version.size,
                    version.mtime_ns,
                    &stored.hash,
                    &cap,
                )
            });
            let folder = &context.folder.name;
            if stored.sent {
                tracing::info!(folder = %folder, path = stored.relative, size = version.size, seconds = stored.seconds, "uploaded");
            } else {
                tracing::info!(folder = %folder, path = stored.relative, "unchanged contents, relinked");
            }
        }
        Err(error) => context.fail(&stored.relative, error),
    }
}

async fn finish(context: &Context, relative: &str, outcome: Outcome) {
    match outcome {
        // Handled by the caller: it waits for its directory write.
        Outcome::Uploaded(_) => {}
        Outcome::Deferred(at) => {
            context.journal(|j| j.defer(relative, at));
        }
        Outcome::Gone => context.forget(relative).await,
        Outcome::Failed(error) => context.fail(relative, &error),
    }
}

/// A summary of a folder's journal for `lafs drop-upload status`.
pub fn status_report(name: &str, journal: &Journal) -> Result<String, JournalError> {
    use std::fmt::Write;
    let entries = journal.all()?;
    let count = |state: State| entries.iter().filter(|e| e.state == state).count();
    let mut out = format!(
        "{name}: {} pending, {} uploading, {} done, {} failed\n",
        count(State::Pending),
        count(State::Uploading),
        count(State::Done),
        count(State::Failed)
    );
    let now = now_secs();
    for entry in &entries {
        let _ = write!(
            out,
            "  {:<9} {} ({} bytes)",
            entry.state.to_string(),
            entry.path,
            entry.size
        );
        if entry.state == State::Failed {
            let _ = write!(
                out,
                ", {} attempts, next in {:.0} s: {}",
                entry.attempts,
                (entry.next_attempt - now).max(0.0),
                entry.last_error.as_deref().unwrap_or("")
            );
        }
        out.push('\n');
    }
    Ok(out)
}
