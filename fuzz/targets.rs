//! The fuzz targets: every parser that reads bytes from the network or from users, each with
//! seeds of the real format, a dictionary of its tokens, and properties its parse must keep.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use ciborium::value::Value as Cbor;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use lafs_gateway::frontends::accounts::{Accounts, check_public_key_line};
use lafs_gateway::grid::announcement::{furl_tubid, parse_announcement, parse_servers_yaml};
use lafs_gateway::grid::dirnode::{self, Child};
use lafs_gateway::grid::hashutil::{tag, tagged_hash};
use lafs_gateway::grid::immutable::layout::{FileShape, ShareLayout, be_uint, max_hash_region};
use lafs_gateway::grid::immutable::ueb::UriExtension;
use lafs_gateway::grid::mutable::keys::MutableKeys;
use lafs_gateway::grid::mutable::share::AnyShare;
use lafs_gateway::grid::mutable::{mdmf, sdmf};
use lafs_gateway::grid::nurl::Nurl;
use lafs_gateway::grid::storage::http::{server, wire};
use lafs_gateway::grid::storage::mutable_container;
use lafs_gateway::grid::storage::{ReadTestWriteResult, ServerVersion};
use lafs_gateway::grid::uri::Cap;

use crate::engine::Target;

/// An outcome class from an error's text: its words up to the first detail (quoted text,
/// numbers), so that errors naming the input do not each count as new.
fn class_of(text: &str) -> String {
    text.split(['"', '\'', ':', '(', '{', '['])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphabetic() || *c == ' ')
        .take(60)
        .collect()
}

/// A finer outcome class: the whole message without its quoted parts and numbers, for errors
/// whose text says which field or rule failed.
fn detail_of(text: &str) -> String {
    let mut class = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            _ if quoted || c.is_ascii_digit() => {}
            _ => class.push(c),
        }
    }
    class.chars().take(80).collect()
}

