//! The commit journal's on-disk records: a pure codec (no I/O), framing each record with its length and a checksum.
//!
//! A journal file is [`MAGIC`] followed by records, each `[length: u32 LE][check: 8 bytes][payload]`,
//! where `check` is the first 8 bytes of SHA-256 over the payload. A payload is a tag byte and
//! the record's fields (integers little-endian, strings and byte strings as `u32` length + bytes).
//!
//! The file is preallocated with zeros past its last record (so appends overwrite blocks that
//! exist and their sync has no metadata to commit): decoding stops at the first zero length.
//!
//! Decoding tells a torn tail from corruption: the last record may be incomplete or fail its check
//! (it was being written when the process died, so it was never acknowledged) and is ignored;
//! a record that fails its check with more records after it is an error, so nothing that was
//! acknowledged is ever dropped silently.

use sha2::{Digest, Sha256};

/// The first bytes of every journal file.
pub const MAGIC: &[u8] = b"lafs-commit-journal v1\n";
/// No record is longer than this (a small file's contents are at most a few MiB): a length
/// beyond it is corruption, not a record to wait for.
pub const MAX_RECORD: usize = 64 << 20;

const HEADER: usize = 4 + 8;
const TAG_LINK: u8 = 1;
const TAG_RETIRE: u8 = 2;
const BODY_CONTENTS: u8 = 0;
const BODY_CAP: u8 = 1;

/// What a link stores under its name.
#[derive(Clone, PartialEq)]
pub enum LinkBody {
    /// A small file's contents, uploaded when the directory is published.
    Contents(Vec<u8>),
    /// A file already stored on the grid (its cap's text).
    Cap(String),
}

/// One acknowledged link waiting to be published into its directory.
#[derive(Clone, PartialEq)]
pub struct LinkRecord {
    /// Its place in the journal's order (links to one name apply in this order).
    pub seq: u64,
    /// The directory's write cap (text).
    pub dircap: String,
    /// The entry's name (NFC-normalized).
    pub name: String,
    /// What the name links.
    pub body: LinkBody,
    /// The user's modification time (Unix seconds), if given.
    pub mtime: Option<f64>,
    /// Whether an existing file of that name is replaced (else the link goes in under another name).
    pub overwrite: bool,
    /// More metadata keys for the entry (the frontends' `mode` and `sha256`); written after the
    /// other fields only when there are any, so records of earlier versions still read.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Hides caps, names and contents: records are secrets.
impl std::fmt::Debug for LinkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = match &self.body {
            LinkBody::Contents(data) => format!("{} bytes", data.len()),
            LinkBody::Cap(_) => "a stored file".into(),
        };
        write!(f, "LinkRecord(seq {}, {body})", self.seq)
    }
}

/// A journal record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A link was acknowledged.
    Link(LinkRecord),
    /// These links are published (they are not replayed).
    Retire(Vec<u64>),
}

/// A journal's records as far as they are whole.
#[derive(Debug, PartialEq)]
pub struct DecodedLog {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Bytes of the file that hold whole records (the rest is a torn tail).
    pub valid_len: usize,
    /// Whether a torn (never acknowledged) last record was ignored.
    pub torn_tail: bool,
}

/// A journal that cannot be read without losing acknowledged records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorruptJournal {
    /// The file does not start with [`MAGIC`].
    #[error("not a commit journal (bad header)")]
    BadHeader,
    /// A record in the middle fails its check, or its payload cannot be decoded.
    #[error("record at byte {offset} is corrupt ({why}); records after it exist, so it is not a torn tail")]
    Corrupt {
        /// where the bad record starts
        offset: usize,
        /// what is wrong with it
        why: &'static str,
    },
}

