//! Commands beyond libunftp's, served as SITE handlers: SITE CHMOD (modes kept in the entry's metadata), HASH and XSHA256 (the digest recorded at upload), SITE VERIFY and SITE REPAIR.

use async_trait::async_trait;
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};

use super::{FtpUser, GridStorage, path_bytes, reply_code};
use crate::frontends::{digest, integrity};
use crate::vfs::{self, EntryMetadata};

/// The user and the path named by a command's arguments, or the reply refusing it.
fn target<'a>(
    context: &'a SiteCommandContext<GridStorage, FtpUser>,
    command: &str,
) -> Result<(&'a FtpUser, Vec<u8>), Reply> {
    let name = context.arguments.trim();
    if name.is_empty() {
        return Err(Reply::new_with_string(
            ReplyCode::ParameterSyntaxError,
            format!("{command} needs a path"),
        ));
    }
    let Some(user) = context.user.as_ref() else {
        return Err(Reply::new(ReplyCode::NotLoggedIn, "Not logged in"));
    };
    Ok((user, path_bytes(&context.cwd.join(name))))
}

/// `HASH path` (draft-bryan-ftpext-hash): `213 SHA-256 0-LAST DIGEST path`.
#[derive(Debug)]
pub struct Hash;

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for Hash {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let (user, path) = match target(context, "HASH") {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        let name = context.arguments.trim();
        match digest::sha256(&context.storage.vfs(user), &path).await {
            Ok((digest, size)) => Reply::new_with_string(
                ReplyCode::FileStatus,
                format!("SHA-256 0-{} {} {name}", size.saturating_sub(1), vfs::hex(&digest)),
            ),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("HASH {name}: {e}")),
        }
    }
}

/// `XSHA256 path` (as Serv-U and others answer it): `250 DIGEST`.
#[derive(Debug)]
pub struct XSha256;

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for XSha256 {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let (user, path) = match target(context, "XSHA256") {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        match digest::sha256(&context.storage.vfs(user), &path).await {
            Ok((digest, _)) => Reply::new_with_string(ReplyCode::FileActionOkay, vfs::hex(&digest)),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("XSHA256: {e}")),
        }
    }
}

/// `SITE VERIFY path`: every block read and checked; `200 path: healthy (...)` or what is bad.
#[derive(Debug)]
pub struct Verify;

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for Verify {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let (user, path) = match target(context, "SITE VERIFY") {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        let name = context.arguments.trim();
        match integrity::verify(&context.storage.vfs(user), &path).await {
            Ok(line) => Reply::new_with_string(ReplyCode::CommandOkay, format!("{name}: {line}")),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("SITE VERIFY {name}: {e}")),
        }
    }
}

/// `SITE REPAIR path`: verify, then re-create missing or corrupt shares (accounts with a
/// writable root only: a repair writes to the storage servers).
#[derive(Debug)]
pub struct Repair;

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for Repair {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let (user, path) = match target(context, "SITE REPAIR") {
            Ok(target) => target,
            Err(reply) => return reply,
        };
        let name = context.arguments.trim();
        let vfs = context.storage.vfs(user);
        match integrity::repair(&vfs, &path, &context.storage.spool_dir).await {
            Ok(line) => Reply::new_with_string(ReplyCode::CommandOkay, format!("{name}: {line}")),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("SITE REPAIR {name}: {e}")),
        }
    }
}

/// `SITE CHMOD MODE path` (octal mode, as lftp's `chmod` and FileZilla send it).
#[derive(Debug)]
pub struct Chmod;

#[async_trait]
impl SiteCommandHandler<GridStorage, FtpUser> for Chmod {
    async fn handle(&self, context: &SiteCommandContext<GridStorage, FtpUser>) -> Reply {
        let Some((mode, name)) = context.arguments.split_once(' ') else {
            return Reply::new(ReplyCode::ParameterSyntaxError, "SITE CHMOD needs a mode and a path");
        };
        let Some(mode) = u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777) else {
            return Reply::new(ReplyCode::ParameterSyntaxError, "SITE CHMOD takes an octal mode");
        };
        let Some(user) = context.user.as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, "Not logged in");
        };
        let path = context.cwd.join(name);
        let attributes = EntryMetadata {
            mode: Some(mode),
            ..Default::default()
        };
        match context
            .storage
            .vfs(user)
            .set_attributes(&path_bytes(&path), attributes)
            .await
        {
            Ok(()) => Reply::new(ReplyCode::CommandOkay, "SITE CHMOD command successful"),
            Err(e) => Reply::new_with_string(reply_code(e.kind()), format!("SITE CHMOD {name}: {e}")),
        }
    }
}