fn utf8(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

// ---------------------------------------------------------------------------------------------
// SFTP packets: russh-sftp's decoder, fed exactly what our server reads after the length field.

fn sftp_seeds() -> Vec<Vec<u8>> {
    use russh_sftp::protocol::*;
    let attrs = FileAttributes {
        size: Some(5),
        uid: Some(1),
        gid: Some(2),
        permissions: Some(0o100644),
        atime: Some(1),
        mtime: Some(2),
        ..FileAttributes::empty()
    };
    let handle = || "h1".to_string();
    let packets: Vec<Packet> = vec![
        Packet::Init(Init {
            version: 3,
            extensions: std::collections::HashMap::from([("posix-rename@openssh.com".to_string(), "1".to_string())]),
        }),
        Packet::Open(Open {
            id: 1,
            filename: "/a/b.txt".into(),
            pflags: OpenFlags::READ | OpenFlags::WRITE | OpenFlags::CREATE,
            attrs: attrs.clone(),
        }),
        Packet::Close(Close {
            id: 2,
            handle: handle(),
        }),
        Packet::Read(Read {
            id: 3,
            handle: handle(),
            offset: 10,
            len: 32768,
        }),
        Packet::Write(Write {
            id: 4,
            handle: handle(),
            offset: 0,
            data: b"hello".to_vec(),
        }),
        Packet::Lstat(Lstat {
            id: 5,
            path: "/".into(),
        }),
        Packet::Fstat(Fstat {
            id: 6,
            handle: handle(),
        }),
        Packet::SetStat(SetStat {
            id: 7,
            path: "x".into(),
            attrs: attrs.clone(),
        }),
        Packet::FSetStat(FSetStat {
            id: 8,
            handle: handle(),
            attrs,
        }),
        Packet::OpenDir(OpenDir {
            id: 9,
            path: ".".into(),
        }),
        Packet::ReadDir(ReadDir {
            id: 10,
            handle: handle(),
        }),
        Packet::Remove(Remove {
            id: 11,
            filename: "f".into(),
        }),
        Packet::MkDir(MkDir {
            id: 12,
            path: "d".into(),
            attrs: FileAttributes::empty(),
        }),
        Packet::RmDir(RmDir {
            id: 13,
            path: "d".into(),
        }),
        Packet::RealPath(RealPath {
            id: 14,
            path: ".".into(),
        }),
        Packet::Stat(Stat {
            id: 15,
            path: "f".into(),
        }),
        Packet::Rename(Rename {
            id: 16,
            oldpath: "a".into(),
            newpath: "b".into(),
        }),
        Packet::ReadLink(ReadLink {
            id: 17,
            path: "l".into(),
        }),
        Packet::Symlink(Symlink {
            id: 18,
            linkpath: "l".into(),
            targetpath: "t".into(),
        }),
        Packet::Extended(Extended {
            id: 19,
            request: "posix-rename@openssh.com".into(),
            data: b"\0\0\0\x01a\0\0\0\x01b".to_vec(),
        }),
        Packet::Extended(Extended {
            id: 20,
            request: "statvfs@openssh.com".into(),
            data: b"\0\0\0\x01/".to_vec(),
        }),
    ];
    packets
        .into_iter()
        .filter_map(|p| Bytes::try_from(p).ok())
        // The encoder writes the length field; the server decodes what follows it.
        .map(|b| b.get(4..).unwrap_or_default().to_vec())
        .collect()
}

fn sftp_run(input: &[u8]) -> String {
    let mut bytes = Bytes::copy_from_slice(input);
    match russh_sftp::protocol::Packet::try_from(&mut bytes) {
        Ok(packet) => {
            let name = format!("{packet:?}");
            let name = name.split(['(', ' ', '{']).next().unwrap_or_default().to_string();
            // Our replies go through the same encoder; a decoded packet must encode.
            let _ = Bytes::try_from(packet);
            name
        }
        Err(e) => format!("error {}", detail_of(&e.to_string())),
    }
}

pub const SFTP_PACKETS: Target = Target {
    name: "sftp_packets",
    seeds: sftp_seeds,
    dictionary: &[
        b"\0\0\0\0",
        b"\xff\xff\xff\xff",
        b"\x7f\xff\xff\xff",
        b"\0\0\0\x0f",
        b"\0\0\0\xff",
        b"posix-rename@openssh.com",
        b"statvfs@openssh.com",
        b"hardlink@openssh.com",
        b"fsync@openssh.com",
        b"limits@openssh.com",
    ],
    max_len: 4096,
    run: sftp_run,
};

// ---------------------------------------------------------------------------------------------
// FTP command lines: libunftp's control-channel decoder (Telnet stripping, line splitting, the
// command parser), with the input cut into socket reads.

fn ftp_seeds() -> Vec<Vec<u8>> {
    [
        "USER demo\r\n",
        "PASS secret\r\n",
        "ACCT x\r\n",
        "SYST\r\n",
        "FEAT\r\n",
        "OPTS UTF8 ON\r\n",
        "AUTH TLS\r\n",
        "PBSZ 0\r\n",
        "PROT P\r\n",
        "CCC\r\n",
        "TYPE I\r\n",
        "MODE S\r\n",
        "STRU F\r\n",
        "PWD\r\n",
        "CWD /docs\r\n",
        "CDUP\r\n",
        "MKD new dir\r\n",
        "RMD old\r\n",
        "DELE f.txt\r\n",
        "RNFR a\r\nRNTO b\r\n",
        "PASV\r\n",
        "EPSV\r\n",
        "EPSV ALL\r\n",
        "PORT 127,0,0,1,4,1\r\n",
        "EPRT |1|127.0.0.1|1025|\r\n",
        "EPRT |2|::1|1025|\r\n",
        "REST 100\r\n",
        "RETR f.txt\r\n",
        "STOR f.txt\r\n",
        "STOU\r\n",
        "APPE f.txt\r\n",
        "ALLO 1000\r\n",
        "LIST -la /\r\n",
        "NLST\r\n",
        "MLSD /\r\n",
        "MLST f.txt\r\n",
        "MDTM f.txt\r\n",
        "SIZE f.txt\r\n",
        "MFMT 20240102030405 f.txt\r\n",
        "SITE MD5 f.txt\r\n",
        "STAT /\r\n",
        "HELP\r\n",
        "NOOP\r\n",
        "QUIT\r\n",
        "\u{7f}ABOR\r\n",
        "HOST example.org\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        b"\xff\xf4\xff\xf2ABOR\r\n".to_vec(),
        b"\xff\xf4\xff\xf2ABOR\r".to_vec(),
        b"NOOP\rNOOP\r\n".to_vec(),
        b"\x05USER demo\r\nPASS demo\r\nLIST\r\n".to_vec(),
    ])
    .collect()
}

