//! The dirnode body codec: Tahoe's packing of a directory's children, with encrypted child write caps.
//!
//! Pure: turns a map of children into the plaintext stored in the directory's
//! mutable (or immutable) file and back. Storing that plaintext is the
//! mutable-file layer's job.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use crate::grid::crypto::aes_ctr_at;
use crate::grid::hashutil::{netstring, tag, tagged_hash16, tagged_pair_hash, tahoe_hmac};

/// One child of a directory, as stored.
#[derive(Clone, PartialEq)]
pub struct Child {
    /// The write cap (absent for read-only children, and unreadable without the directory's writekey).
    pub write_cap: Option<String>,
    /// The read cap (with Tahoe's `ro.` prefix stripped).
    pub read_cap: Option<String>,
    /// The entry's metadata (`tahoe.linkcrtime`, `tahoe.linkmotime`, user `mtime`, …).
    pub metadata: Map<String, Value>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Caps are secrets: show only which ones are present.
        write!(
            f,
            "Child(write={}, read={}, metadata={})",
            self.write_cap.is_some(),
            self.read_cap.is_some(),
            Value::Object(self.metadata.clone())
        )
    }
}

/// Why a directory body could not be unpacked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A netstring is truncated or malformed.
    #[error("directory body is malformed: {0}")]
    Malformed(&'static str),
    /// A child name is not UTF-8.
    #[error("directory entry name is not UTF-8")]
    BadName,
    /// A child's metadata is not a JSON object.
    #[error("directory entry metadata is not a JSON object")]
    BadMetadata,
}

/// Normalizes a name the way Tahoe stores it (Unicode NFC).
pub fn normalize_name(name: &str) -> String {
    name.nfc().collect()
}

/// Packs children into a directory body.
///
/// With `writekey` (a writable mutable directory) every child's write cap is
/// stored encrypted; without it (read-only or immutable packing) write caps are
/// left out. Children are written in NFC-name order, as Tahoe writes them.
pub fn pack(children: &BTreeMap<String, Child>, writekey: Option<&[u8; 16]>) -> Vec<u8> {
    let normalized: BTreeMap<String, &Child> = children.iter().map(|(n, c)| (normalize_name(n), c)).collect();
    let mut out = Vec::new();
    for (name, child) in normalized {
        let read_cap = child
            .read_cap
            .as_deref()
            .map(|c| c.strip_prefix("ro.").unwrap_or(c))
            .unwrap_or("");
        let rwcapdata = match writekey {
            Some(writekey) => encrypt_write_cap(child.write_cap.as_deref().unwrap_or(""), writekey),
            None => Vec::new(),
        };
        let metadata = Value::Object(child.metadata.clone()).to_string();
        let mut entry = netstring(name.as_bytes());
        entry.extend_from_slice(&netstring(read_cap.as_bytes()));
        entry.extend_from_slice(&netstring(&rwcapdata));
        entry.extend_from_slice(&netstring(metadata.as_bytes()));
        out.extend_from_slice(&netstring(&entry));
    }
    out
}

/// Unpacks a directory body; write caps are recovered only with the directory's `writekey`.
pub fn unpack(mut body: &[u8], writekey: Option<&[u8; 16]>) -> Result<BTreeMap<String, Child>, Error> {
    let mut children = BTreeMap::new();
    while !body.is_empty() {
        let (entry, rest) = split_netstring(body)?;
        body = rest;
        let (name, entry) = split_netstring(entry)?;
        let (read_cap, entry) = split_netstring(entry)?;
        let (rwcapdata, entry) = split_netstring(entry)?;
        let (metadata, _) = split_netstring(entry)?;
        let name = normalize_name(std::str::from_utf8(name).map_err(|_| Error::BadName)?);
        let read_cap = std::str::from_utf8(read_cap).map_err(|_| Error::Malformed("read cap is not text"))?;
        let write_cap = match writekey {
            Some(writekey) if !rwcapdata.is_empty() => decrypt_write_cap(rwcapdata, writekey)?,
            _ => None,
        };
        let metadata = match serde_json::from_slice::<Value>(metadata) {
            Ok(Value::Object(map)) => map,
            _ => return Err(Error::BadMetadata),
        };
        let read_cap = Some(read_cap.to_string()).filter(|c| !c.is_empty());
        children.insert(
            name,
            Child {
                write_cap,
                read_cap,
                metadata,
            },
        );
    }
    Ok(children)
}

fn split_netstring(bytes: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or(Error::Malformed("netstring has no length"))?;
    let digits = &bytes[..colon];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::Malformed("netstring length is not a number"));
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(Error::Malformed("netstring length is not a number"))?;
    let start = colon + 1;
    let end = start
        .checked_add(len)
        .ok_or(Error::Malformed("netstring is truncated"))?;
    if bytes.get(end) != Some(&b',') {
        return Err(Error::Malformed("netstring is truncated"));
    }
    Ok((&bytes[start..end], &bytes[end + 1..]))
}

fn write_cap_key(salt: &[u8], writekey: &[u8; 16]) -> [u8; 16] {
    let hash = tagged_pair_hash(tag::DIRNODE_CHILD_WRITECAP, salt, writekey);
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash[..16]);
    key
}

