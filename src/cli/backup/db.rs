//! The backup database (`private/backupdb.sqlite`): what each local file was last uploaded as,
//! and which immutable directories exist already, so unchanged files and directories are not
//! uploaded again.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// A local file as `stat` saw it: a change to any of these means "upload again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    /// Bytes.
    pub size: u64,
    /// Modification time in nanoseconds.
    pub mtime_ns: i64,
    /// Status change time in nanoseconds.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

/// Why the database failed.
#[derive(Debug, thiserror::Error)]
#[error("backup database: {0}")]
pub struct DbError(#[from] rusqlite::Error);

/// The open database.
pub struct BackupDb {
    db: Connection,
}

impl BackupDb {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<BackupDb, DbError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS files (
                 path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                 ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, cap TEXT NOT NULL,
                 uploaded REAL NOT NULL);
             CREATE TABLE IF NOT EXISTS directories (
                 digest BLOB PRIMARY KEY, cap TEXT NOT NULL, uploaded REAL NOT NULL);",
        )?;
        Ok(BackupDb { db })
    }

    /// The cap `path` was uploaded as, if it has not changed since.
    pub fn file_cap(&self, path: &str, state: FileState) -> Result<Option<String>, DbError> {
        let found: Option<(i64, i64, i64, i64, String)> = self
            .db
            .query_row(
                "SELECT size, mtime_ns, ctime_ns, inode, cap FROM files WHERE path = ?1",
                params![path],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()?;
        Ok(found.and_then(|(size, mtime_ns, ctime_ns, inode, cap)| {
            let recorded = FileState {
                size: size as u64,
                mtime_ns,
                ctime_ns,
                inode: inode as u64,
            };
            (recorded == state).then_some(cap)
        }))
    }

    /// Records uploads, in one transaction.
    pub fn record_files(&mut self, uploads: &[(String, FileState, String)], now: f64) -> Result<(), DbError> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, inode, cap, uploaded)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (path, state, cap) in uploads {
                insert.execute(params![
                    path,
                    state.size as i64,
                    state.mtime_ns,
                    state.ctime_ns,
                    state.inode as i64,
                    cap,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The cap of an immutable directory with this body digest, if one was made.
    pub fn directory_cap(&self, digest: &[u8]) -> Result<Option<String>, DbError> {
        Ok(self
            .db
            .query_row(
                "SELECT cap FROM directories WHERE digest = ?1",
                params![digest],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records a directory made.
    pub fn record_directory(&self, digest: &[u8], cap: &str, now: f64) -> Result<(), DbError> {
        self.db.execute(
            "INSERT OR REPLACE INTO directories (digest, cap, uploaded) VALUES (?1, ?2, ?3)",
            params![digest, cap, now],
        )?;
        Ok(())
    }
}
