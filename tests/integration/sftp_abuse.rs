//! Hostile SFTP input and connection floods against the real server: raw SFTP bytes over a real SSH channel, while normal sessions go on working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lafs_gateway::frontends::limits::SessionLimits;
use lafs_gateway::vfs::MAX_FILE_SIZE;
use russh::ChannelMsg;
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::gateway::Gateway;
use crate::common::pseudo_random;
use crate::sftp::rust_client::{self, AcceptAnyHostKey, Login};

pub(crate) const FXP_OPEN: u8 = 3;
pub(crate) const FXP_CLOSE: u8 = 4;
pub(crate) const FXP_READ: u8 = 5;
pub(crate) const FXP_WRITE: u8 = 6;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
pub(crate) const FXP_STAT: u8 = 17;
pub(crate) const FXP_STATUS: u8 = 101;
pub(crate) const FXP_HANDLE: u8 = 102;
pub(crate) const FXP_ATTRS: u8 = 105;
const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;
const FX_FAILURE: u32 = 4;
const FX_BAD_MESSAGE: u32 = 5;
const FX_OP_UNSUPPORTED: u32 = 8;
pub(crate) const OPEN_READ: u32 = 1;
pub(crate) const OPEN_WRITE_CREATE_TRUNCATE: u32 = 0x02 | 0x08 | 0x10;
const ATTR_SIZE: u32 = 1;
/// Longer than any answer should take; a request the server gets stuck on fails here.
const REPLY_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn string(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

/// A request body: type, id, then `rest`.
pub(crate) fn request(kind: u8, id: u32, rest: &[&[u8]]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend_from_slice(&id.to_be_bytes());
    for part in rest {
        body.extend_from_slice(part);
    }
    body
}

/// One reply as the wire has it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) kind: u8,
    pub(crate) id: u32,
    pub(crate) rest: Vec<u8>,
}

impl Reply {
    /// A status's code and message.
    pub(crate) fn status(&self) -> (u32, String) {
        assert_eq!(self.kind, FXP_STATUS, "expected a status, got {self:?}");
        let code = u32::from_be_bytes(self.rest[..4].try_into().unwrap());
        let len = u32::from_be_bytes(self.rest[4..8].try_into().unwrap()) as usize;
        (code, String::from_utf8_lossy(&self.rest[8..8 + len]).into_owned())
    }

    pub(crate) fn handle(&self) -> Vec<u8> {
        assert_eq!(self.kind, FXP_HANDLE, "expected a handle, got {self:?}");
        let len = u32::from_be_bytes(self.rest[..4].try_into().unwrap()) as usize;
        self.rest[4..4 + len].to_vec()
    }
}

/// A logged-in SSH connection with the sftp subsystem open, spoken to in raw SFTP bytes.
pub(crate) struct RawSftp {
    channel: russh::Channel<client::Msg>,
    received: Vec<u8>,
    _ssh: client::Handle<AcceptAnyHostKey>,
}

impl RawSftp {
    /// Logs in as alice with her key and exchanges INIT/VERSION.
    pub(crate) async fn open(gw: &Gateway) -> RawSftp {
        let ssh = client::connect(
            Arc::new(client::Config::default()),
            ("127.0.0.1", gw.port),
            AcceptAnyHostKey,
        )
        .await
        .unwrap();
        Self::on(ssh, gw).await
    }

