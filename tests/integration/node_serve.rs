//! `node::serve` as a library: a node with every service on (storage server, FTP, SFTP, a
//! drop-upload folder) started on loopback listeners, used, and shut down.

use std::time::Duration;

use lafs_gateway::node::{self, Listeners, Node, ServeError};
use lafs_gateway::vfs::Vfs;

use crate::common::scratch_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_every_configured_service_and_stops_them_on_shutdown() {
    let work = scratch_dir();
    let dir = work.path().join("node");
    node::init(&dir).unwrap();
    let target = Node::open(&dir).unwrap().grid.create_directory().await.unwrap();
    let drop = work.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::write(
        dir.join(node::CONFIG_FILE),
        format!(
            "[storage]\nservers = 10\n[storage_server]\nenabled = true\nnickname = \"served\"\n\
             [[drop_upload]]\nlocal_dir = {drop:?}\ntarget = \"{target}\"\nsettle_ms = 50\n"
        ),
    )
    .unwrap();
    let node = Node::open(&dir).unwrap();
    let grid = node.grid.clone();
    let listeners = Listeners::loopback(&node.config).await.unwrap();
    let storage_port = listeners.storage.as_ref().unwrap().local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = node::serve::start(node, listeners, async move {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    // Each service listens where its listener was bound.
    let published = running.storage.clone().expect("the storage server runs");
    assert_eq!(published.address.port(), storage_port);
    let nurl = std::fs::read_to_string(&published.nurl_file).unwrap();
    assert!(nurl.contains(&format!("127.0.0.1:{storage_port}")), "{nurl}");
    for address in [running.ftp.expect("FTP runs"), running.sftp.expect("SFTP runs")] {
        assert!(address.ip().is_loopback() && address.port() != 0, "{address}");
        tokio::net::TcpStream::connect(address).await.unwrap();
    }
    // The drop-upload folder is watched: a file put there reaches its directory.
    std::fs::write(drop.join("hello.txt"), b"dropped").unwrap();
    let vfs = Vfs::new(grid, target);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while vfs.read(b"hello.txt", 0, 100).await.ok().as_deref() != Some(&b"dropped"[..]) {
        assert!(tokio::time::Instant::now() < deadline, "the dropped file never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Shutdown stops every service, and serving ends without error.
    let (ftp, sftp) = (running.ftp.unwrap(), running.sftp.unwrap());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), running.finish())
        .await
        .expect("every service stops")
        .unwrap();
    // Another test may take a freed port at once (FTP passive listeners and every `:0` bind draw
    // from the same range), so a port counts as still ours only if our service answers on it.
    for (address, probe, answer) in [
        (ftp, &b""[..], &b"220"[..]),
        (sftp, b"", b"SSH-"),
        (published.address, b"GET /storage/v1/version HTTP/1.0\r\n\r\n", b"HTTP/"),
    ] {
        assert!(!still_serves(address, probe, answer).await, "{address} still serves");
    }
}

/// Whether `address` accepts a connection and answers `probe` with something starting with
/// `answer` within two seconds.
async fn still_serves(address: std::net::SocketAddr, probe: &[u8], answer: &[u8]) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return false;
    };
    if stream.write_all(probe).await.is_err() {
        return false;
    }
    let mut got = vec![0u8; answer.len()];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut got)).await,
        Ok(Ok(_)) if got == answer
    )
}

#[tokio::test]
async fn a_service_enabled_without_a_listener_is_an_error() {
    let dir = scratch_dir();
    node::init(dir.path()).unwrap();
    let node = Node::open(dir.path()).unwrap();
    let err = node::serve(node, Listeners::default(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::NoListener { service: "FTP" }), "{err}");
}
