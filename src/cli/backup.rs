//! `lafs backup`: Tahoe's backup layout. Each run stores the local tree as immutable
//! directories and links it as `Archives/<UTC time>` and `Latest` under the target; the backup
//! database skips files and directories that have not changed since an earlier run.

mod db;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Map, Value};
use sha2::Digest;

use super::shared::{complain, count_bar, open_path};
use crate::grid::Grid;
use crate::grid::directory::child_for;
use crate::grid::dirnode::{self, Child};
use crate::grid::immutable::upload::KeyChoice;
use crate::grid::uri::Cap;
use crate::node::Node;
use db::{BackupDb, FileState, Known};

/// Files uploaded at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// What a run did, in the words of Tahoe's report.
#[derive(Debug, Default)]
struct Tally {
    files_uploaded: u64,
    files_reused: u64,
    files_skipped: u64,
    directories_created: u64,
    directories_reused: u64,
    directories_skipped: u64,
}

struct Backup {
    grid: Grid,
    db: Arc<Mutex<BackupDb>>,
    excludes: globset::GlobSet,
    tally: Tally,
    bar: Option<indicatif::ProgressBar>,
}

pub(crate) async fn backup(
    dir: &Path,
    from: &Path,
    to: &str,
    excludes: &[String],
    verbose: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if !from.is_dir() {
        bail!("{} is not a directory", from.display());
    }
    // The database knows files by absolute path, whatever directory the run starts in.
    let from = &std::fs::canonicalize(from).with_context(|| format!("cannot resolve {}", from.display()))?;
    let node = Node::open(dir)?;
    let (_, vfs, path) = open_path(dir, to)?;
    let path = path.trim_end_matches('/').to_string();
    // The target and its Archives directory, made when missing.
    for wanted in [path.clone(), format!("{path}/Archives")] {
        if wanted.trim_matches('/').is_empty() {
            continue;
        }
        if vfs.stat(wanted.as_bytes()).await.is_err() {
            vfs.mkdir(wanted.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", super::files::display_path(&format!("{to}/{wanted}"))))?;
        }
    }
    let target = vfs
        .cap_of(path.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", super::files::display_path(to)))?;
    let archives = vfs
        .cap_of(format!("{path}/Archives").as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("Archives: {e}"))?;

    let mut patterns = globset::GlobSetBuilder::new();
    for pattern in excludes {
        patterns.add(globset::Glob::new(pattern).with_context(|| format!("bad --exclude pattern {pattern:?}"))?);
    }
    let db_path = dir.join("private/backupdb.sqlite");
    let db = tokio::task::spawn_blocking(move || BackupDb::open(&db_path)).await??;
    let mut run = Backup {
        grid: node.grid.clone(),
        db: Arc::new(Mutex::new(db)),
        excludes: patterns.build()?,
        tally: Tally::default(),
        bar: count_bar("files backed up"),
    };
    let root_cap = run.directory(from.to_path_buf()).await?;
    let now = archive_name(&node.grid, &archives, &root_cap).await?;
    node.grid.link(&target, "Latest", &root_cap, true, Map::new()).await?;
    if let Some(bar) = &run.bar {
        bar.finish_and_clear();
    }
    let t = &run.tally;
    println!(
        " {} files uploaded ({} reused), {} files skipped, {} directories created ({} reused), {} directories skipped",
        t.files_uploaded,
        t.files_reused,
        t.files_skipped,
        t.directories_created,
        t.directories_reused,
        t.directories_skipped
    );
    if verbose {
        println!(" archived as Archives/{now}");
    }
    let elapsed = started.elapsed().as_secs();
    println!(
        " backup done, elapsed time: {}:{:02}:{:02}",
        elapsed / 3600,
        elapsed / 60 % 60,
        elapsed % 60
    );
    if t.files_skipped > 0 || t.directories_skipped > 0 {
        return Err(super::Incomplete(format!(
            "{} files and {} directories could not be read (see above)",
            t.files_skipped, t.directories_skipped
        ))
        .into());
    }
    Ok(())
}

/// Links the snapshot in Archives under the current UTC time (Tahoe's name); a second run within
/// the same second gets `-2`, `-3`, … rather than replacing the first. Returns the name.
async fn archive_name(grid: &Grid, archives: &Cap, snapshot: &Cap) -> anyhow::Result<String> {
    let stamp = chrono::Utc::now().format("%Y-%m-%d_%H:%M:%SZ").to_string();
    for attempt in 1..100 {
        let name = if attempt == 1 {
            stamp.clone()
        } else {
            format!("{stamp}-{attempt}")
        };
        match grid.link(archives, &name, snapshot, false, Map::new()).await {
            Ok(()) => return Ok(name),
            Err(crate::grid::Error::Directory(crate::grid::directory::DirectoryError::Exists)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("Archives already has 99 snapshots named {stamp}")
}

impl Backup {
    fn problem(&mut self, line: String) {
        complain(self.bar.as_ref(), &line);
    }

    /// Backs up the local directory `local` (everything below it first); returns the cap of its
    /// immutable directory.
    fn directory(&mut self, local: PathBuf) -> futures::future::BoxFuture<'_, anyhow::Result<Cap>> {
        Box::pin(async move {
            let mut entries: Vec<_> = std::fs::read_dir(&local)
                .with_context(|| format!("cannot read {}", local.display()))?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            let mut children: BTreeMap<String, Child> = BTreeMap::new();
            let mut files = Vec::new();
            for entry in entries {
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    self.problem(format!("{}: name is not UTF-8, skipped", path.display()));
                    self.tally.files_skipped += 1;
                    continue;
                };
                if self.excludes.is_match(&name) {
                    continue;
                }
                let meta = match std::fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) => {
                        self.problem(format!("{}: {e}, skipped", path.display()));
                        self.tally.files_skipped += 1;
                        continue;
                    }
                };
                if meta.is_dir() {
                    match self.directory(path.clone()).await {
                        Ok(cap) => {
                            children.insert(name, child_for(&cap, local_metadata(&meta)));
                        }
                        Err(e) => {
                            self.problem(format!("{}: {e:#}, skipped", path.display()));
                            self.tally.directories_skipped += 1;
                        }
                    }
                } else if meta.is_file() {
                    files.push((name, path, meta));
                } else {
                    // Symlinks, sockets, devices: Tahoe's backup skips them too.
                    self.problem(format!("{}: not a regular file, skipped", path.display()));
                    self.tally.files_skipped += 1;
                }
            }
            for (name, cap, meta) in self.files(files).await {
                children.insert(name, child_for(&cap, local_metadata(&meta)));
            }
            let body = dirnode::pack(&children, None);
            let digest = sha2::Sha256::digest(&body).to_vec();
            let key = digest.clone();
            let known = with_db(&self.db, move |db| Ok(db.directory_cap(&key)?)).await?;
            if let Some((cap, checked_now)) = still_good(&self.grid, known).await {
                if checked_now {
                    let key = digest.clone();
                    let recorded = with_db(&self.db, move |db| {
                        Ok(db.directory_checked(&key, crate::grid::directory::now())?)
                    })
                    .await;
                    if let Err(e) = recorded {
                        tracing::warn!("backup database not updated: {e:#}");
                    }
                }
                self.tally.directories_reused += 1;
                return Ok(cap);
            }
            let file_cap = self.grid.upload_bytes(body).await?;
            let cap = Cap::Directory(Box::new(file_cap));
            let text = cap.to_string();
            with_db(&self.db, move |db| {
                Ok(db.record_directory(&digest, &text, crate::grid::directory::now())?)
            })
            .await?;
            self.tally.directories_created += 1;
            Ok(cap)
        })
    }

    /// Uploads the files of one directory that changed since the last run; returns every
    /// file's cap (those that could not be read are left out, and counted as skipped).
    async fn files(
        &mut self,
        files: Vec<(String, PathBuf, std::fs::Metadata)>,
    ) -> Vec<(String, Cap, std::fs::Metadata)> {
        let keys: Vec<(String, FileState)> = files
            .iter()
            .map(|(_, path, meta)| (path.to_string_lossy().into_owned(), state_of(meta)))
            .collect();
        let lookup = keys.clone();
        let known: Vec<Option<Known>> = with_db(&self.db, move |db| {
            lookup
                .iter()
                .map(|(path, state)| Ok(db.file_cap(path, *state)?))
                .collect()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("backup database unreadable, uploading everything: {e:#}");
            vec![None; keys.len()]
        });
        let grid = self.grid.clone();
        let work = files.into_iter().zip(known).map(|((name, path, meta), known)| {
            let grid = grid.clone();
            async move {
                if let Some((cap, checked_now)) = still_good(&grid, known).await {
                    let reused = if checked_now {
                        Stored::CheckedHealthy
                    } else {
                        Stored::Reused
                    };
                    return (name, path, meta, Ok((cap, reused)));
                }
                let result = async {
                    let file = std::fs::File::open(&path)?;
                    let size = file.metadata()?.len();
                    anyhow::Ok((
                        grid.upload(file, size, KeyChoice::Convergent, None).await?,
                        Stored::Uploaded,
                    ))
                }
                .await;
                (name, path, meta, result)
            }
        });
        let results: Vec<_> = futures::stream::iter(work).buffered(UPLOADS_IN_FLIGHT).collect().await;
        let mut done = Vec::new();
        let mut uploads = Vec::new();
        let mut checked = Vec::new();
        for (name, path, meta, result) in results {
            if let Some(bar) = &self.bar {
                bar.inc(1);
            }
            match result {
                Ok((cap, stored)) => {
                    match stored {
                        Stored::Uploaded => {
                            self.tally.files_uploaded += 1;
                            uploads.push((path.to_string_lossy().into_owned(), state_of(&meta), cap.to_string()));
                        }
                        Stored::CheckedHealthy => {
                            self.tally.files_reused += 1;
                            checked.push(path.to_string_lossy().into_owned());
                        }
                        Stored::Reused => self.tally.files_reused += 1,
                    }
                    done.push((name, cap, meta));
                }
                Err(e) => {
                    self.problem(format!("{}: {e:#}, skipped", path.display()));
                    self.tally.files_skipped += 1;
                }
            }
        }
        if !uploads.is_empty() || !checked.is_empty() {
            let recorded = with_db(&self.db, move |db| {
                let now = crate::grid::directory::now();
                db.record_files(&uploads, now)?;
                Ok(db.files_checked(&checked, now)?)
            })
            .await;
            if let Err(e) = recorded {
                // The backup itself is fine; the next run uploads these again (and dedups).
                tracing::warn!("backup database not updated: {e:#}");
            }
        }
        done
    }
}

/// Runs `work` on the backup database off the runtime (SQLite calls block).
async fn with_db<T: Send + 'static>(
    db: &Arc<Mutex<BackupDb>>,
    work: impl FnOnce(&mut BackupDb) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut db = db
            .lock()
            .map_err(|_| anyhow::anyhow!("backup database lock poisoned"))?;
        work(&mut db)
    })
    .await?
}

