//! MFMT (draft-somers-ftp-mfxx): clients such as lftp and FileZilla set an uploaded file's time.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};

use super::{FtpUser, GridStorage, path_bytes, reply_code};

/// Answers `MFMT YYYYMMDDHHMMSS[.sss] path` (the patched libunftp routes it here) by setting the
/// entry's `mtime`, as SFTP's SETSTAT does.
#[derive(Debug)]
pub struct SetModificationTime;

/// The seconds since the epoch of an MFMT time value (always UTC).
pub fn parse_mfmt_time(value: &str) -> Option<f64> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.len() != 14 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    let fraction = if fraction.is_empty() {
        0.0
    } else {
        format!("0.{fraction}").parse::<f64>().ok()?
    };
    Some(time.and_utc().timestamp() as f64 + fraction)
}

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for SetModificationTime {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let Some((time, name)) = context.arguments.split_once(' ') else {
            return Reply::new(ReplyCode::ParameterSyntaxError, "MFMT needs a time and a path");
        };
        let Some(mtime) = parse_mfmt_time(time) else {
            return Reply::new(ReplyCode::ParameterSyntaxError, "MFMT time must be YYYYMMDDHHMMSS");
        };
        let Some(user) = context.user.as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, "Not logged in");
        };
        let path = context.cwd.join(name);
        match context.storage.vfs(user).set_mtime(&path_bytes(&path), mtime).await {
            Ok(()) => Reply::new_with_string(ReplyCode::FileStatus, format!("Modify={time}; {name}")),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("MFMT {name}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfmt_times_are_utc_with_optional_fractions() {
        assert_eq!(parse_mfmt_time("20200102030405"), Some(1_577_934_245.0));
        assert_eq!(parse_mfmt_time("20200102030405.5"), Some(1_577_934_245.5));
        assert_eq!(parse_mfmt_time("19700101000000"), Some(0.0));
        for bad in [
            "2020010203040",
            "202001020304051",
            "20201302030405",
            "2020010203040x",
            "20200102030405.x",
            "",
        ] {
            assert_eq!(parse_mfmt_time(bad), None, "{bad}");
        }
    }
}