    async fn on(mut ssh: client::Handle<AcceptAnyHostKey>, gw: &Gateway) -> RawSftp {
        let key = PrivateKey::read_openssh_file(gw.key()).unwrap();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), None);
        assert!(ssh.authenticate_publickey("alice", key).await.unwrap().success());
        let channel = ssh.channel_open_session().await.unwrap();
        channel.request_subsystem(true, "sftp").await.unwrap();
        let mut raw = RawSftp {
            channel,
            received: Vec::new(),
            _ssh: ssh,
        };
        raw.send(&[1, 0, 0, 0, 3]).await; // INIT, version 3
        let version = raw.reply().await.expect("a VERSION reply");
        assert_eq!(version.kind, 2);
        raw
    }

    /// Sends one framed request body.
    pub(crate) async fn send(&mut self, body: &[u8]) {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        self.send_bytes(&bytes).await;
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.channel.data(bytes).await.unwrap();
    }

    /// The next reply, or `None` once the server closed the channel.
    pub(crate) async fn reply(&mut self) -> Option<Reply> {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            if self.received.len() >= 4 {
                let len = u32::from_be_bytes(self.received[..4].try_into().unwrap()) as usize;
                if self.received.len() >= 4 + len {
                    let body: Vec<u8> = self.received.drain(..4 + len).skip(4).collect();
                    return Some(Reply {
                        kind: body[0],
                        id: u32::from_be_bytes(body[1..5].try_into().unwrap()),
                        rest: body[5..].to_vec(),
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.channel.wait()).await {
                Err(_) => panic!("no reply within {REPLY_WAIT:?}"),
                Ok(Some(ChannelMsg::Data { data })) => self.received.extend_from_slice(&data),
                Ok(Some(ChannelMsg::Eof | ChannelMsg::Close) | None) => return None,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Sends `body` and returns the reply, checking it answers `id`.
    pub(crate) async fn call(&mut self, body: &[u8]) -> Reply {
        let id = u32::from_be_bytes(body[1..5].try_into().unwrap());
        self.send(body).await;
        let reply = self.reply().await.expect("the channel stays open");
        assert_eq!(reply.id, id, "the reply answers the request: {reply:?}");
        reply
    }

    pub(crate) async fn open_file(&mut self, id: u32, path: &str, flags: u32) -> Vec<u8> {
        let body = request(
            FXP_OPEN,
            id,
            &[&string(path.as_bytes()), &flags.to_be_bytes(), &0u32.to_be_bytes()],
        );
        self.call(&body).await.handle()
    }

    pub(crate) async fn write(&mut self, id: u32, handle: &[u8], offset: u64, data: &[u8]) -> (u32, String) {
        let body = request(FXP_WRITE, id, &[&string(handle), &offset.to_be_bytes(), &string(data)]);
        self.call(&body).await.status()
    }

    /// Whether the server closed the channel: a reply-less wait ends with EOF/close.
    async fn closed_by_server(&mut self) -> bool {
        self.reply().await.is_none()
    }
}

/// A normal user's session beside the abuse: put a file, read it back, compare.
async fn normal_session(gw: &Gateway, name: &str, seed: u64) {
    let key = PrivateKey::read_openssh_file(gw.key()).unwrap();
    let sftp = rust_client::connect(gw.port, "alice", Login::Key(&key))
        .await
        .unwrap()
        .expect("a normal login works");
    let data = pseudo_random(300_000, seed);
    rust_client::put(&sftp, name.to_string(), &data).await.unwrap();
    assert!(sftp.read(name).await.unwrap() == data, "{name} came back different");
}

/// A normal session started now and checked later, to run while the abuse goes on.
fn normal_session_during(gw: &Arc<Gateway>, name: &'static str, seed: u64) -> tokio::task::JoinHandle<()> {
    let gw = gw.clone();
    tokio::spawn(async move { normal_session(&gw, name, seed).await })
}

/// CPU time (user + system) used so far by this process's threads named `name`.
fn cpu_of_threads(name: &str) -> Duration {
    let ticks_per_second = 100; // USER_HZ on Linux
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesized name: state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// A runtime whose threads carry `name`, so the CPU they use can be told apart from other tests'.
fn named_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn writes_and_size_changes_past_the_limit_or_far_past_the_end_are_refused_at_once() {
    const THREADS: &str = "abuse-offsets";
    named_runtime(THREADS).block_on(async {
        let gw = Arc::new(Gateway::start().await);
        let during = normal_session_during(&gw, "during.bin", 1);
        let mut raw = RawSftp::open(&gw).await;
        let handle = raw.open_file(10, "big", OPEN_WRITE_CREATE_TRUNCATE).await;

        let cpu_before = cpu_of_threads(THREADS);
        let (code, message) = raw.write(11, &handle, 1 << 63, b"x").await;
        assert_eq!(code, FX_FAILURE);
        assert!(message.contains("file too large"), "{message}");
        // An end that overflows u64 is past the limit too.
        let (code, message) = raw.write(12, &handle, u64::MAX - 1, b"xyz").await;
        assert_eq!((code, message.contains("too large")), (FX_FAILURE, true), "{message}");
        // Ending one byte past the limit is refused; the limit itself is a size, not an offset.
        let (code, _) = raw.write(13, &handle, MAX_FILE_SIZE, b"x").await;
        assert_eq!(code, FX_FAILURE);
        // Legal in size, but a 10 GiB gap of zeros to encrypt and upload: refused, no work done.
        let (code, message) = raw.write(14, &handle, 10 << 30, b"x").await;
        assert_eq!(code, FX_FAILURE);
        assert!(message.contains("gap too large"), "{message}");
        let size = |size: u64| [&ATTR_SIZE.to_be_bytes()[..], &size.to_be_bytes()[..]].concat();
        for (id, bytes, wanted) in [(15, 1u64 << 63, "too large"), (16, 10 << 30, "gap too large")] {
            let reply = raw
                .call(&request(FXP_FSETSTAT, id, &[&string(&handle), &size(bytes)]))
                .await;
            let (code, message) = reply.status();
            assert_eq!(code, FX_FAILURE, "fsetstat size {bytes}");
            assert!(message.contains(wanted), "{message}");
        }
        let reply = raw
            .call(&request(FXP_SETSTAT, 17, &[&string(b"big"), &size(1 << 62)]))
            .await;
        let (code, message) = reply.status();
        assert_eq!((code, message.contains("too large")), (FX_FAILURE, true), "{message}");
        let cpu_used = cpu_of_threads(THREADS) - cpu_before;

        // A small legal gap still works, and reads as zeros.
        assert_eq!(raw.write(18, &handle, 1 << 20, b"tail").await.0, FX_OK);
        assert_eq!(raw.write(19, &handle, 0, b"head").await.0, FX_OK);
        assert_eq!(
            raw.call(&request(FXP_CLOSE, 20, &[&string(&handle)])).await.status().0,
            FX_OK
        );
        let stored = gw.alice().read(b"big", 0, 2 << 20).await.unwrap();
        assert_eq!(stored.len(), (1 << 20) + 4);
        assert_eq!(&stored[..4], b"head");
        assert!(stored[4..1 << 20].iter().all(|&b| b == 0));

        // A READ far past the end is a plain EOF.
        let handle = raw.open_file(21, "big", OPEN_READ).await;
        let reply = raw
            .call(&request(
                FXP_READ,
                22,
                &[&string(&handle), &(1u64 << 63).to_be_bytes(), &4096u32.to_be_bytes()],
            ))
            .await;
        assert_eq!(reply.status().0, FX_EOF);

        // Nothing is left spinning: the gateway's threads idle once the replies are in.
        during.await.unwrap();
        let quiet_start = cpu_of_threads(THREADS);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let quiet = cpu_of_threads(THREADS) - quiet_start;
        eprintln!("refusals used {cpu_used:?} of CPU; 2 s of quiet after them used {quiet:?}");
        assert!(cpu_used < Duration::from_secs(2), "refusing took {cpu_used:?} of CPU");
        assert!(quiet < Duration::from_millis(500), "{quiet:?} of CPU used while idle");
        normal_session(&gw, "after.bin", 2).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_malformed_requests_are_answered_with_their_own_id() {
    let gw = Arc::new(Gateway::start().await);
    let during = normal_session_during(&gw, "during.bin", 3);
    let mut raw = RawSftp::open(&gw).await;
    // Types no SFTP v3 client sends: an unknown one, and reply types sent to the server.
    for (kind, id) in [(99u8, 4242u32), (21, 1), (101, 7), (105, 8), (201, 9), (255, 10)] {
        let (code, message) = raw.call(&request(kind, id, &[b"junk"])).await.status();
        assert_eq!(code, FX_OP_UNSUPPORTED, "type {kind}: {message}");
    }
    // A WRITE whose handle runs past the end of the packet, and a STAT with no path.
    let (code, _) = raw
        .call(&request(FXP_WRITE, 77, &[&0xffff_ffffu32.to_be_bytes(), b"h"]))
        .await
        .status();
    assert_eq!(code, FX_BAD_MESSAGE);
    let (code, _) = raw.call(&request(FXP_STAT, 78, &[])).await.status();
    assert_eq!(code, FX_BAD_MESSAGE);
    // The session goes on as if nothing happened.
    let reply = raw.call(&request(FXP_STAT, 79, &[&string(b"/")])).await;
    assert_eq!(reply.kind, FXP_ATTRS);
    during.await.unwrap();
    normal_session(&gw, "after.bin", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_length_over_the_limit_closes_the_channel_without_waiting_for_the_body() {
    let gw = Arc::new(Gateway::start().await);
    let during = normal_session_during(&gw, "during.bin", 5);
    for declared in [u32::MAX, 256 * 1024 + 1] {
        let mut raw = RawSftp::open(&gw).await;
        let mut bytes = declared.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[FXP_WRITE, 0, 0, 0, 1]);
        raw.send_bytes(&bytes).await;
        assert!(
            raw.closed_by_server().await,
            "declared length {declared}: channel left open"
        );
    }
    // At the limit is fine: a 256 KiB STAT request (a long path) gets its answer.
    let mut raw = RawSftp::open(&gw).await;
    let path = vec![b'a'; 256 * 1024 - 9];
    let (code, _) = raw.call(&request(FXP_STAT, 5, &[&string(&path)])).await.status();
    assert_ne!(code, FX_OK);
    during.await.unwrap();
    normal_session(&gw, "after.bin", 6).await;
}

/// A TCP connection from `source` (another loopback address is another client).
async fn tcp_from(source: &str, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
}

/// Reads until the server closes the connection; what it sent first.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_over_the_per_address_limit_are_refused_before_the_handshake() {
    let gw = Arc::new(
        Gateway::start_with_limits(SessionLimits {
            max_sessions_per_address: 3,
            ..SessionLimits::default()
        })
        .await,
    );
    // 127.0.0.2 takes its three sessions: two logged in, one idle TCP connection.
    let mut held = Vec::new();
    for _ in 0..2 {
        let stream = tcp_from("127.0.0.2", gw.port).await;
        let ssh = client::connect_stream(Arc::new(client::Config::default()), stream, AcceptAnyHostKey)
            .await
            .unwrap();
        held.push(RawSftp::on(ssh, &gw).await);
    }
    let _idle = tcp_from("127.0.0.2", gw.port).await;
    // The fourth is closed without a word of SSH, at once.
    let mut extra = tcp_from("127.0.0.2", gw.port).await;
    let seen = read_until_closed(&mut extra, Duration::from_secs(10)).await;
    assert!(
        seen.is_empty(),
        "the refused connection got {:?}",
        String::from_utf8_lossy(&seen)
    );
    // Another address is not affected, during the flood...
    normal_session(&gw, "during.bin", 7).await;
    // ...and the held sessions still work.
    let reply = held[0].call(&request(FXP_STAT, 1, &[&string(b"/during.bin")])).await;
    assert_eq!(reply.kind, FXP_ATTRS);
    // A freed slot admits 127.0.0.2 again.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let stream = tcp_from("127.0.0.2", gw.port).await;
        if let Ok(ssh) = client::connect_stream(Arc::new(client::Config::default()), stream, AcceptAnyHostKey).await {
            let mut again = RawSftp::on(ssh, &gw).await;
            assert_eq!(
                again.call(&request(FXP_STAT, 2, &[&string(b"/")])).await.kind,
                FXP_ATTRS
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the freed slot was not given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    normal_session(&gw, "after.bin", 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_that_do_not_log_in_within_the_grace_time_are_closed() {
    let grace = Duration::from_secs(2);
    let gw = Arc::new(
        Gateway::start_with_limits(SessionLimits {
            login_grace: grace,
            ..SessionLimits::default()
        })
        .await,
    );
    // A logged-in session outlives the grace time.
    let key = PrivateKey::read_openssh_file(gw.key()).unwrap();
    let sftp = rust_client::connect(gw.port, "alice", Login::Key(&key))
        .await
        .unwrap()
        .expect("login");
    let started = Instant::now();
    // Silent from the start; the SSH version line only; a finished key exchange and no login.
    let mut silent = tcp_from("127.0.0.1", gw.port).await;
    let mut banner_only = tcp_from("127.0.0.1", gw.port).await;
    banner_only.write_all(b"SSH-2.0-stalling\r\n").await.unwrap();
    let no_login = client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", gw.port),
        AcceptAnyHostKey,
    )
    .await
    .unwrap();
    let during = normal_session_during(&gw, "during.bin", 9);
    let (silent_seen, _) = tokio::join!(
        read_until_closed(&mut silent, Duration::from_secs(20)),
        read_until_closed(&mut banner_only, Duration::from_secs(20)),
    );
    assert!(String::from_utf8_lossy(&silent_seen).starts_with("SSH-2.0-lafs-gateway"));
    let waited = started.elapsed();
    assert!(
        waited >= grace - Duration::from_millis(200),
        "closed after {waited:?}, before the grace time"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !no_login.is_closed() {
        assert!(
            Instant::now() < deadline,
            "the unauthenticated SSH session was not closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    during.await.unwrap();
    tokio::time::sleep(grace).await;
    let data = pseudo_random(1000, 10);
    rust_client::put(&sftp, "late.bin".into(), &data).await.unwrap();
    assert!(
        sftp.read("late.bin").await.unwrap() == data,
        "the logged-in session was cut"
    );
    normal_session(&gw, "after.bin", 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sftp_session_idle_past_the_timeout_is_closed_and_a_busy_one_is_not() {
    let idle = Duration::from_secs(2);
    let gw = Arc::new(
        Gateway::start_with_limits(SessionLimits {
            idle_timeout: idle,
            ..SessionLimits::default()
        })
        .await,
    );
    let mut quiet = RawSftp::open(&gw).await;
    let started = Instant::now();
    // A session that keeps asking, for twice the idle time, is never cut.
    let busy = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut raw = RawSftp::open(&gw).await;
            for id in 0..16 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                assert_eq!(raw.call(&request(FXP_STAT, id, &[&string(b"/")])).await.kind, FXP_ATTRS);
            }
        })
    };
    assert!(quiet.closed_by_server().await, "the idle session stays open");
    let waited = started.elapsed();
    assert!(waited >= idle - Duration::from_millis(200), "closed after {waited:?}");
    busy.await.unwrap();
    normal_session(&gw, "after.bin", 12).await;
}
