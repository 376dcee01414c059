//! The drop-upload journal: one SQLite row per local file, with what was uploaded and what is left to do.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

/// What the journal knows about one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The file's path under the watched folder, `/`-separated.
    pub path: String,
    /// Size and modification time (nanoseconds) of the version the state is about.
    pub size: u64,
    /// See `size`.
    pub mtime_ns: i64,
    /// SHA-256 of the contents last uploaded.
    pub hash: Option<Vec<u8>>,
    /// The cap of the contents last uploaded (a secret: never printed).
    pub cap: Option<String>,
    /// Where it is in its upload.
    pub state: State,
    /// Failed attempts since the version last changed.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Unix seconds before which the file is not retried.
    pub next_attempt: f64,
    /// Bumped each time a new version is noted, so an upload of an older one cannot mark it done.
    pub generation: i64,
}

/// Where a file is in its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for its turn (or for the file to be quiet).
    Pending,
    /// Going up now.
    Uploading,
    /// On the grid and linked.
    Done,
    /// The last attempt failed; retried at `next_attempt`.
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Uploading => "uploading",
            State::Done => "done",
            State::Failed => "failed",
        }
    }

    fn parse(text: &str) -> State {
        match text {
            "uploading" => State::Uploading,
            "done" => State::Done,
            "failed" => State::Failed,
            _ => State::Pending,
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A journal error (SQLite's own message: it never contains row values).
#[derive(Debug, thiserror::Error)]
#[error("drop-upload journal: {0}")]
pub struct JournalError(#[from] rusqlite::Error);

/// The journal of one watched folder.
pub struct Journal {
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash BLOB,
    cap TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt REAL NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_due ON files (state, next_attempt);
";

const COLUMNS: &str = "path, size, mtime_ns, hash, cap, state, attempts, last_error, next_attempt, generation";

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        path: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
        mtime_ns: row.get(2)?,
        hash: row.get(3)?,
        cap: row.get(4)?,
        state: State::parse(&row.get::<_, String>(5)?),
        attempts: row.get(6)?,
        last_error: row.get(7)?,
        next_attempt: row.get(8)?,
        generation: row.get(9)?,
    })
}

impl Journal {
    /// Opens (creating) the journal at `path`. Uploads a crash interrupted become pending again.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let db = Connection::open(path)?;
        // WAL: `lafs drop-upload status` reads while the node writes. NORMAL: a commit survives
        // the process being killed (only a power cut can lose the last ones, which are redone).
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        db.execute("UPDATE files SET state = 'pending' WHERE state = 'uploading'", [])?;
        Ok(Journal { db })
    }

    /// Opens an existing journal for reading only (`lafs drop-upload status`).
    pub fn open_read_only(path: &Path) -> Result<Journal, JournalError> {
        let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Journal { db })
    }

    /// The entry for `path`.
    pub fn get(&self, path: &str) -> Result<Option<Entry>, JournalError> {
        let sql = format!("SELECT {COLUMNS} FROM files WHERE path = ?1");
        Ok(self.db.query_row(&sql, [path], entry).optional()?)
    }

    /// Records a new version of `path` to upload (keeps what was uploaded before).
    pub fn mark_pending(&self, path: &str, size: u64, mtime_ns: i64) -> Result<(), JournalError> {
        self.db.execute(
            "INSERT INTO files (path, size, mtime_ns, state, attempts, next_attempt)
             VALUES (?1, ?2, ?3, 'pending', 0, 0)
             ON CONFLICT (path) DO UPDATE SET size = ?2, mtime_ns = ?3, state = 'pending',
                 attempts = 0, last_error = NULL, next_attempt = 0, generation = generation + 1",
            params![path, size as i64, mtime_ns],
        )?;
        Ok(())
    }

    /// Puts `path` off until `next_attempt` without counting a failure (it is still being written).
    pub fn defer(&self, path: &str, next_attempt: f64) -> Result<(), JournalError> {
        self.db.execute(
            "UPDATE files SET state = 'pending', next_attempt = ?2 WHERE path = ?1",
            params![path, next_attempt],
        )?;
        Ok(())
    }

    /// An upload of `path` starts.
    pub fn mark_uploading(&self, path: &str) -> Result<(), JournalError> {
        self.db
            .execute("UPDATE files SET state = 'uploading' WHERE path = ?1", [path])?;
        Ok(())
    }

    /// The version of `path` uploaded from `generation` is on the grid as `cap`. If a newer
    /// version was noted since, that one stays pending.
    pub fn mark_done(
        &self,
        path: &str,
        generation: i64,
        size: u64,
        mtime_ns: i64,
        hash: &[u8],
        cap: &str,
    ) -> Result<(), JournalError> {
        self.db.execute(
            "UPDATE files SET hash = ?5, cap = ?6, attempts = 0, last_error = NULL, next_attempt = 0,
                 size = CASE WHEN generation = ?2 THEN ?3 ELSE size END,
                 mtime_ns = CASE WHEN generation = ?2 THEN ?4 ELSE mtime_ns END,
                 state = CASE WHEN generation = ?2 THEN 'done' ELSE 'pending' END
             WHERE path = ?1",
            params![path, generation, size as i64, mtime_ns, hash, cap],
        )?;
        Ok(())
    }

    /// An attempt failed; the next is at `next_attempt`.
    pub fn mark_failed(&self, path: &str, error: &str, next_attempt: f64) -> Result<(), JournalError> {
        self.db.execute(
            "UPDATE files SET state = 'failed', attempts = attempts + 1, last_error = ?2, next_attempt = ?3
             WHERE path = ?1",
            params![path, error, next_attempt],
        )?;
        Ok(())
    }

    /// Forgets `path`.
    pub fn remove(&self, path: &str) -> Result<(), JournalError> {
        self.db.execute("DELETE FROM files WHERE path = ?1", [path])?;
        Ok(())
    }

    /// Files waiting to go up whose time has come, oldest first.
    pub fn due(&self, now: f64, limit: usize) -> Result<Vec<Entry>, JournalError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM files WHERE state IN ('pending', 'failed') AND next_attempt <= ?1
             ORDER BY next_attempt, path LIMIT ?2"
        );
        let mut statement = self.db.prepare_cached(&sql)?;
        let rows = statement.query_map(params![now, limit as i64], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next waiting file is due (Unix seconds), if any waits.
    pub fn next_due(&self) -> Result<Option<f64>, JournalError> {
        Ok(self.db.query_row(
            "SELECT MIN(next_attempt) FROM files WHERE state IN ('pending', 'failed')",
            [],
            |r| r.get(0),
        )?)
    }

    /// Every entry, by path.
    pub fn all(&self) -> Result<Vec<Entry>, JournalError> {
        let sql = format!("SELECT {COLUMNS} FROM files ORDER BY path");
        let mut statement = self.db.prepare(&sql)?;
        let rows = statement.query_map([], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_goes_pending_uploading_failed_done_and_a_crash_makes_uploading_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let journal = Journal::open(&path).unwrap();
        journal.mark_pending("a/b.txt", 10, 5).unwrap();
        assert_eq!(journal.due(0.0, 10).unwrap().len(), 1);
        journal.mark_uploading("a/b.txt").unwrap();
        assert!(journal.due(1e12, 10).unwrap().is_empty());
        journal.mark_failed("a/b.txt", "grid away", 100.0).unwrap();
        assert!(journal.due(99.0, 10).unwrap().is_empty());
        assert_eq!(journal.next_due().unwrap(), Some(100.0));
        let failed = journal.due(100.0, 10).unwrap().remove(0);
        assert_eq!((failed.state, failed.attempts), (State::Failed, 1));
        assert_eq!(failed.last_error.as_deref(), Some("grid away"));
        journal.mark_uploading("a/b.txt").unwrap();
        drop(journal);
        // A crash while uploading: on open the file is pending again.
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.get("a/b.txt").unwrap().unwrap().state, State::Pending);
        let generation = journal.get("a/b.txt").unwrap().unwrap().generation;
        // A newer version noted while the old one went up stays pending.
        journal.mark_pending("a/b.txt", 12, 6).unwrap();
        journal
            .mark_done("a/b.txt", generation, 10, 5, &[1; 32], "URI:LIT:x")
            .unwrap();
        let newer = journal.get("a/b.txt").unwrap().unwrap();
        assert_eq!(
            (newer.state, newer.size, newer.cap.as_deref()),
            (State::Pending, 12, Some("URI:LIT:x"))
        );
        journal
            .mark_done("a/b.txt", newer.generation, 10, 5, &[1; 32], "URI:LIT:x")
            .unwrap();
        let done = journal.get("a/b.txt").unwrap().unwrap();
        assert_eq!(
            (done.state, done.attempts, done.cap.as_deref()),
            (State::Done, 0, Some("URI:LIT:x"))
        );
        assert_eq!(journal.next_due().unwrap(), None);
        let reader = Journal::open_read_only(&path).unwrap();
        assert_eq!(reader.all().unwrap(), vec![done]);
        journal.remove("a/b.txt").unwrap();
        assert!(journal.all().unwrap().is_empty());
    }
}