fn check(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `record`, framed, ready to append.
pub fn encode(record: &Record) -> Vec<u8> {
    let mut payload = Vec::new();
    match record {
        Record::Link(link) => {
            payload.push(TAG_LINK);
            payload.extend_from_slice(&link.seq.to_le_bytes());
            put_bytes(&mut payload, link.dircap.as_bytes());
            put_bytes(&mut payload, link.name.as_bytes());
            match &link.body {
                LinkBody::Contents(data) => {
                    payload.push(BODY_CONTENTS);
                    put_bytes(&mut payload, data);
                }
                LinkBody::Cap(cap) => {
                    payload.push(BODY_CAP);
                    put_bytes(&mut payload, cap.as_bytes());
                }
            }
            match link.mtime {
                Some(mtime) => {
                    payload.push(1);
                    payload.extend_from_slice(&mtime.to_le_bytes());
                }
                None => payload.push(0),
            }
            payload.push(u8::from(link.overwrite));
            if !link.extra.is_empty() {
                let extra = serde_json::Value::Object(link.extra.clone()).to_string();
                put_bytes(&mut payload, extra.as_bytes());
            }
        }
        Record::Retire(seqs) => {
            payload.push(TAG_RETIRE);
            payload.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
            for seq in seqs {
                payload.extend_from_slice(&seq.to_le_bytes());
            }
        }
    }
    let mut framed = Vec::with_capacity(HEADER + payload.len());
    framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    framed.extend_from_slice(&check(&payload));
    framed.extend_from_slice(&payload);
    framed
}

/// Reads fields off a payload; `None` when it ends early.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn text(&mut self) -> Option<String> {
        self.bytes().and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut fields = Fields(payload);
    let record = match fields.u8()? {
        TAG_LINK => {
            let seq = fields.u64()?;
            let dircap = fields.text()?;
            let name = fields.text()?;
            let body = match fields.u8()? {
                BODY_CONTENTS => LinkBody::Contents(fields.bytes()?.to_vec()),
                BODY_CAP => LinkBody::Cap(fields.text()?),
                _ => return None,
            };
            let mtime = match fields.u8()? {
                0 => None,
                1 => Some(f64::from_le_bytes(fields.take(8)?.try_into().ok()?)),
                _ => return None,
            };
            let overwrite = match fields.u8()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let extra = if fields.0.is_empty() {
                serde_json::Map::new()
            } else {
                serde_json::from_slice(fields.bytes()?).ok()?
            };
            Record::Link(LinkRecord {
                seq,
                dircap,
                name,
                body,
                mtime,
                overwrite,
                extra,
            })
        }
        TAG_RETIRE => {
            let count = fields.u32()? as usize;
            let mut seqs = Vec::with_capacity(count.min(payload.len() / 8));
            for _ in 0..count {
                seqs.push(fields.u64()?);
            }
            Record::Retire(seqs)
        }
        _ => return None,
    };
    fields.0.is_empty().then_some(record)
}

/// Decodes a whole journal file (`bytes` from its start).
pub fn decode_log(bytes: &[u8]) -> Result<DecodedLog, CorruptJournal> {
    if bytes.len() < MAGIC.len() {
        // Empty, or the header itself was being written.
        if MAGIC.starts_with(bytes) {
            return Ok(DecodedLog {
                records: Vec::new(),
                valid_len: 0,
                torn_tail: !bytes.is_empty(),
            });
        }
        return Err(CorruptJournal::BadHeader);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(CorruptJournal::BadHeader);
    }
    let mut records = Vec::new();
    let mut offset = MAGIC.len();
    let torn = |records, offset| {
        Ok(DecodedLog {
            records,
            valid_len: offset,
            torn_tail: true,
        })
    };
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.iter().all(|&b| b == 0) {
            // The journal's preallocated space: the records end here.
            break;
        }
        if rest.len() < HEADER {
            return torn(records, offset);
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len == 0 {
            // No record is empty: this is where the records end and preallocated space begins,
            // and what follows was a group being written when the process died (never
            // acknowledged: acknowledgements wait for the whole group's sync).
            return torn(records, offset);
        }
        if len > MAX_RECORD {
            return Err(CorruptJournal::Corrupt {
                offset,
                why: "impossible length",
            });
        }
        if rest.len() < HEADER + len {
            return torn(records, offset);
        }
        let payload = &rest[HEADER..HEADER + len];
        let is_last = rest.len() == HEADER + len;
        if check(payload) != rest[4..HEADER] {
            if is_last {
                return torn(records, offset);
            }
            return Err(CorruptJournal::Corrupt {
                offset,
                why: "checksum mismatch",
            });
        }
        let record = decode_payload(payload).ok_or(CorruptJournal::Corrupt {
            offset,
            why: "unknown or malformed fields",
        })?;
        records.push(record);
        offset += HEADER + len;
    }
    Ok(DecodedLog {
        records,
        valid_len: offset,
        torn_tail: false,
    })
}

