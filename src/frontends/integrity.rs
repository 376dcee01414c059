//! Verify and repair from the protocols (FTP `SITE VERIFY`/`SITE REPAIR`, the SSH exec `verify`): every block of a file read and checked, answered in one line per file.

use std::path::Path;

use crate::grid::immutable::check::{CheckReport, ShareHealth};
use crate::grid::uri::Cap;
use crate::vfs::{self, ErrorKind, Kind, Vfs};

/// What a verify or repair of one file found, in one line (no caps: share numbers and servers).
pub async fn verify(vfs: &Vfs, path: &[u8]) -> Result<String, vfs::Error> {
    match file_cap(vfs, path).await? {
        Some(Cap::Chk(chk)) => Ok(describe(&vfs.grid().check(&chk, true).await?)),
        _ => Ok("healthy (a literal file: its contents are in its cap)".into()),
    }
}

/// Verifies the file at `path` and re-creates its missing or corrupt shares (spooling the
/// download under `scratch_dir`); one line saying what was done.
pub async fn repair(vfs: &Vfs, path: &[u8], scratch_dir: &Path) -> Result<String, vfs::Error> {
    if vfs.is_read_only() {
        return Err(vfs::Error::new(ErrorKind::PermissionDenied));
    }
    match file_cap(vfs, path).await? {
        Some(Cap::Chk(chk)) => {
            let report = vfs.grid().repair(&chk, scratch_dir, true).await?;
            let what = if report.repaired { "repaired" } else { "not repaired" };
            Ok(format!(
                "{what}: before {}; after {}",
                describe(&report.before),
                describe(&report.after)
            ))
        }
        _ => Ok("healthy (a literal file: its contents are in its cap)".into()),
    }
}

/// The immutable file at `path` (`None` for a literal one); directories and mutable files are
/// not verified here.
async fn file_cap(vfs: &Vfs, path: &[u8]) -> Result<Option<Cap>, vfs::Error> {
    let (cap, stat) = vfs.lookup(path).await?;
    if stat.kind == Kind::Directory {
        return Err(vfs::Error::new(ErrorKind::IsADirectory));
    }
    match cap {
        Cap::Chk(_) => Ok(Some(cap)),
        Cap::Literal(_) => Ok(None),
        _ => Err(vfs::Error::new(ErrorKind::Unsupported)),
    }
}

/// `healthy (10 of 10 shares good)`, or `unhealthy: 9 of 10 shares good; bad: share 3 on server-2 (reason)`.
/// A healthy file may still have bad copies of shares it also has good copies of (after a
/// repair, the corrupt copy stays on its server): they are named too.
pub fn describe(report: &CheckReport) -> String {
    let good = report.good_shares();
    let bad: Vec<String> = report
        .shares
        .iter()
        .filter_map(|share| match &share.health {
            ShareHealth::Good => None,
            ShareHealth::Bad(reason) => Some(format!("share {} on {} ({reason})", share.share, share.server)),
        })
        .collect();
    let missing = report.total.saturating_sub(good);
    if report.is_healthy() {
        let mut line = format!("healthy ({good} of {} shares good)", report.total);
        if !bad.is_empty() {
            line.push_str(&format!("; bad copies: {}", bad.join(", ")));
        }
        return line;
    }
    let state = if report.is_recoverable() {
        "unhealthy"
    } else {
        "unrecoverable"
    };
    let mut line = format!("{state}: {good} of {} shares good", report.total);
    if !bad.is_empty() {
        line.push_str(&format!("; bad: {}", bad.join(", ")));
    }
    if missing > bad.len() {
        line.push_str(&format!("; {} missing", missing - bad.len()));
    }
    line
}
