//! Fuzz targets for Tahoe's HTTP storage protocol: CBOR bodies and request heads.

use std::collections::{BTreeMap, BTreeSet};

use ciborium::value::Value as Cbor;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use lafs_gateway::grid::storage::http::{server, wire};
use lafs_gateway::grid::storage::{ReadTestWriteResult, ServerVersion};

use super::outcome::{class_of, detail_of, utf8};
use crate::engine::Target;

// The HTTP storage protocol's CBOR bodies: the decoder, then every request and answer schema
// (the server reads requests, the client reads answers; both come from the network).

fn uint(n: u64) -> Cbor {
    Cbor::Integer(n.into())
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

fn http_cbor_seeds() -> Vec<Vec<u8>> {
    let shares: BTreeSet<_> = [0u8, 3, 9].into_iter().map(Into::into).collect();
    let rtw = Cbor::Map(vec![
        (
            text("test-write-vectors"),
            Cbor::Map(vec![(
                uint(0),
                Cbor::Map(vec![
                    (
                        text("test"),
                        Cbor::Array(vec![Cbor::Map(vec![
                            (text("offset"), uint(0)),
                            (text("size"), uint(3)),
                            (text("specimen"), Cbor::Bytes(b"abc".to_vec())),
                        ])]),
                    ),
                    (
                        text("write"),
                        Cbor::Array(vec![Cbor::Map(vec![
                            (text("offset"), uint(10)),
                            (text("data"), Cbor::Bytes(b"xyz".to_vec())),
                        ])]),
                    ),
                    (text("new-length"), Cbor::Null),
                ]),
            )]),
        ),
        (
            text("read-vector"),
            Cbor::Array(vec![Cbor::Map(vec![
                (text("offset"), uint(0)),
                (text("size"), uint(100)),
            ])]),
        ),
    ]);
    let answer = ReadTestWriteResult {
        success: true,
        data: BTreeMap::from([(1u8.into(), vec![b"abc".to_vec()])]),
    };
    let version = ServerVersion {
        available_space: 1 << 30,
        maximum_immutable_share_size: 1 << 40,
    };
    [
        wire::share_set(&shares),
        wire::allocate_request(&shares, 123_456),
        wire::allocate_response(&shares, &BTreeSet::new()),
        wire::required_ranges(&[(0, 10), (20, 30)]),
        wire::corrupt_request("bad block"),
        wire::version_body(&version, "lafs-gateway/0.1.0"),
        wire::read_test_write_response(&answer),
        rtw,
    ]
    .iter()
    .map(wire::encode)
    .collect()
}

fn http_cbor_run(input: &[u8]) -> String {
    let value = match wire::decode(input) {
        Ok(value) => value,
        Err(e) => return format!("undecodable {}", detail_of(&e.to_string())),
    };
    let outcomes = [
        wire::parse_share_set(&value).map(drop),
        wire::parse_version(&value).map(drop),
        wire::parse_allocate_request(&value).map(drop),
        wire::parse_allocate_response(&value).map(drop),
        wire::parse_required_ranges(&value).map(drop),
        wire::parse_corrupt_request(&value).map(drop),
        wire::parse_read_test_write_request(&value).map(drop),
        wire::parse_read_test_write_response(&value).map(drop),
    ];
    // A value must survive the trip back through our encoder.
    let again = wire::encode(&value);
    assert!(wire::decode(&again).is_ok(), "re-encoded CBOR does not decode");
    outcomes
        .iter()
        .map(|o| o.as_ref().map_err(|e| detail_of(&e.to_string())))
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub const HTTP_CBOR: Target = Target {
    name: "http_cbor",
    seeds: http_cbor_seeds,
    dictionary: &[
        b"\xa0",
        b"\xa1",
        b"\x80",
        b"\x81",
        b"\x9f",
        b"\xbf",
        b"\xff",
        b"\xf6",
        b"\xf5",
        b"\xf4",
        b"\x1b",
        b"\x1a",
        b"\xc0",
        b"\xd9\xd9\xf7",
        b"\x5f",
        b"\x7f",
        b"\x6b",
        b"\x6e",
        b"offset",
        b"size",
        b"data",
        b"test",
        b"write",
        b"new-length",
        b"specimen",
        b"share-numbers",
        b"allocated-size",
        b"reason",
        b"test-write-vectors",
        b"read-vector",
        b"success",
        b"required",
    ],
    max_len: 8192,
    run: http_cbor_run,
};

// ---------------------------------------------------------------------------------------------
// The HTTP storage protocol's request heads: path segments, X-Tahoe-Authorization secrets and
// Range / Content-Range, over a sequence of requests (blank-line separated) to one upload.

fn http_headers_seeds() -> Vec<Vec<u8>> {
    let b64 = |n: usize| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
    };
    let si = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    vec![
        format!(
            "/storage/v1/immutable/{si}\nX-Tahoe-Authorization: upload-secret {}\nX-Tahoe-Authorization: lease-renew-secret {}\nX-Tahoe-Authorization: lease-cancel-secret {}\n",
            b64(32),
            b64(32),
            b64(32)
        ),
        format!(
            "/storage/v1/immutable/{si}/3\nX-Tahoe-Authorization: upload-secret {}\nContent-Range: bytes 0-99/*\n\n/storage/v1/immutable/{si}/3\nContent-Range: bytes 200-299/1000\n\n/x\nContent-Range: bytes 100-199/*\n",
            b64(20)
        ),
        format!("/storage/v1/mutable/{si}/0\nRange: bytes=10-19\n"),
        format!(
            "/storage/v1/mutable/{si}/read-test-write\nX-Tahoe-Authorization: write-enabler {}\nX-Tahoe-Authorization: lease-renew-secret {}\nX-Tahoe-Authorization: lease-cancel-secret {}\n",
            b64(32),
            b64(32),
            b64(32)
        ),
        format!("/storage/v1/lease/{si}\nX-Tahoe-Authorization: lease-renew-secret {}\n", b64(32)),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn http_headers_run(input: &[u8]) -> String {
    // The last 2 bytes, when present, give the allocated size (up to 64 KiB) of the upload.
    let allocated = match input {
        [.., a, b] => u64::from(u16::from_be_bytes([*a, *b])),
        _ => 1000,
    };
    let mut requests = Vec::new();
    for block in input
        .split(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .split(|line| line.is_empty())
    {
        let Some((path, headers)) = block.split_first() else {
            continue;
        };
        let mut map = HeaderMap::new();
        for line in headers {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            let value = value.strip_prefix(b" ").unwrap_or(value);
            // hyper hands the server only valid names and values.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                map.append(name, value);
            }
        }
        requests.push((utf8(path), map));
    }
    let outcomes = server::fuzzing::requests(&requests, allocated);
    outcomes
        .iter()
        .map(|o| class_of(o))
        .take(16)
        .collect::<Vec<_>>()
        .join(",")
}

pub const HTTP_HEADERS: Target = Target {
    name: "http_headers",
    seeds: http_headers_seeds,
    dictionary: &[
        b"X-Tahoe-Authorization: ",
        b"upload-secret ",
        b"lease-renew-secret ",
        b"lease-cancel-secret ",
        b"write-enabler ",
        b"Range: bytes=",
        b"Content-Range: bytes ",
        b"/*",
        b"\n\n",
        b"/storage/v1/",
        b"immutable/",
        b"mutable/",
        b"=",
        b"==",
    ],
    max_len: 4096,
    run: http_headers_run,
};