fn ftp_run(input: &[u8]) -> String {
    // The first byte picks how the rest arrives: whole, or in reads of 1..=31 bytes.
    let (split, rest) = input.split_first().map_or((0, input), |(b, r)| (*b, r));
    let reads: Vec<&[u8]> = match split % 32 {
        0 => vec![rest],
        n => rest.chunks(usize::from(n)).collect(),
    };
    let lines = libunftp::decode_for_fuzzing(&reads);
    lines
        .iter()
        .map(|line| match line {
            Ok(command) => command.split(['(', ' ', '{']).next().unwrap_or_default().to_string(),
            Err(e) => class_of(e),
        })
        .take(4)
        .collect::<Vec<_>>()
        .join(",")
}

pub const FTP_COMMANDS: Target = Target {
    name: "ftp_commands",
    seeds: ftp_seeds,
    dictionary: &[
        b"\r\n",
        b"\r",
        b"\n",
        b"\xff\xff",
        b"\xff\xf4",
        b"\xff\xf2",
        b"\xff",
        b" ",
        b"|",
        b",",
        b"-",
        b"MFMT ",
        b"SITE ",
        b"EPRT ",
        b"PORT ",
        b"REST ",
        b"OPTS ",
        b"PROT ",
        b"AUTH ",
        b"PBSZ ",
        b"STRU ",
        b"MODE ",
        b"ALLO ",
        b"MLST ",
        b"\xc3\xa9",
        b"\xe2\x82",
    ],
    max_len: 2048,
    run: ftp_run,
};

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// Accounts lines (private/accounts) and the public key lines `lafs account add --key` takes.

const ED25519_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example";
const DIRCAP: &str = "URI:DIR2:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq";
const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$Xx3r7mDQjyjNv1Qa+XK5r1OxzbE7dmjaJvULaWVfMZo";

