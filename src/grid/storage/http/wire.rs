//! The CBOR bodies of Tahoe's HTTP storage protocol: sets as tag 258, `/version` with
//! byte-string keys, everything else with text keys. Pure codecs, no I/O.

use std::collections::{BTreeMap, BTreeSet};

use ciborium::value::Value;

use crate::grid::storage::{ReadTestWriteResult, ServerVersion, ShareNum, TestAndWrite, TestVector};

/// The protocol key of `/version`.
pub const STORAGE_V1: &str = "http://allmydata.org/tahoe/protocols/storage/v1";

/// CBOR's tag for a mathematical finite set (Tahoe's share-number sets).
const SET_TAG: u64 = 258;

/// Largest mutable share a server accepts (Tahoe's constant).
pub const MAXIMUM_MUTABLE_SHARE_SIZE: u64 = 69_105 * 1_000_000_000_000;

/// Why a body is not what the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CBOR body: {0}")]
pub struct WireError(pub String);

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

/// Encodes a value as CBOR.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(value, &mut out);
    out
}

/// Decodes one CBOR value, refusing trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<Value, WireError> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader(&mut reader).map_err(|e| bad(e.to_string()))?;
    if !reader.is_empty() {
        return Err(bad("trailing bytes after the CBOR value"));
    }
    Ok(value)
}

fn text(key: &str) -> Value {
    Value::Text(key.into())
}

fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

/// A set of share numbers, tagged 258.
pub fn share_set(shares: &BTreeSet<ShareNum>) -> Value {
    Value::Tag(
        SET_TAG,
        Box::new(Value::Array(shares.iter().map(|&s| uint(s.into())).collect())),
    )
}

/// Reads a tag-258 set of share numbers (Tahoe refuses untagged arrays, and so do we).
pub fn parse_share_set(value: &Value) -> Result<BTreeSet<ShareNum>, WireError> {
    match value {
        Value::Tag(SET_TAG, inner) => match inner.as_ref() {
            Value::Array(items) => items.iter().map(as_share_num).collect(),
            _ => Err(bad("a set must wrap an array")),
        },
        _ => Err(bad("expected a set (CBOR tag 258)")),
    }
}

fn as_u64(value: &Value) -> Result<u64, WireError> {
    match value {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| bad("expected an unsigned integer")),
        _ => Err(bad("expected an unsigned integer")),
    }
}

fn as_share_num(value: &Value) -> Result<ShareNum, WireError> {
    let n = as_u64(value)?;
    if n > 255 {
        return Err(bad("share numbers are 0..=255"));
    }
    Ok(n as ShareNum)
}

fn as_bytes(value: &Value) -> Result<&[u8], WireError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(bad("expected a byte string")),
    }
}

/// A map with text keys, each key at most once; `allowed` lists every key it may have.
struct TextMap<'a>(BTreeMap<&'a str, &'a Value>);

impl<'a> TextMap<'a> {
    fn parse(value: &'a Value, allowed: &[&str]) -> Result<Self, WireError> {
        let Value::Map(entries) = value else {
            return Err(bad("expected a map"));
        };
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            let Value::Text(k) = k else {
                return Err(bad("expected text keys"));
            };
            if !allowed.contains(&k.as_str()) {
                return Err(bad(format!("unexpected key {k:?}")));
            }
            if map.insert(k.as_str(), v).is_some() {
                return Err(bad(format!("key {k:?} given twice")));
            }
        }
        Ok(TextMap(map))
    }

    fn get(&self, key: &str) -> Result<&'a Value, WireError> {
        self.0
            .get(key)
            .copied()
            .ok_or_else(|| bad(format!("missing key {key:?}")))
    }

    fn array(&self, key: &str) -> Result<&'a [Value], WireError> {
        match self.get(key)? {
            Value::Array(items) => Ok(items),
            _ => Err(bad(format!("{key:?} must be an array"))),
        }
    }
}

fn text_map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// `GET /version`'s answer: byte-string keys, and exactly these keys (the 1.20 client's schema is closed).
pub fn version_body(version: &ServerVersion, application_version: &str) -> Value {
    let key = |k: &str| Value::Bytes(k.as_bytes().to_vec());
    Value::Map(vec![
        (
            key(STORAGE_V1),
            Value::Map(vec![
                (
                    key("maximum-immutable-share-size"),
                    uint(version.maximum_immutable_share_size),
                ),
                (key("maximum-mutable-share-size"), uint(MAXIMUM_MUTABLE_SHARE_SIZE)),
                (key("available-space"), uint(version.available_space)),
            ]),
        ),
        (
            key("application-version"),
            Value::Bytes(application_version.as_bytes().to_vec()),
        ),
    ])
}