/// The links of `records` not retired by any record, in journal order.
pub fn unretired(records: Vec<Record>) -> Vec<LinkRecord> {
    let retired: std::collections::HashSet<u64> = records
        .iter()
        .filter_map(|r| match r {
            Record::Retire(seqs) => Some(seqs.iter().copied()),
            Record::Link(_) => None,
        })
        .flatten()
        .collect();
    let mut links: Vec<LinkRecord> = records
        .into_iter()
        .filter_map(|r| match r {
            Record::Link(link) if !retired.contains(&link.seq) => Some(link),
            _ => None,
        })
        .collect();
    links.sort_by_key(|l| l.seq);
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(seq: u64, body: LinkBody) -> Record {
        Record::Link(LinkRecord {
            seq,
            dircap: "URI:DIR2:aaaa:bbbb".into(),
            name: format!("file-{seq}.txt"),
            body,
            mtime: seq.is_multiple_of(2).then_some(1_700_000_000.5),
            overwrite: !seq.is_multiple_of(3),
            extra: if seq.is_multiple_of(2) {
                serde_json::json!({"mode": 416, "sha256": "ab"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            } else {
                serde_json::Map::new()
            },
        })
    }

    fn log_of(records: &[Record]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for record in records {
            bytes.extend(encode(record));
        }
        bytes
    }

    fn sample() -> Vec<Record> {
        vec![
            link(1, LinkBody::Contents(b"hello".to_vec())),
            link(2, LinkBody::Cap("URI:CHK:xx:yy:3:10:4096".into())),
            Record::Retire(vec![1]),
            link(3, LinkBody::Contents(vec![7; 5000])),
        ]
    }

    #[test]
    fn records_round_trip_in_order() {
        let records = sample();
        let decoded = decode_log(&log_of(&records)).unwrap();
        assert_eq!(decoded.records, records);
        assert!(!decoded.torn_tail);
        assert_eq!(decoded.valid_len, log_of(&records).len());
    }

    #[test]
    fn zeros_after_the_records_are_preallocated_space_and_a_group_torn_behind_a_zero_length_is_ignored() {
        let records = sample();
        let mut bytes = log_of(&records);
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        let decoded = decode_log(&bytes).unwrap();
        assert_eq!(decoded.records, records);
        assert!(!decoded.torn_tail);
        assert_eq!(decoded.valid_len, end);
        // A group whose first sector never reached the disk but whose second did.
        bytes[end + 600] = 0x5a;
        let decoded = decode_log(&bytes).unwrap();
        assert_eq!(decoded.records, records);
        assert!(decoded.torn_tail);
        assert_eq!(decoded.valid_len, end);
    }

    #[test]
    fn an_empty_or_half_written_header_is_an_empty_journal() {
        for len in 0..MAGIC.len() {
            let decoded = decode_log(&MAGIC[..len]).unwrap();
            assert!(decoded.records.is_empty());
            assert_eq!(decoded.valid_len, 0);
        }
        assert_eq!(decode_log(b"something else entirely"), Err(CorruptJournal::BadHeader));
    }

    #[test]
    fn a_torn_last_record_is_ignored_at_every_length() {
        let records = sample();
        let whole = log_of(&records);
        let before_last = log_of(&records[..3]).len();
        for cut in before_last + 1..whole.len() {
            let decoded = decode_log(&whole[..cut]).unwrap();
            assert_eq!(decoded.records, records[..3], "cut at {cut}");
            assert!(decoded.torn_tail);
            assert_eq!(decoded.valid_len, before_last);
        }
        // Whole length, but the payload's last bytes never reached the disk.
        let mut garbled = whole.clone();
        let end = garbled.len() - 1;
        garbled[end] ^= 0xff;
        let decoded = decode_log(&garbled).unwrap();
        assert_eq!(decoded.records, records[..3]);
        assert!(decoded.torn_tail);
    }

    #[test]
    fn a_corrupt_record_in_the_middle_is_an_error_not_a_silent_loss() {
        let records = sample();
        let mut bytes = log_of(&records);
        let second = MAGIC.len() + encode(&records[0]).len();
        bytes[second + HEADER + 3] ^= 0x01;
        match decode_log(&bytes) {
            Err(CorruptJournal::Corrupt { offset, why }) => {
                assert_eq!(offset, second);
                assert_eq!(why, "checksum mismatch");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // A length past any record is corruption too, not a record to wait for.
        let mut bytes = log_of(&records);
        bytes[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_log(&bytes), Err(CorruptJournal::Corrupt { .. })));
    }

    #[test]
    fn retired_links_are_not_replayed_and_the_rest_come_back_in_order() {
        let live = unretired(sample());
        let seqs: Vec<u64> = live.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn debug_shows_no_caps_names_or_contents() {
        let shown = format!("{:?}", sample());
        assert!(
            !shown.contains("URI:") && !shown.contains("file-") && !shown.contains("hello"),
            "{shown}"
        );
    }
}
