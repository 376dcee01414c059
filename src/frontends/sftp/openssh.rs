//! OpenSSH's extensions beyond the first four (posix-rename, statvfs, fsync, limits are in `session`/`handles`): hardlink, fstatvfs, lsetstat, expand-path, copy-data, home-directory and users-groups-by-id, each answering as OpenSSH's sftp-server does.

use bytes::{Buf, BufMut, BytesMut};
use russh_sftp::protocol::{ExtendedReply, File, FileAttributes, Name, Packet, StatusCode, Version};
use russh_sftp::server::StatusReply;
use serde::Deserialize;

use crate::grid::uri::Cap;

/// `hardlink@openssh.com`: link(2), a second name for a file.
pub const HARDLINK: &str = "hardlink@openssh.com";
/// `fstatvfs@openssh.com`: statvfs of the file system a handle is on.
pub const FSTATVFS: &str = "fstatvfs@openssh.com";
/// `lsetstat@openssh.com`: setstat without following symlinks (there are none here).
pub const LSETSTAT: &str = "lsetstat@openssh.com";
/// `expand-path@openssh.com`: realpath that also expands `~` (sftp's `cd ~/x`).
pub const EXPAND_PATH: &str = "expand-path@openssh.com";
/// `copy-data`: a server-side copy between two open handles (sftp's `cp`).
pub const COPY_DATA: &str = "copy-data";
/// `home-directory`: a user's home directory.
pub const HOME_DIRECTORY: &str = "home-directory";
/// `users-groups-by-id@openssh.com`: names for uids and gids (sftp's `ls -l`).
pub const USERS_GROUPS_BY_ID: &str = "users-groups-by-id@openssh.com";

/// Adds these extensions to the VERSION reply, with the versions OpenSSH 9 announces.
pub fn announce(version: &mut Version) {
    for name in [
        HARDLINK,
        FSTATVFS,
        LSETSTAT,
        EXPAND_PATH,
        COPY_DATA,
        HOME_DIRECTORY,
        USERS_GROUPS_BY_ID,
    ] {
        let value = if name == FSTATVFS { "2" } else { "1" };
        version.extensions.insert(name.into(), value.into());
    }
}

/// The two paths of a hardlink request.
#[derive(Debug, Deserialize)]
pub struct Hardlink {
    /// The existing file.
    pub oldpath: String,
    /// The new name.
    pub newpath: String,
}

/// A path and attributes (lsetstat).
#[derive(Debug, Deserialize)]
pub struct PathAttributes {
    /// The path.
    pub path: String,
    /// What to set.
    pub attrs: FileAttributes,
}

/// One path (expand-path) or user name (home-directory), or one handle (fstatvfs).
#[derive(Debug, Deserialize)]
pub struct OneString {
    /// The string.
    pub text: String,
}

/// A copy-data request: `read_len` 0 reads to the end of the file.
#[derive(Debug, Deserialize)]
pub struct CopyData {
    /// The handle read from (open for reading).
    pub read_handle: String,
    /// Where the copy starts in it.
    pub read_offset: u64,
    /// How much to copy (0: to its end).
    pub read_len: u64,
    /// The handle written to (open for writing).
    pub write_handle: String,
    /// Where the copy lands in it.
    pub write_offset: u64,
}

/// A file open for reading, as a copy-data request names it.
#[derive(Debug, Clone)]
pub struct ReadSource {
    /// The file (the version the handle opened).
    pub cap: Cap,
    /// Its size.
    pub size: u64,
    /// The digest its entry recorded, if any.
    pub sha256: Option<[u8; 32]>,
}

/// Whether a copy of `read_len` bytes (0: to the end) from `read_offset` of `source` to
/// `write_offset` of a file now `written` bytes long makes it exactly the source: then the copy
/// links the source's cap and no byte moves.
pub fn copies_whole(source: &ReadSource, read_offset: u64, read_len: u64, write_offset: u64, written: u64) -> bool {
    read_offset == 0 && (read_len == 0 || read_len >= source.size) && write_offset == 0 && written <= source.size
}

/// `~`, `~/x` and `~user/x` (every user's home is the root of their view) to a path from the root.
pub fn expand_tilde(path: &str) -> String {
    match path.strip_prefix('~') {
        Some(rest) => match rest.find('/') {
            Some(slash) => format!("/{}", &rest[slash + 1..]),
            None => "/".into(),
        },
        None => path.into(),
    }
}

/// A NAME reply of one path (realpath, expand-path, home-directory).
pub fn one_name(id: u32, path: String) -> Packet {
    Packet::Name(Name {
        id,
        files: vec![File::dummy(path)],
    })
}

/// The users-groups-by-id reply: names for `uids` and `gids` (packed u32 lists). Every entry is
/// owned by uid and gid 0 as far as clients see, and 0 is the session's user; other ids have no
/// name (an empty string, as OpenSSH answers for unknown ids).
pub fn users_groups_by_id(id: u32, data: &[u8], user: &str) -> Result<Packet, StatusReply> {
    let malformed = || StatusCode::BadMessage.with_message("malformed users-groups-by-id request");
    let mut data = data;
    let mut lists = Vec::new();
    for _ in 0..2 {
        if data.remaining() < 4 {
            return Err(malformed());
        }
        let len = data.get_u32() as usize;
        if data.remaining() < len || !len.is_multiple_of(4) {
            return Err(malformed());
        }
        let (list, rest) = data.split_at(len);
        data = rest;
        let mut names = BytesMut::new();
        for chunk in list.chunks(4) {
            let name = if chunk == [0, 0, 0, 0] { user } else { "" };
            names.put_u32(name.len() as u32);
            names.put_slice(name.as_bytes());
        }
        lists.push(names);
    }
    let mut reply = BytesMut::new();
    for names in lists {
        reply.put_u32(names.len() as u32);
        reply.put_slice(&names);
    }
    Ok(Packet::ExtendedReply(ExtendedReply {
        id,
        data: reply.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expands_to_the_root() {
        assert_eq!(expand_tilde("~"), "/");
        assert_eq!(expand_tilde("~/docs/a"), "/docs/a");
        assert_eq!(expand_tilde("~alice/docs"), "/docs");
        assert_eq!(expand_tilde("docs/~x"), "docs/~x");
    }

    #[test]
    fn ids_get_the_user_name_for_0_and_nothing_else() {
        let mut request = BytesMut::new();
        request.put_u32(8);
        request.put_u32(0);
        request.put_u32(1000);
        request.put_u32(4);
        request.put_u32(0);
        let Ok(Packet::ExtendedReply(reply)) = users_groups_by_id(7, &request, "alice") else {
            panic!("no reply");
        };
        let mut expected = BytesMut::new();
        expected.put_u32(4 + 5 + 4);
        expected.put_u32(5);
        expected.put_slice(b"alice");
        expected.put_u32(0);
        expected.put_u32(4 + 5);
        expected.put_u32(5);
        expected.put_slice(b"alice");
        assert_eq!(reply.data, expected.to_vec());
        assert!(users_groups_by_id(7, &[0, 0, 0, 9], "alice").is_err());
    }
}