/// Reads a `/version` answer (byte-string keys; text keys are accepted too).
pub fn parse_version(value: &Value) -> Result<ServerVersion, WireError> {
    fn lookup<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
        let Value::Map(entries) = map else { return None };
        entries.iter().find_map(|(k, v)| match k {
            Value::Bytes(b) if b == key.as_bytes() => Some(v),
            Value::Text(t) if t == key => Some(v),
            _ => None,
        })
    }
    let v1 = lookup(value, STORAGE_V1).ok_or_else(|| bad("no storage/v1 entry in the version"))?;
    let field = |name: &str| {
        lookup(v1, name)
            .ok_or_else(|| bad(format!("version lacks {name}")))
            .and_then(as_u64)
    };
    Ok(ServerVersion {
        available_space: field("available-space")?,
        maximum_immutable_share_size: field("maximum-immutable-share-size")?,
    })
}

/// `POST /immutable/:si`'s request.
pub fn allocate_request(shares: &BTreeSet<ShareNum>, allocated_size: u64) -> Value {
    text_map(vec![
        ("share-numbers", share_set(shares)),
        ("allocated-size", uint(allocated_size)),
    ])
}

/// Reads an allocate request: the share numbers and the allocated size.
pub fn parse_allocate_request(value: &Value) -> Result<(BTreeSet<ShareNum>, u64), WireError> {
    let map = TextMap::parse(value, &["share-numbers", "allocated-size"])?;
    Ok((
        parse_share_set(map.get("share-numbers")?)?,
        as_u64(map.get("allocated-size")?)?,
    ))
}

/// An allocate answer.
pub fn allocate_response(already_have: &BTreeSet<ShareNum>, allocated: &BTreeSet<ShareNum>) -> Value {
    text_map(vec![
        ("already-have", share_set(already_have)),
        ("allocated", share_set(allocated)),
    ])
}

/// Reads an allocate answer: (already have, allocated).
pub fn parse_allocate_response(value: &Value) -> Result<(BTreeSet<ShareNum>, BTreeSet<ShareNum>), WireError> {
    let map = TextMap::parse(value, &["already-have", "allocated"])?;
    Ok((
        parse_share_set(map.get("already-have")?)?,
        parse_share_set(map.get("allocated")?)?,
    ))
}

/// A PATCH answer: the byte ranges `[begin, end)` still missing.
pub fn required_ranges(ranges: &[(u64, u64)]) -> Value {
    text_map(vec![(
        "required",
        Value::Array(
            ranges
                .iter()
                .map(|&(begin, end)| text_map(vec![("begin", uint(begin)), ("end", uint(end))]))
                .collect(),
        ),
    )])
}

/// Reads a PATCH answer's missing ranges.
pub fn parse_required_ranges(value: &Value) -> Result<Vec<(u64, u64)>, WireError> {
    let map = TextMap::parse(value, &["required"])?;
    map.array("required")?
        .iter()
        .map(|r| {
            let r = TextMap::parse(r, &["begin", "end"])?;
            Ok((as_u64(r.get("begin")?)?, as_u64(r.get("end")?)?))
        })
        .collect()
}

/// A corruption report.
pub fn corrupt_request(reason: &str) -> Value {
    // Tahoe's schema wants 1..=32765 bytes.
    let mut reason: String = if reason.is_empty() {
        "unspecified".into()
    } else {
        reason.into()
    };
    while reason.len() > 32_765 {
        reason.pop();
    }
    text_map(vec![("reason", Value::Text(reason))])
}

/// Reads a corruption report's reason.
pub fn parse_corrupt_request(value: &Value) -> Result<String, WireError> {
    match TextMap::parse(value, &["reason"])?.get("reason")? {
        Value::Text(t) if !t.is_empty() && t.len() <= 32_765 => Ok(t.clone()),
        _ => Err(bad("reason must be 1..=32765 bytes of text")),
    }
}

fn offset_size(offset: u64, size: u64) -> Value {
    text_map(vec![("offset", uint(offset)), ("size", uint(size))])
}

