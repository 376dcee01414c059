//! Our introducer and our introducer client, Rust to Rust over loopback (the real Tahoe side is
//! in `tahoe_interop`): publish, subscribe, the replay rules, bad signatures refused, and
//! malformed negotiation closed with Foolscap's answers.

use std::sync::Arc;

use lafs_gateway::foolscap::furl::Furl;
use lafs_gateway::introducer::client::IntroducerClient;
use lafs_gateway::introducer::server::{self, IntroducerServerConfig};
use lafs_gateway::introducer::signed::SignedAnnouncement;
use lafs_gateway::introducer::{furls, load_or_create_tub};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn announcement(nickname: &str, seqnum: u64, seed: u8) -> SignedAnnouncement {
    let serde_json::Value::Object(ann) = json!({
        "version": 0, "nickname": nickname, "service-name": "storage", "seqnum": seqnum,
        "anonymous-storage-FURL": "pb://qbam4kytkiby34f4n3m5shydxznaivnf@tcp:127.0.0.1:7/swiss",
        "anonymous-storage-NURLs": ["pb://qYeVNLODVpYpzn6pBjZW0asGvFJcdljs5M--F4GG_1A@127.0.0.1:7/swiss#v=1"],
        "permutation-seed-base32": "mfrgg",
    }) else {
        unreachable!()
    };
    SignedAnnouncement::sign(&ann, &[seed; 32])
}

fn node_dir(root: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("private")).unwrap();
    dir
}

async fn read_all(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    out
}

#[tokio::test]
async fn our_introducer_forwards_announcements_under_tahoes_rules() {
    let root = tempfile::tempdir().unwrap();
    let intro_dir = node_dir(root.path(), "intro");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = IntroducerServerConfig {
        listen: listener.local_addr().unwrap(),
        location: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (furl, serving) = server::start(&intro_dir, &config, listener, async {
        let _ = stopped.await;
    })
    .unwrap();
    let serving = tokio::spawn(serving);
    let written: Furl = std::fs::read_to_string(intro_dir.join(server::FURL_FILE))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(written, furl);

    // A node that knows only the fURL opens (no servers yet: the first node of a new grid).
    let fresh = root.path().join("fresh");
    lafs_gateway::node::init(&fresh).unwrap();
    furls::write_default(&fresh, &furl).unwrap();
    let node = lafs_gateway::node::Node::open(&fresh).unwrap();
    assert!(node.grid.servers().is_empty());

    // A publisher (a storage node's session) and a one-shot subscriber (a command's refresh).
    let publisher_dir = node_dir(root.path(), "publisher");
    furls::write_default(&publisher_dir, &furl).unwrap();
    let publisher = Arc::new(IntroducerClient::new(
        &publisher_dir,
        "default",
        furl.clone(),
        "pub",
        Some(announcement("s1", 5, 1)),
    ));
    let publisher_tub = Arc::new(load_or_create_tub(&publisher_dir).unwrap());
    let (stop_publisher, publisher_stopped) = tokio::sync::oneshot::channel::<()>();
    let publishing = tokio::spawn(publisher.clone().run(publisher_tub, async {
        let _ = publisher_stopped.await;
    }));
    let gateway_dir = node_dir(root.path(), "gateway");
    let gateway_tub = load_or_create_tub(&gateway_dir).unwrap();
    let gateway = IntroducerClient::new(&gateway_dir, "default", furl.clone(), "gw", None);
    // The publisher's session may not have published yet: ask until the server has it.
    let mut rounds = 0;
    while gateway.state().registry.is_empty() {
        gateway.session(&gateway_tub, true).await.unwrap();
        rounds += 1;
        assert!(rounds < 200, "the announcement never arrived");
        tokio::task::yield_now().await;
    }
    let key = announcement("s1", 5, 1).key_vs;
    assert_eq!(gateway.state().registry.servers()[&key].ann["nickname"], "s1");
    // The cache is Tahoe's file, and the grid reads servers from it.
    let cached = lafs_gateway::introducer::cached_servers(&gateway_dir).unwrap();
    assert!(cached.0.is_empty(), "no introducers.yaml yet: nothing is read");
    furls::write_default(&gateway_dir, &furl).unwrap();
    let (usable, skipped) = lafs_gateway::introducer::cached_servers(&gateway_dir).unwrap();
    assert_eq!((usable.len(), skipped.len()), (1, 0));
    assert_eq!(usable[0].nickname, "s1");

    // A replay (older seqnum) and a bad signature change nothing; a newer seqnum replaces.
    let third_dir = node_dir(root.path(), "third");
    let third_tub = load_or_create_tub(&third_dir).unwrap();
    let publish_once = |signed: SignedAnnouncement| {
        let client = IntroducerClient::new(&third_dir, "default", furl.clone(), "x", Some(signed));
        let tub = &third_tub;
        async move { client.session(tub, true).await }
    };
    publish_once(announcement("replayed", 4, 1)).await.unwrap();
    let mut forged = announcement("forged", 9, 1);
    forged.msg = forged.msg.replace_range_bytes(b"forged", b"f0rged");
    let refused = publish_once(forged).await.unwrap_err().to_string();
    assert!(refused.contains("BadSignature"), "{refused}");
    gateway.session(&gateway_tub, true).await.unwrap();
    assert_eq!(gateway.state().registry.servers()[&key].ann["nickname"], "s1");
    publish_once(announcement("renamed", 6, 1)).await.unwrap();
    gateway.session(&gateway_tub, true).await.unwrap();
    assert_eq!(gateway.state().registry.servers()[&key].ann["nickname"], "renamed");
    assert_eq!(gateway.state().registry.len(), 1, "one key is one server");

    // Malformed negotiation: Foolscap's refusals, then the connection is closed.
    let address = config.listen;
    let mut wrong_tub = tokio::net::TcpStream::connect(address).await.unwrap();
    wrong_tub
        .write_all(b"GET /id/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_all(&mut wrong_tub).await).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 500 Internal Server Error: unknown TubID"),
        "{answer}"
    );
    let mut endless = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = endless.write_all(&[b'a'; 5000]).await;
    let answer = String::from_utf8_lossy(&read_all(&mut endless).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    let mut not_foolscap = tokio::net::TcpStream::connect(address).await.unwrap();
    not_foolscap.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_all(&mut not_foolscap).await.is_empty());
    // The introducer still serves.
    gateway.session(&gateway_tub, true).await.unwrap();

    let _ = stop_publisher.send(());
    publishing.await.unwrap();
    let _ = stop.send(());
    serving.await.unwrap();
}

trait ReplaceBytes {
    fn replace_range_bytes(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_range_bytes(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = self.windows(from.len()).position(|w| w == from).unwrap();
        let mut out = self[..at].to_vec();
        out.extend_from_slice(to);
        out.extend_from_slice(&self[at + from.len()..]);
        out
    }
}
