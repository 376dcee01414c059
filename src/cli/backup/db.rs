//! The backup database (`private/backupdb.sqlite`): what each local file was last uploaded as,
//! and which immutable directories exist already, so unchanged files and directories are not
//! uploaded again. As Tahoe's backupdb, an entry not checked for a month is checked again with
//! a probability growing to 1 at two months, and uploaded again if the grid lost shares of it.

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

/// A file's or directory's cap from an earlier run.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The cap it was stored as.
    pub cap: String,
    /// When it was uploaded or last found healthy (Unix seconds).
    pub checked: f64,
}

/// Entries checked less than this long ago are trusted (Tahoe's `NO_CHECK_BEFORE`: a month).
const NO_CHECK_BEFORE: f64 = 30.0 * 86400.0;
/// Entries not checked for this long are always checked (Tahoe's `ALWAYS_CHECK_AFTER`).
const ALWAYS_CHECK_AFTER: f64 = 60.0 * 86400.0;

/// Whether an entry last checked `age` seconds ago is checked now, given a uniform `roll` in
/// [0, 1): never before a month, always after two, linearly more likely in between.
pub fn should_check(age: f64, roll: f64) -> bool {
    let probability = ((age - NO_CHECK_BEFORE) / (ALWAYS_CHECK_AFTER - NO_CHECK_BEFORE)).clamp(0.0, 1.0);
    roll < probability
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
        // Databases made before re-checking existed have no `checked` column yet.
        for table in ["files", "directories"] {
            let columns = db
                .prepare(&format!("PRAGMA table_info({table})"))?
                .query_map([], |row| row.get::<_, String>(1))?
                .collect::<Result<Vec<_>, _>>()?;
            if !columns.iter().any(|name| name == "checked") {
                db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN checked REAL"))?;
            }
        }
        Ok(BackupDb { db })
    }

    /// The cap `path` was uploaded as, if it has not changed since.
    pub fn file_cap(&self, path: &str, state: FileState) -> Result<Option<Known>, DbError> {
        let found: Option<(i64, i64, i64, i64, String, f64)> = self
            .db
            .query_row(
                "SELECT size, mtime_ns, ctime_ns, inode, cap, COALESCE(checked, uploaded) FROM files WHERE path = ?1",
                params![path],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(found.and_then(|(size, mtime_ns, ctime_ns, inode, cap, checked)| {
            let recorded = FileState {
                size: size as u64,
                mtime_ns,
                ctime_ns,
                inode: inode as u64,
            };
            (recorded == state).then_some(Known { cap, checked })
        }))
    }

    /// Records that these files' caps were found healthy at `now`.
    pub fn files_checked(&mut self, paths: &[String], now: f64) -> Result<(), DbError> {
        let tx = self.db.transaction()?;
        {
            let mut update = tx.prepare_cached("UPDATE files SET checked = ?2 WHERE path = ?1")?;
            for path in paths {
                update.execute(params![path, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records uploads, in one transaction.
    pub fn record_files(&mut self, uploads: &[(String, FileState, String)], now: f64) -> Result<(), DbError> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, ctime_ns, inode, cap, uploaded, checked)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
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
    pub fn directory_cap(&self, digest: &[u8]) -> Result<Option<Known>, DbError> {
        Ok(self
            .db
            .query_row(
                "SELECT cap, COALESCE(checked, uploaded) FROM directories WHERE digest = ?1",
                params![digest],
                |row| {
                    Ok(Known {
                        cap: row.get(0)?,
                        checked: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records that the directory with this body digest was found healthy at `now`.
    pub fn directory_checked(&self, digest: &[u8], now: f64) -> Result<(), DbError> {
        self.db.execute(
            "UPDATE directories SET checked = ?2 WHERE digest = ?1",
            params![digest, now],
        )?;
        Ok(())
    }

    /// Records a directory made.
    pub fn record_directory(&self, digest: &[u8], cap: &str, now: f64) -> Result<(), DbError> {
        self.db.execute(
            "INSERT OR REPLACE INTO directories (digest, cap, uploaded, checked) VALUES (?1, ?2, ?3, ?3)",
            params![digest, cap, now],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86400.0;

    #[test]
    fn entries_are_trusted_for_a_month_then_checked_ever_more_likely_and_always_after_two() {
        for roll in [0.0, 0.3, 0.999] {
            assert!(!should_check(0.0, roll));
            assert!(!should_check(29.9 * DAY, roll));
            assert!(should_check(60.0 * DAY, roll));
            assert!(should_check(400.0 * DAY, roll));
        }
        // Half way (45 days): probability one half.
        assert!(should_check(45.0 * DAY, 0.49));
        assert!(!should_check(45.0 * DAY, 0.51));
    }

    #[test]
    fn a_database_without_the_checked_column_gains_it_and_reads_upload_time_as_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                 ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, cap TEXT NOT NULL, uploaded REAL NOT NULL);
             CREATE TABLE directories (digest BLOB PRIMARY KEY, cap TEXT NOT NULL, uploaded REAL NOT NULL);
             INSERT INTO files VALUES ('/a', 5, 1, 2, 3, 'URI:LIT:abc', 1000.0);",
        )
        .unwrap();
        drop(old);
        let mut db = BackupDb::open(&path).unwrap();
        let state = FileState {
            size: 5,
            mtime_ns: 1,
            ctime_ns: 2,
            inode: 3,
        };
        let known = db.file_cap("/a", state).unwrap().unwrap();
        assert_eq!(
            known,
            Known {
                cap: "URI:LIT:abc".into(),
                checked: 1000.0
            }
        );
        db.files_checked(&["/a".to_string()], 5000.0).unwrap();
        assert_eq!(db.file_cap("/a", state).unwrap().unwrap().checked, 5000.0);
        // Opening again does not add the column twice.
        drop(db);
        BackupDb::open(&path).unwrap();
    }
}