/// A read-test-write request.
pub fn read_test_write_request(
    test_and_writes: &BTreeMap<ShareNum, TestAndWrite>,
    read_vector: &[(u64, u64)],
) -> Value {
    let vectors = test_and_writes
        .iter()
        .map(|(&share, tw)| {
            let tests = tw
                .tests
                .iter()
                .map(|t| {
                    text_map(vec![
                        ("offset", uint(t.offset)),
                        ("size", uint(t.size)),
                        ("specimen", Value::Bytes(t.specimen.clone())),
                    ])
                })
                .collect();
            let writes = tw
                .writes
                .iter()
                .map(|(offset, data)| text_map(vec![("offset", uint(*offset)), ("data", Value::Bytes(data.clone()))]))
                .collect();
            let new_length = tw.new_length.map_or(Value::Null, uint);
            (
                uint(share.into()),
                text_map(vec![
                    ("test", Value::Array(tests)),
                    ("write", Value::Array(writes)),
                    ("new-length", new_length),
                ]),
            )
        })
        .collect();
    text_map(vec![
        ("test-write-vectors", Value::Map(vectors)),
        (
            "read-vector",
            Value::Array(read_vector.iter().map(|&(o, s)| offset_size(o, s)).collect()),
        ),
    ])
}

/// Tahoe's schema allows at most 30 tests per share and 30 reads per request.
const MAX_VECTORS: usize = 30;
/// Offsets and lengths in a mutable share stay below this (Tahoe's maximum mutable share size).
const MAX_MUTABLE_EXTENT: u64 = MAXIMUM_MUTABLE_SHARE_SIZE;

fn within_share(offset: u64, len: u64) -> Result<(), WireError> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_MUTABLE_EXTENT => Ok(()),
        _ => Err(bad("offset and size reach past the largest mutable share")),
    }
}

/// The parts of a read-test-write request.
pub type ReadTestWrite = (BTreeMap<ShareNum, TestAndWrite>, Vec<(u64, u64)>);

