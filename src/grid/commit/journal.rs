//! The commit journal's file: records appended by many closes at once share one `fdatasync` (group commit), on a thread of its own.
//!
//! The file is `<dir>/log` (mode 0600, in a 0700 directory: it holds write caps and file
//! contents), locked through `<dir>/lock` so two nodes never share it. Opening it reads the
//! records back, keeps the links not yet retired, and rewrites the file with only those (so a
//! torn tail is gone before anything is appended after it).
//!
//! Past its records the file holds written zeros, [`PREALLOCATE`] at a time: an append then
//! overwrites blocks that exist, so its `fdatasync` flushes data only and does not wait for the
//! filesystem's journal, which the storage servers keep busy with new share files (measured:
//! the difference between acknowledging a small file in a fraction of a millisecond and in
//! several while uploads run).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};

use super::record::{self, CorruptJournal, LinkRecord, MAGIC};

/// Once every record is retired, a journal longer than this is emptied (else it keeps growing
/// by each retired record until the next start).
const RESET_LEN: u64 = 16 << 20;
/// At most this many appends share one sync (their acknowledgements wait for it).
const MAX_GROUP: usize = 1024;
/// The zeros written ahead of the records each time they reach the file's end.
const PREALLOCATE: u64 = 4 << 20;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing the journal failed.
    #[error("commit journal {path}: {context}: {source}")]
    Io {
        /// the file or directory
        path: PathBuf,
        /// what was being done
        context: &'static str,
        /// the cause
        source: std::io::Error,
    },
    /// Another process has the journal open.
    #[error("commit journal {0} is in use by another process (is another `lafs run` serving this node?)")]
    Locked(PathBuf),
    /// The journal holds a corrupt record: nothing was replayed (move the file aside to start
    /// without it, losing the links it held).
    #[error("commit journal {path}: {source}")]
    Corrupt {
        /// the file
        path: PathBuf,
        /// what is wrong
        source: CorruptJournal,
    },
    /// An append failed earlier, so the file's end is uncertain: nothing more is acknowledged.
    #[error("commit journal is unusable after a failed write; restart the node")]
    Broken,
}

struct Append {
    bytes: Vec<u8>,
    /// Set on a retirement that leaves nothing live: the file may then be emptied.
    nothing_live_after: bool,
    done: oneshot::Sender<Result<(), String>>,
}

/// An open journal: appends return once their bytes are synced to disk.
#[derive(Debug)]
pub struct Journal {
    sender: mpsc::UnboundedSender<Append>,
}

fn io_error<'a>(path: &'a Path, context: &'static str) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        context,
        source,
    }
}

/// Syncs a directory, so a rename or a new file in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "sync the directory"))
}

impl Journal {
    /// Opens (creating as needed) the journal in `dir`; returns it and the links to replay, in order.
    pub fn open(dir: &Path) -> Result<(Journal, Vec<LinkRecord>), JournalError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_error(dir, "create the directory"))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(&lock_path, "open the lock file"))?;
        if lock.try_lock().is_err() {
            return Err(JournalError::Locked(dir.to_path_buf()));
        }
        let path = dir.join("log");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(&path, "read")(e)),
        };
        let decoded = record::decode_log(&bytes).map_err(|source| JournalError::Corrupt {
            path: path.clone(),
            source,
        })?;
        if decoded.torn_tail {
            tracing::warn!(
                "commit journal: ignored a torn last record ({} bytes; it was never acknowledged)",
                bytes.len() - decoded.valid_len
            );
        }
        let live = record::unretired(decoded.records);
        // Rewrite with only the live links: replaced in one rename, so a crash here loses nothing.
        let fresh = dir.join("log.new");
        let mut compacted = MAGIC.to_vec();
        for link in &live {
            compacted.extend(record::encode(&record::Record::Link(link.clone())));
        }
        {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&fresh)
                .map_err(io_error(&fresh, "create"))?;
            file.write_all(&compacted).map_err(io_error(&fresh, "write"))?;
            write_zeros(&file, compacted.len() as u64, PREALLOCATE).map_err(io_error(&fresh, "preallocate"))?;
            file.sync_all().map_err(io_error(&fresh, "sync"))?;
        }
        fs::rename(&fresh, &path).map_err(io_error(&path, "replace"))?;
        sync_dir(dir)?;
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_error(&path, "open for writing"))?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let end = Ends {
            records: compacted.len() as u64,
            file: compacted.len() as u64 + PREALLOCATE,
        };
        std::thread::Builder::new()
            .name("commit-journal".into())
            .spawn(move || write_loop(file, end, receiver, lock))
            .map_err(io_error(dir, "start the journal thread"))?;
        Ok((Journal { sender }, live))
    }

    /// Appends `bytes` (whole encoded records) and returns once they are on disk.
    pub async fn append(&self, bytes: Vec<u8>) -> Result<(), JournalError> {
        self.send(bytes, false)?.await
    }

    /// Queues `bytes` now (so what is sent later lands after them) and returns the wait for
    /// their sync. `nothing_live_after`: no record in the journal is live once these are written.
    pub fn send(
        &self,
        bytes: Vec<u8>,
        nothing_live_after: bool,
    ) -> Result<impl Future<Output = Result<(), JournalError>> + use<>, JournalError> {
        let (done, synced) = oneshot::channel();
        self.sender
            .send(Append {
                bytes,
                nothing_live_after,
                done,
            })
            .map_err(|_| JournalError::Broken)?;
        Ok(async move {
            match synced.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => {
                    tracing::error!("commit journal: {why}");
                    Err(JournalError::Broken)
                }
                Err(_) => Err(JournalError::Broken),
            }
        })
    }
}