/// How a file of this run got its cap.
enum Stored {
    Uploaded,
    /// From the database, trusted without a check.
    Reused,
    /// From the database, and checked healthy just now.
    CheckedHealthy,
}

/// The cap an earlier run stored, if it is still good to link: entries due for a check (see
/// [`db::should_check`]) are checked on the grid first, and a cap missing shares is not used, so
/// the caller uploads again (which, with the same convergent key, puts back the lost shares).
/// Returns the cap and whether it was checked just now.
async fn still_good(grid: &Grid, known: Option<Known>) -> Option<(Cap, bool)> {
    let known = known?;
    let cap = Cap::parse(&known.cap).ok()?;
    let roll = u64::from_be_bytes(crate::grid::crypto::random_bytes::<8>()) as f64 / 2f64.powi(64);
    if !db::should_check(crate::grid::directory::now() - known.checked, roll) {
        return Some((cap, false));
    }
    let chk = match &cap {
        Cap::Chk(chk) => chk,
        Cap::Directory(inner) => match inner.as_ref() {
            Cap::Chk(chk) => chk,
            _ => return Some((cap, true)),
        },
        // Literal caps hold their contents: nothing to lose.
        _ => return Some((cap, true)),
    };
    match grid.check(chk, false).await {
        Ok(report) if report.is_healthy() => Some((cap, true)),
        Ok(_) | Err(_) => None,
    }
}

fn state_of(meta: &std::fs::Metadata) -> FileState {
    FileState {
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
    }
}

/// The entry metadata Tahoe's backup stores: the local `mtime` and `ctime`.
fn local_metadata(meta: &std::fs::Metadata) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert(
        "mtime".into(),
        Value::from(meta.mtime() as f64 + meta.mtime_nsec() as f64 / 1e9),
    );
    metadata.insert(
        "ctime".into(),
        Value::from(meta.ctime() as f64 + meta.ctime_nsec() as f64 / 1e9),
    );
    metadata
}