/// Reads a read-test-write request.
pub fn parse_read_test_write_request(value: &Value) -> Result<ReadTestWrite, WireError> {
    let map = TextMap::parse(value, &["test-write-vectors", "read-vector"])?;
    let Value::Map(vectors) = map.get("test-write-vectors")? else {
        return Err(bad("test-write-vectors must be a map"));
    };
    let mut test_and_writes = BTreeMap::new();
    for (share, tw) in vectors {
        let share = as_share_num(share)?;
        let tw = TextMap::parse(tw, &["test", "write", "new-length"])?;
        let tests = tw
            .array("test")?
            .iter()
            .map(|t| {
                let t = TextMap::parse(t, &["offset", "size", "specimen"])?;
                let test = TestVector {
                    offset: as_u64(t.get("offset")?)?,
                    size: as_u64(t.get("size")?)?,
                    specimen: as_bytes(t.get("specimen")?)?.to_vec(),
                };
                within_share(test.offset, test.size)?;
                Ok(test)
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let writes = tw
            .array("write")?
            .iter()
            .map(|w| {
                let w = TextMap::parse(w, &["offset", "data"])?;
                let (offset, data) = (as_u64(w.get("offset")?)?, as_bytes(w.get("data")?)?.to_vec());
                within_share(offset, data.len() as u64)?;
                Ok((offset, data))
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let new_length = match tw.get("new-length")? {
            Value::Null => None,
            v => Some(as_u64(v)?),
        };
        if tests.len() > MAX_VECTORS {
            return Err(bad("more than 30 tests for one share"));
        }
        if let Some(len) = new_length {
            within_share(len, 0)?;
        }
        if test_and_writes
            .insert(
                share,
                TestAndWrite {
                    tests,
                    writes,
                    new_length,
                },
            )
            .is_some()
        {
            return Err(bad("a share number given twice"));
        }
    }
    let read_vector = map
        .array("read-vector")?
        .iter()
        .map(|r| {
            let r = TextMap::parse(r, &["offset", "size"])?;
            let (offset, size) = (as_u64(r.get("offset")?)?, as_u64(r.get("size")?)?);
            within_share(offset, size)?;
            Ok((offset, size))
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    if read_vector.len() > MAX_VECTORS {
        return Err(bad("more than 30 reads"));
    }
    Ok((test_and_writes, read_vector))
}

/// A read-test-write answer.
pub fn read_test_write_response(result: &ReadTestWriteResult) -> Value {
    let data = result
        .data
        .iter()
        .map(|(&share, reads)| {
            (
                uint(share.into()),
                Value::Array(reads.iter().map(|r| Value::Bytes(r.clone())).collect()),
            )
        })
        .collect();
    text_map(vec![
        ("success", Value::Bool(result.success)),
        ("data", Value::Map(data)),
    ])
}

/// Reads a read-test-write answer.
pub fn parse_read_test_write_response(value: &Value) -> Result<ReadTestWriteResult, WireError> {
    let map = TextMap::parse(value, &["success", "data"])?;
    let Value::Bool(success) = map.get("success")? else {
        return Err(bad("success must be a boolean"));
    };
    let Value::Map(entries) = map.get("data")? else {
        return Err(bad("data must be a map"));
    };
    let mut data = BTreeMap::new();
    for (share, reads) in entries {
        let Value::Array(reads) = reads else {
            return Err(bad("reads must be an array"));
        };
        let reads = reads
            .iter()
            .map(|r| as_bytes(r).map(<[u8]>::to_vec))
            .collect::<Result<_, _>>()?;
        data.insert(as_share_num(share)?, reads);
    }
    Ok(ReadTestWriteResult {
        success: *success,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_request_matches_tahoes_bytes() {
        // The exact body a real Tahoe 1.20 client sent for shares {0, 1, 2} of 100 bytes.
        let shares: BTreeSet<ShareNum> = [0, 1, 2].into();
        let ours = encode(&allocate_request(&shares, 100));
        let theirs = data_encoding::HEXLOWER
            .decode(b"a26d73686172652d6e756d62657273d90102830001026e616c6c6f63617465642d73697a651864")
            .unwrap();
        assert_eq!(ours, theirs);
        assert_eq!(
            parse_allocate_request(&decode(&theirs).unwrap()).unwrap(),
            (shares, 100)
        );
    }

    #[test]
    fn untagged_sets_and_unknown_keys_are_refused() {
        let untagged = text_map(vec![
            ("share-numbers", Value::Array(vec![uint(1)])),
            ("allocated-size", uint(5)),
        ]);
        assert!(parse_allocate_request(&untagged).is_err());
        let extra = text_map(vec![
            ("share-numbers", share_set(&[1].into())),
            ("allocated-size", uint(5)),
            ("more", uint(1)),
        ]);
        assert!(parse_allocate_request(&extra).is_err());
        assert!(decode(&[0xa1]).is_err(), "truncated CBOR");
        let mut trailing = encode(&uint(1));
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }

    #[test]
    fn version_has_byte_keys_and_round_trips() {
        let version = ServerVersion {
            available_space: 45_614_802_432,
            maximum_immutable_share_size: 45_614_802_432,
        };
        let body = version_body(&version, "tahoe-lafs/1.20.0");
        let Value::Map(entries) = &body else { panic!() };
        assert!(entries.iter().all(|(k, _)| matches!(k, Value::Bytes(_))));
        assert_eq!(parse_version(&decode(&encode(&body)).unwrap()).unwrap(), version);
    }

    #[test]
    fn read_test_write_round_trips() {
        let mut tw = BTreeMap::new();
        tw.insert(
            3,
            TestAndWrite {
                tests: vec![TestVector {
                    offset: 0,
                    size: 1,
                    specimen: vec![],
                }],
                writes: vec![(0, b"hello".to_vec())],
                new_length: None,
            },
        );
        tw.insert(
            4,
            TestAndWrite {
                tests: vec![],
                writes: vec![],
                new_length: Some(0),
            },
        );
        let reads = vec![(0, 57)];
        let body = decode(&encode(&read_test_write_request(&tw, &reads))).unwrap();
        assert_eq!(parse_read_test_write_request(&body).unwrap(), (tw, reads));
        let result = ReadTestWriteResult {
            success: false,
            data: [(0, vec![b"hello world".to_vec()]), (3, vec![vec![]])].into(),
        };
        let body = decode(&encode(&read_test_write_response(&result))).unwrap();
        assert_eq!(parse_read_test_write_response(&body).unwrap(), result);
        let ranges = vec![(50, 100)];
        assert_eq!(parse_required_ranges(&required_ranges(&ranges)).unwrap(), ranges);
        assert_eq!(
            parse_corrupt_request(&corrupt_request("bad block")).unwrap(),
            "bad block"
        );
        assert!(parse_corrupt_request(&text_map(vec![("reason", text(""))])).is_err());
    }
}