fn accounts_seeds() -> Vec<Vec<u8>> {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/accounts.example")).unwrap_or_default();
    vec![
        example,
        format!("alice {ED25519_KEY} {DIRCAP}\n"),
        format!("bob {PASSWORD_HASH} {DIRCAP}\n# comment\n\nbob {ED25519_KEY} {DIRCAP}\n"),
        format!("carol {PASSWORD_HASH} URI:DIR2-RO:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq\n"),
        ED25519_KEY.to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn accounts_run(input: &[u8]) -> String {
    let text = utf8(input);
    let (accounts, errors) = Accounts::parse(&text);
    for line in text.lines() {
        if let Some(user) = line.split_whitespace().next()
            && let Some(account) = accounts.get(user)
        {
            assert_eq!(account.user, user, "an account filed under another user's name");
            let _ = account.has_password();
        }
    }
    let key = check_public_key_line(&text).map_err(|e| class_of(&e));
    if let Ok(line) = &key {
        // What we write back must read again as the same key.
        assert_eq!(
            check_public_key_line(line).as_ref(),
            Ok(line),
            "a key line does not round-trip"
        );
    }
    let classes: Vec<String> = errors.iter().map(|e| class_of(&e.message)).take(4).collect();
    format!("{} {classes:?} {:?}", accounts.len(), key.map(|_| ()))
}

pub const ACCOUNTS: Target = Target {
    name: "accounts",
    seeds: accounts_seeds,
    dictionary: &[
        b" ",
        b"\n",
        b"#",
        b"$argon2id$",
        b"$argon2i$",
        b"$argon2d$",
        b"v=19$",
        b"m=",
        b",t=",
        b",p=",
        b"ssh-ed25519 ",
        b"ssh-rsa ",
        b"ecdsa-sha2-nistp256 ",
        b"sk-ssh-ed25519@openssh.com ",
        b"AAAA",
        b"URI:DIR2:",
        b"URI:DIR2-RO:",
        b"URI:DIR2-MDMF:",
        b"URI:CHK:",
        b"=",
    ],
    max_len: 4096,
    run: accounts_run,
};

// ---------------------------------------------------------------------------------------------
// Caps: what users paste and what directories hold.

fn caps_seeds() -> Vec<Vec<u8>> {
    let chk = "URI:CHK:yzxcoagbetwet65ltjpbqyli3m:6b7inuiha2xdtgqzd55i6aeggutnxzr6qfwpv2ep5xlln6pgef7a:1:1:56";
    let ssk = "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq";
    let mdmf = "URI:MDMF:tn2ekpkmearz7k3bivm3ikuz3i:wcqgst36kymoirczlkok5pqdekt5lgsyfw3oh7ecoro3rj5aiyya";
    let mut seeds = vec![
        chk.to_string(),
        ssk.to_string(),
        mdmf.to_string(),
        "URI:LIT:nbswy3dpeb3w64tmmq".to_string(),
        "URI:LIT:".to_string(),
        "URI:UNKNOWN:abc".to_string(),
    ];
    for cap in [chk, ssk, mdmf] {
        if let Ok(parsed) = Cap::parse(cap) {
            seeds.push(parsed.read_only().to_string());
        }
    }
    for (dir, file) in [
        ("URI:DIR2:", "URI:SSK:"),
        ("URI:DIR2-MDMF:", "URI:MDMF:"),
        ("URI:DIR2-CHK:", "URI:CHK:"),
    ] {
        let base = [chk, ssk, mdmf]
            .into_iter()
            .find(|c| c.starts_with(file))
            .unwrap_or(chk);
        seeds.push(base.replacen(file, dir, 1));
    }
    seeds.into_iter().map(String::into_bytes).collect()
}

fn caps_run(input: &[u8]) -> String {
    let text = utf8(input);
    match Cap::parse(&text) {
        Ok(cap) => {
            let printed = cap.to_string();
            let again = Cap::parse(&printed);
            assert!(
                again.as_ref().is_ok_and(|c| c.to_string() == printed),
                "cap {printed:?} does not parse back to itself: {again:?}"
            );
            let read_only = cap.read_only();
            assert!(
                read_only.is_read_only() || matches!(read_only, Cap::Unknown(..)),
                "read_only of {printed:?}"
            );
            let si = cap.storage_index().is_some();
            format!("{} {si} {}", cap.kind(), cap.is_immutable())
        }
        // The number of fields tells apart errors that read the same.
        Err(e) => format!(
            "error {} {}",
            detail_of(&e.to_string()),
            text.split(':').count().min(12)
        ),
    }
}

pub const CAPS: Target = Target {
    name: "caps",
    seeds: caps_seeds,
    dictionary: &[
        b"URI:",
        b"LIT:",
        b"CHK:",
        b"CHK-Verifier:",
        b"SSK:",
        b"SSK-RO:",
        b"SSK-Verifier:",
        b"MDMF:",
        b"MDMF-RO:",
        b"MDMF-Verifier:",
        b"DIR2:",
        b"DIR2-RO:",
        b"DIR2-CHK:",
        b"DIR2-LIT:",
        b"DIR2-MDMF:",
        b"DIR2-MDMF-RO:",
        b":",
        b"ro.",
        b"imm.",
        b"a",
        b"7",
        b"=",
    ],
    max_len: 1024,
    run: caps_run,
};

// ---------------------------------------------------------------------------------------------
// servers.yaml, and one announcement's `ann` mapping with the NURLs and fURLs in it.

const REAL_SERVERS_YAML: &str = r#"
storage:
  v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua:
    ann:
      anonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3
      anonymous-storage-NURLs:
      - pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:50153/mfqqv6agaglcfn4tlbjpwd5cn43givi3#v=1
      app-versions: []
      my-version: tahoe-lafs/1.20.0
      nickname: s1
      nonce: ekrbtiz3ehk3ikrpneonqnqdhp4ddz3ybtatocn7quno7yroocjq
      oldest-supported: 1.0.0
      permutation-seed-base32: ov4hi2tbofzxi5bwoy3diz3oov4gq5btoj3humrwnv5do5lznfrte5dqgjutgyljo54tgztcnnygo33oovqq
      seqnum: 1
      service-name: storage
      version: 0
  v0-second:
    ann:
      anonymous-storage-FURL: pb://QBAM4KYTKIBY34F4N3M5SHYDXZNAIVNF@tor:abc.onion:1/x
      anonymous-storage-NURLs: [ "pb+tor://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@[::1]:1/s#v=1" ]
"#;

fn servers_yaml_seeds() -> Vec<Vec<u8>> {
    vec![
        REAL_SERVERS_YAML.as_bytes().to_vec(),
        b"storage: {}\n".to_vec(),
        b"storage:\n  a: &x {ann: {nickname: *x}}\n".to_vec(),
    ]
}

fn servers_yaml_run(input: &[u8]) -> String {
    match parse_servers_yaml(&utf8(input)) {
        Ok(servers) => {
            for server in &servers.usable {
                assert!(!server.nurls.is_empty(), "a usable server without a NURL");
                let _ = server.server_id();
            }
            let skipped: Vec<String> = servers
                .skipped
                .iter()
                .map(|e| class_of(&e.to_string()))
                .take(3)
                .collect();
            format!("{} usable, skipped {skipped:?}", servers.usable.len())
        }
        Err(e) => format!("error {}", class_of(&e.to_string())),
    }
}

fn announcement_seeds() -> Vec<Vec<u8>> {
    // `server id` line, then the ann mapping as YAML.
    let ann = REAL_SERVERS_YAML
        .split("    ann:\n")
        .nth(1)
        .and_then(|s| s.split("  v0-second").next())
        .unwrap_or_default();
    let unindented: String = ann.lines().map(|l| format!("{}\n", l.trim_start())).collect();
    vec![
        format!("v0-uxtjaqstt6v64gnuxht3rvz26mz7uyic2tp2i3aiwy3fbkpgonua\n{unindented}").into_bytes(),
        b"v0-x\nanonymous-storage-FURL: pb://qbam4kytkiby34f4n3m5shydxznaivnf@h:1/s\nanonymous-storage-NURLs: [\"pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@[::1]:65535/s#v=1\"]\n".to_vec(),
    ]
}

fn announcement_run(input: &[u8]) -> String {
    let text = utf8(input);
    let (server_id, yaml) = text.split_once('\n').unwrap_or((&text, ""));
    let mut classes = Vec::new();
    // Every line on its own as a NURL and as a fURL.
    for line in yaml.lines().take(8) {
        let value = line.trim_start_matches(['-', ' ', '"']).trim_end_matches('"');
        let value = value.split_once(": ").map_or(value, |(_, v)| v);
        if let Ok(nurl) = value.parse::<Nurl>() {
            let again: Result<Nurl, _> = nurl.to_string().parse();
            assert_eq!(again.as_ref().ok(), Some(&nurl), "NURL {value:?} does not round-trip");
            classes.push("nurl".to_string());
        }
        if furl_tubid(value).is_some() {
            classes.push("furl".to_string());
        }
    }
    match serde_yaml::from_str::<serde_yaml::Value>(yaml) {
        Ok(ann) => match parse_announcement(server_id, &ann) {
            Ok(parsed) => classes.push(format!("ok {}", parsed.nurls.len())),
            Err(e) => classes.push(class_of(&e.to_string())),
        },
        Err(_) => classes.push("no yaml".to_string()),
    }
    classes.join(",")
}

fn servers_yaml_and_announcement_seeds() -> Vec<Vec<u8>> {
    servers_yaml_seeds().into_iter().chain(announcement_seeds()).collect()
}

/// The whole file, and the same bytes as `server id` line + one `ann` mapping.
fn servers_yaml_and_announcement_run(input: &[u8]) -> String {
    format!("{} / {}", servers_yaml_run(input), announcement_run(input))
}

pub const SERVERS_YAML: Target = Target {
    name: "servers_yaml",
    seeds: servers_yaml_and_announcement_seeds,
    dictionary: &[
        b"storage:",
        b"ann:",
        b"anonymous-storage-FURL: ",
        b"anonymous-storage-NURLs:",
        b"- ",
        b"pb://",
        b"pb+tor://",
        b"#v=1",
        b"@",
        b"[::1]",
        b":0",
        b":65536",
        b"service-name: storage",
        b"permutation-seed-base32: ",
        b"nickname: ",
        b"v0-",
        b"/",
        b"?",
        b"#",
        b"\n",
        b"\n  ",
        b"\n    ",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"{",
        b"}",
        b"[",
        b"]",
        b"---\n",
        b"? ",
        b"<<: ",
    ],
    max_len: 8192,
    run: servers_yaml_and_announcement_run,
};

// ---------------------------------------------------------------------------------------------
// Immutable shares as read from servers: the share header, the UEB length field and the UEB,
// and the mutable container's header and leases (the on-disk format servers serve from).

fn immutable_share_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (size, k, n) in [
        (1000u64, 3usize, 10usize),
        (56, 1, 1),
        (5 << 20, 3, 10),
        (1 << 34, 2, 255),
    ] {
        let shape = FileShape::new(size, k, n, 128 << 10);
        let ueb = UriExtension {
            codec_name: "crs".into(),
            codec_params: format!("{}-{k}-{n}", shape.segment_size),
            tail_codec_params: format!("{}-{k}-{n}", shape.tail_size),
            crypttext_hash: [1; 32],
            crypttext_root_hash: [2; 32],
            share_root_hash: [3; 32],
            needed_shares: k as u64,
            total_shares: n as u64,
            num_segments: shape.num_segments,
            segment_size: shape.segment_size,
            size,
        };
        let packed = ueb.pack();
        let layout = ShareLayout::for_upload(&shape, packed.len() as u64);
        let mut share = layout.encode_header();
        share.extend_from_slice(&packed);
        seeds.push(share);
        seeds.push(packed);
    }
    seeds
}

fn immutable_share_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    match ShareLayout::decode_header(input) {
        Ok(layout) => {
            let field = layout.ueb_length_field();
            let _ = layout.share_size(input.len() as u64);
            let at = usize::try_from(layout.uri_extension).unwrap_or(usize::MAX);
            let len_end = at.saturating_add(field as usize);
            if let Some(len_bytes) = input.get(at..len_end.min(input.len())) {
                let len = be_uint(len_bytes);
                classes.push(format!("header, ueb len {}", len.min(1 << 20) > 0));
            }
        }
        Err(e) => classes.push(class_of(&e.to_string())),
    }
    // The UEB is read wherever it sits; try it at the start and after a v1/v2 header.
    for offset in [0usize, 0x24, 0x44] {
        if let Some(packed) = input.get(offset..) {
            match UriExtension::parse(packed) {
                Ok(ueb) => {
                    assert_eq!(
                        UriExtension::parse(&ueb.pack()).as_ref(),
                        Ok(&ueb),
                        "UEB does not round-trip"
                    );
                    if let Ok(total) = usize::try_from(ueb.total_shares)
                        && total <= 256
                    {
                        let _ = max_hash_region(ueb.num_segments, total);
                    }
                    classes.push("ueb".to_string());
                }
                Err(e) => classes.push(class_of(&e.to_string())),
            }
        }
    }
    if let Some(header) = mutable_container::Header::decode(input) {
        assert_eq!(
            mutable_container::Header::decode(&header.encode()),
            Some(header),
            "container header"
        );
        classes.push("container".to_string());
    }
    if mutable_container::Lease::decode(input).is_some() {
        classes.push("lease".to_string());
    }
    classes.join(",")
}