/// `salt + AES-CTR(rw_cap) + MAC`, the salt derived from the cap itself (so packing is deterministic).
fn encrypt_write_cap(write_cap: &str, writekey: &[u8; 16]) -> Vec<u8> {
    let salt = tagged_hash16(tag::DIRNODE_CHILD_SALT, write_cap.as_bytes());
    let key = write_cap_key(&salt, writekey);
    let mut out = salt.to_vec();
    let mut crypttext = write_cap.as_bytes().to_vec();
    aes_ctr_at(&key, 0, &mut crypttext);
    out.extend_from_slice(&crypttext);
    let mac = tahoe_hmac(&key, &out);
    out.extend_from_slice(&mac);
    out
}

fn decrypt_write_cap(rwcapdata: &[u8], writekey: &[u8; 16]) -> Result<Option<String>, Error> {
    if rwcapdata.len() < 48 {
        return Err(Error::Malformed("encrypted write cap is too short"));
    }
    let (salt, rest) = rwcapdata.split_at(16);
    let crypttext = &rest[..rest.len() - 32];
    let key = write_cap_key(salt, writekey);
    let mut plain = crypttext.to_vec();
    aes_ctr_at(&key, 0, &mut plain);
    // Old Tahoe versions padded with spaces; readers since 1.3 do not check the MAC.
    let text = std::str::from_utf8(&plain).map_err(|_| Error::Malformed("write cap is not text"))?;
    let text = text.trim_end_matches(' ');
    Ok(Some(text.to_string()).filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(write: Option<&str>, read: Option<&str>, mtime: f64) -> Child {
        let mut metadata = Map::new();
        metadata.insert("mtime".into(), Value::from(mtime));
        Child {
            write_cap: write.map(str::to_string),
            read_cap: read.map(str::to_string),
            metadata,
        }
    }

    #[test]
    fn round_trips_with_and_without_the_writekey() {
        let mut children = BTreeMap::new();
        children.insert(
            "b.txt".to_string(),
            child(None, Some("URI:CHK:aaaa:bbbb:3:10:100"), 1.5),
        );
        children.insert(
            "a dir".to_string(),
            child(Some("URI:DIR2:xxxx:yyyy"), Some("URI:DIR2-RO:zzzz:yyyy"), 2.0),
        );
        let writekey = [7u8; 16];
        let body = pack(&children, Some(&writekey));
        assert_eq!(unpack(&body, Some(&writekey)).unwrap(), children);
        // A reader without the writekey sees read caps only.
        let read_only = unpack(&body, None).unwrap();
        assert_eq!(read_only["a dir"].write_cap, None);
        assert_eq!(read_only["a dir"].read_cap.as_deref(), Some("URI:DIR2-RO:zzzz:yyyy"));
        // The write cap never appears in clear.
        assert!(!body.windows(18).any(|w| w == b"URI:DIR2:xxxx:yyyy"));
        // Entries are written in name order, each a netstring of four netstrings.
        assert!(body.starts_with(b"1"));
        let (first, _) = split_netstring(&body).unwrap();
        assert!(first.starts_with(b"5:a dir,21:URI:DIR2-RO:zzzz:yyyy,"));
        // Packing is deterministic (the salt comes from the cap).
        assert_eq!(pack(&children, Some(&writekey)), body);
    }

    #[test]
    fn names_are_stored_nfc_and_ro_prefixes_stripped() {
        let mut children = BTreeMap::new();
        children.insert(
            "e\u{301}t\u{e9}".to_string(),
            child(None, Some("ro.URI:CHK:aaaa:bbbb:3:10:100"), 0.0),
        );
        let body = pack(&children, None);
        let back = unpack(&body, None).unwrap();
        let (name, entry) = back.iter().next().unwrap();
        assert_eq!(name, "\u{e9}t\u{e9}");
        assert_eq!(entry.read_cap.as_deref(), Some("URI:CHK:aaaa:bbbb:3:10:100"));
        let nfc = "\u{e9}t\u{e9}".as_bytes();
        assert!(body.windows(nfc.len()).any(|w| w == nfc));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(unpack(b"5:abc", None), Err(Error::Malformed("netstring is truncated")));
        assert_eq!(
            unpack(b"x:abc,", None),
            Err(Error::Malformed("netstring length is not a number"))
        );
        let bad_name = netstring(&[netstring(b"\xff"), netstring(b""), netstring(b""), netstring(b"{}")].concat());
        assert_eq!(unpack(&bad_name, None), Err(Error::BadName));
        let bad_meta = netstring(&[netstring(b"n"), netstring(b""), netstring(b""), netstring(b"[1]")].concat());
        assert_eq!(unpack(&bad_meta, None), Err(Error::BadMetadata));
        assert!(unpack(b"", None).unwrap().is_empty());
    }

    #[test]
    fn debug_hides_caps() {
        let shown = format!(
            "{:?}",
            child(Some("URI:DIR2:secret:fp"), Some("URI:DIR2-RO:alsosecret:fp"), 1.0)
        );
        assert!(!shown.contains("secret"), "{shown}");
    }
}
