//! Fuzz targets for the frontends' session protocols: SFTP packets and FTP command lines.

use bytes::Bytes;

use super::outcome::{class_of, detail_of};
use crate::engine::Target;

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
