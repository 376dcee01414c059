//! File attributes and `ls -l` long names as SFTP clients expect them.

use russh_sftp::protocol::{File, FileAttributes};

use crate::vfs::{Kind, Stat};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// Attributes for a stat: type and permission bits, size, times.
pub fn attributes(stat: &Stat) -> FileAttributes {
    let kind = match stat.kind {
        Kind::Directory => S_IFDIR,
        Kind::File => S_IFREG,
    };
    let permissions = kind | stat.permission_bits();
    let mtime = stat.mtime.map(|t| t.max(0.0).min(u32::MAX as f64) as u32).unwrap_or(0);
    FileAttributes {
        size: Some(stat.size),
        uid: Some(0),
        gid: Some(0),
        user: None,
        group: None,
        permissions: Some(permissions),
        atime: Some(mtime),
        mtime: Some(mtime),
    }
}

/// A directory entry with an `ls -l` style long name, as OpenSSH's sftp-server formats it.
pub fn entry(name: &str, stat: &Stat, owner: &str, now: u64) -> File {
    let attrs = attributes(stat);
    let mode = attrs.permissions.unwrap_or(0);
    let kind = if mode & S_IFDIR != 0 { 'd' } else { '-' };
    let mut bits = String::with_capacity(10);
    bits.push(kind);
    for shift in [6, 3, 0] {
        let triple = (mode >> shift) & 7;
        bits.push(if triple & 4 != 0 { 'r' } else { '-' });
        bits.push(if triple & 2 != 0 { 'w' } else { '-' });
        bits.push(if triple & 1 != 0 { 'x' } else { '-' });
    }
    let mtime = u64::from(attrs.mtime.unwrap_or(0));
    let longname = format!(
        "{bits} {:>3} {owner:<8} {owner:<8} {:>8} {} {name}",
        1,
        stat.size,
        ls_date(mtime, now)
    );
    File {
        filename: name.to_string(),
        longname,
        attrs,
    }
}

/// `ls`'s date column: `Nov 26 09:49` within six months of now, else `Nov 26  2025` (UTC).
fn ls_date(time: u64, now: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day) = civil_from_days((time / 86_400) as i64);
    let month = MONTHS[(month - 1) as usize];
    let recent = time <= now + 3600 && now.saturating_sub(time) < 182 * 86_400;
    if recent {
        let secs = time % 86_400;
        format!("{month} {day:>2} {:02}:{:02}", secs / 3600, secs / 60 % 60)
    } else {
        format!("{month} {day:>2}  {year}")
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_long_names_look_like_ls() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_418), (2025, 11, 26));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let now = 1_764_150_000; // 2025-11-26 09:40 UTC
        assert_eq!(ls_date(now - 60, now), "Nov 26 09:39");
        assert_eq!(ls_date(0, now), "Jan  1  1970");
        let stat = Stat {
            kind: Kind::File,
            size: 1234,
            mtime: Some((now - 60) as f64),
            read_only: false,
            mode: None,
        };
        let file = entry("notes.txt", &stat, "alice", now);
        assert_eq!(
            file.longname,
            "-rw-r--r--   1 alice    alice        1234 Nov 26 09:39 notes.txt"
        );
        let dir = Stat {
            kind: Kind::Directory,
            size: 0,
            mtime: None,
            read_only: true,
            mode: None,
        };
        assert!(entry("d", &dir, "bob", now).longname.starts_with("dr-xr-xr-x "));
        let chmodded = Stat {
            mode: Some(0o640),
            ..stat.clone()
        };
        assert!(entry("f", &chmodded, "bob", now).longname.starts_with("-rw-r----- "));
        let read_only = Stat {
            read_only: true,
            ..chmodded
        };
        assert!(entry("f", &read_only, "bob", now).longname.starts_with("-r--r----- "));
    }
}