/// Where the records end, and the preallocated zeros after them.
struct Ends {
    records: u64,
    file: u64,
}

/// Writes `len` zero bytes at `offset`.
fn write_zeros(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = (offset + len - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

/// Writes `group` at the records' end (first growing the zeros ahead of them if it does not fit)
/// and syncs.
fn write_group(file: &File, end: &mut Ends, group: &[Append]) -> std::io::Result<()> {
    let bytes: Vec<u8> = group.iter().flat_map(|a| a.bytes.iter().copied()).collect();
    let needed = end.records + bytes.len() as u64;
    if needed > end.file {
        let grown = needed + PREALLOCATE;
        write_zeros(file, end.file, grown - end.file)?;
        end.file = grown;
    }
    file.write_all_at(&bytes, end.records)?;
    file.sync_data()?;
    end.records = needed;
    Ok(())
}

/// Writes what is queued, syncs once, answers everyone in that group; repeats until every
/// sender is gone. After a failed write the file's end is uncertain, so it refuses everything.
fn write_loop(file: File, mut end: Ends, mut receiver: mpsc::UnboundedReceiver<Append>, _lock: File) {
    let mut broken = false;
    while let Some(first) = receiver.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let result = if broken {
            Err("an earlier write failed".to_string())
        } else {
            match write_group(&file, &mut end, &group) {
                Ok(()) => Ok(()),
                Err(e) => {
                    // Zero what may have been written, so what follows is not read as corrupt.
                    let len = group.iter().map(|a| a.bytes.len() as u64).sum::<u64>();
                    broken = write_zeros(&file, end.records, len)
                        .and_then(|()| file.sync_data())
                        .is_err();
                    Err(format!("append failed: {e}"))
                }
            }
        };
        let empty_now = group.last().is_some_and(|a| a.nothing_live_after);
        if result.is_ok() && empty_now && end.records > RESET_LEN {
            // Emptied by cutting the file back to its header; the next append preallocates again.
            let header = MAGIC.len() as u64;
            match file.set_len(header).and_then(|()| file.sync_data()) {
                Ok(()) => {
                    end = Ends {
                        records: header,
                        file: header,
                    }
                }
                Err(e) => tracing::warn!("commit journal: could not empty it: {e}"),
            }
        }
        for append in group {
            let _ = append.done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::commit::record::{LinkBody, Record, encode};

    fn link(seq: u64) -> Record {
        Record::Link(LinkRecord {
            seq,
            dircap: "URI:DIR2:a:b".into(),
            name: format!("f{seq}"),
            body: LinkBody::Contents(vec![seq as u8; 100]),
            mtime: None,
            overwrite: true,
            extra: serde_json::Map::new(),
        })
    }

    #[tokio::test]
    async fn appended_links_come_back_unless_retired_and_the_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let (journal, live) = Journal::open(&path).unwrap();
            assert!(live.is_empty());
            assert!(matches!(Journal::open(&path), Err(JournalError::Locked(_))));
            let appends = (1..=5).map(|seq| journal.append(encode(&link(seq))));
            for result in futures::future::join_all(appends).await {
                result.unwrap();
            }
            journal.append(encode(&Record::Retire(vec![2, 4]))).await.unwrap();
        }
        // The journal thread lets go of the lock once the last sender is gone.
        let reopened = loop {
            match Journal::open(&path) {
                Err(JournalError::Locked(_)) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                other => break other.unwrap(),
            }
        };
        let seqs: Vec<u64> = reopened.1.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 3, 5]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join("log")), 0o600);
    }

    #[test]
    fn a_corrupt_journal_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend(encode(&link(1)));
        let second = bytes.len();
        bytes.extend(encode(&link(2)));
        bytes[second + 20] ^= 0xff;
        bytes.extend(encode(&link(3)));
        fs::write(dir.path().join("log"), &bytes).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
        assert_eq!(fs::read(dir.path().join("log")).unwrap(), bytes);
    }
}