const IMMUTABLE_SHARE_TOKENS: &[&[u8]] = &[
    b"\0\0\0\x01",
    b"\0\0\0\x02",
    b"codec_name:",
    b"codec_params:",
    b"crypttext_hash:",
    b"num_segments:",
    b"segment_size:",
    b"size:",
    b"needed_shares:",
    b"total_shares:",
    b"share_root_hash:",
    b"tail_codec_params:",
    b"crypttext_root_hash:",
    b"3:crs,",
    b"32:",
    b",",
    b"Tahoe mutable container v1\n\x75\x09\x44\x03\x8e",
    b"\0",
    b"\x01",
    b"\0\0\0\0",
    b"\xff\xff\xff\xff",
    b"\0\0\0\0\0\0\0\0",
    b"\0\0\0\0\0\0\x10\0",
    b"0:,",
    b"1:x,",
    b"URI:SSK:",
    b"{\"tahoe\":{}}",
];

// ---------------------------------------------------------------------------------------------
// Mutable shares (SDMF and MDMF) as read from servers, verified as retrieve does, and the
// directory bodies they carry.

fn mutable_share_seeds() -> Vec<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let mut seeds = Vec::new();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/tahoe-test-vectors.yaml");
    let key = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Value>(&text).ok())
        .and_then(|vectors| {
            vectors["vector"]
                .as_sequence()?
                .iter()
                .find_map(|v| v["format"]["params"]["key"].as_str().map(str::to_string))
        })
        .and_then(|pem| rsa::RsaPrivateKey::from_pkcs1_pem(&pem).ok());
    if let Some(key) = key
        && let Ok(keys) = MutableKeys::from_signing_key(&key)
    {
        if let Ok(shares) = sdmf::encode(&keys, &key, b"hello, mutable world", 1, 2, 3, [5; 16]) {
            seeds.extend(shares.iter().take(2).map(sdmf::Share::encode));
        }
        if let Ok(shares) = mdmf::encode(&keys, &key, &[7u8; 3000], 2, 2, 3) {
            seeds.extend(shares.iter().take(2).map(mdmf::Share::encode));
        }
    }
    let child = Child {
        write_cap: Some(
            "URI:SSK:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq".into(),
        ),
        read_cap: Some(
            "URI:SSK-RO:fs6ul2fju2fvb2cfx7gt6ngycm:hncpinwszbggrurbvuaaexnftk3j5wfr7473pj2g734mo2isxlbq".into(),
        ),
        metadata: serde_json::json!({"tahoe": {"linkcrtime": 1.5, "linkmotime": 2.5}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    let children = BTreeMap::from([("a file".to_string(), child.clone()), ("é".to_string(), child)]);
    seeds.push(dirnode::pack(&children, None));
    seeds.push(dirnode::pack(&children, Some(&[9; 16])));
    seeds
}

fn mutable_share_run(input: &[u8]) -> String {
    let mut classes = Vec::new();
    match AnyShare::parse(input) {
        Ok(share) => {
            let image = share.encode();
            let reparsed = AnyShare::parse(&image).map(|s| s.encode());
            assert_eq!(reparsed.as_ref(), Ok(&image), "a share image does not round-trip");
            let key = match &share {
                AnyShare::Sdmf(s) => s.verification_key.clone(),
                AnyShare::Mdmf(s) => s.verification_key.clone(),
            };
            // Verified against its own key's fingerprint, so the checks past it run too.
            let fingerprint = tagged_hash(tag::MUTABLE_PUBKEY, &key);
            let verified = share.verify(0, &fingerprint).map_err(|e| class_of(&e.to_string()));
            let _ = (share.version(), share.needed(), share.total(), share.format());
            classes.push(format!("{:?} {verified:?}", share.format()));
        }
        Err(e) => classes.push(class_of(&e.to_string())),
    }
    for writekey in [None, Some(&[9u8; 16])] {
        match dirnode::unpack(input, writekey) {
            Ok(children) => {
                let packed = dirnode::pack(&children, writekey);
                assert_eq!(
                    dirnode::unpack(&packed, writekey).ok().map(|c| c.len()),
                    Some(children.len()),
                    "a directory body does not round-trip"
                );
                classes.push(format!("dir {}", children.len().min(3)));
            }
            Err(e) => classes.push(class_of(&e.to_string())),
        }
    }
    classes.join(",")
}

fn share_seeds() -> Vec<Vec<u8>> {
    immutable_share_seeds()
        .into_iter()
        .chain(mutable_share_seeds())
        .collect()
}

fn share_run(input: &[u8]) -> String {
    format!("{} / {}", immutable_share_run(input), mutable_share_run(input))
}

pub const SHARES: Target = Target {
    name: "shares",
    seeds: share_seeds,
    dictionary: IMMUTABLE_SHARE_TOKENS,
    max_len: 16 << 10,
    run: share_run,
};
