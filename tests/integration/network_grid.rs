//! A grid of storage node processes (`lafs run` with `[storage_server]`) and a gateway that
//! reaches them over Tahoe's HTTP storage protocol.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::common::scratch_dir;

/// One storage node process (the commit journal's tests start grids of them too).
pub(crate) struct StorageNode {
    dir: PathBuf,
    child: Option<Child>,
    /// More `[storage_server]` keys.
    extra_config: String,
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl StorageNode {
    /// Creates the node directory, starts it on a free port, then pins that port in its config
    /// so a restart comes back where the gateway's server list says it is.
    pub(crate) fn create(root: &Path, name: &str) -> StorageNode {
        StorageNode::create_with(root, name, "")
    }

    fn create_with(root: &Path, name: &str, extra_config: &str) -> StorageNode {
        let dir = root.join(name);
        lafs_ok(&dir, &["init"]);
        let mut node = StorageNode {
            dir,
            child: None,
            extra_config: extra_config.to_string(),
        };
        node.write_config("127.0.0.1:0");
        node.start();
        let nurl = node.nurl();
        let port = nurl.rsplit_once(':').unwrap().1.split('/').next().unwrap().to_string();
        node.write_config(&format!("127.0.0.1:{port}"));
        node
    }

    fn write_config(&self, listen: &str) {
        let name = self.dir.file_name().unwrap().to_str().unwrap();
        std::fs::write(
            self.dir.join("lafs.toml"),
            format!(
                "[storage]\nservers = 1\n[frontends]\nsftp = false\nftp = false\n\
                 [storage_server]\nenabled = true\nlisten = \"{listen}\"\nnickname = \"{name}\"\n{}\n",
                self.extra_config
            ),
        )
        .unwrap();
    }

    fn announcement_file(&self) -> PathBuf {
        self.dir.join("private/storage-announcement.yaml")
    }

    fn nurl(&self) -> String {
        std::fs::read_to_string(self.dir.join("private/storage.nurl"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn start(&mut self) {
        let _ = std::fs::remove_file(self.announcement_file());
        let log = std::fs::File::create(self.dir.join("node.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lafs"))
            .arg("--node-dir")
            .arg(&self.dir)
            .args(["run", "--web-listen", "127.0.0.1:0"])
            .env_remove("LAFS_NODE_DIR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while !self.announcement_file().exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "storage node {} did not start: {}",
                self.dir.display(),
                std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// The share files this node holds for a storage index.
    fn shares(&self, si: &str) -> Vec<String> {
        let dir = self.dir.join("storage-server/shares").join(&si[..2]).join(si);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for StorageNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn lafs(node: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args(args)
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap()
}

pub(crate) fn lafs_ok(node: &Path, args: &[&str]) -> String {
    let out = lafs(node, args);
    assert!(
        out.status.success(),
        "lafs {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Merges the nodes' announcement files into a Tahoe `servers.yaml`.
pub(crate) fn servers_yaml(nodes: &[StorageNode]) -> String {
    let mut storage = serde_yaml::Mapping::new();
    for node in nodes {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(node.announcement_file()).unwrap()).unwrap();
        for (id, entry) in doc["storage"].as_mapping().unwrap() {
            storage.insert(id.clone(), entry.clone());
        }
    }
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("storage".into(), serde_yaml::Value::Mapping(storage));
    serde_yaml::to_string(&doc).unwrap()
}

fn gateway(root: &Path, nodes: &[StorageNode]) -> PathBuf {
    gateway_with(root, nodes, (3, 4, 5))
}

fn gateway_with(root: &Path, nodes: &[StorageNode], (k, happy, n): (usize, usize, usize)) -> PathBuf {
    let dir = root.join("gateway");
    lafs_ok(&dir, &["init"]);
    std::fs::write(dir.join("private/servers.yaml"), servers_yaml(nodes)).unwrap();
    std::fs::write(
        dir.join("lafs.toml"),
        format!("[grid]\nneeded = {k}\nhappy = {happy}\ntotal = {n}\nservers_yaml = \"private/servers.yaml\"\n"),
    )
    .unwrap();
    dir
}

fn random_file(path: &Path, len: usize, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4] ^ seed)
        .collect();
    std::fs::write(path, &data).unwrap();
    data
}

fn storage_index(cap: &str) -> String {
    let cap = lafs_gateway::grid::uri::Cap::parse(cap).unwrap();
    cap.storage_index().unwrap().to_string()
}

#[test]
fn five_storage_nodes_survive_two_losses_and_repair_restores_every_share() {
    let root = scratch_dir();
    let mut nodes: Vec<StorageNode> = (1..=5)
        .map(|i| StorageNode::create(root.path(), &format!("s{i}")))
        .collect();
    let gw = gateway(root.path(), &nodes);

    // Put and get: several segments, one segment, and a directory (mutable shares).
    let big = random_file(&root.path().join("big"), 2_500_000, 1);
    let small = random_file(&root.path().join("small"), 100_000, 2);
    let big_cap = lafs_ok(&gw, &["put", root.path().join("big").to_str().unwrap()])
        .trim()
        .to_string();
    let small_cap = lafs_ok(&gw, &["put", root.path().join("small").to_str().unwrap()])
        .trim()
        .to_string();
    assert!(
        big_cap.starts_with("URI:CHK:") && big_cap.ends_with(":3:5:2500000"),
        "{big_cap}"
    );
    let out = root.path().join("out");
    lafs_ok(&gw, &["get", &big_cap, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), big);
    lafs_ok(&gw, &["get", &small_cap, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), small);
    lafs_ok(&gw, &["alias", "create", "tahoe"]);
    lafs_ok(&gw, &["mkdir", "tahoe:docs"]);
    lafs_ok(
        &gw,
        &[
            "put",
            root.path().join("small").to_str().unwrap(),
            "tahoe:docs/small.bin",
        ],
    );
    assert_eq!(lafs_ok(&gw, &["ls", "tahoe:docs"]).trim(), "small.bin");

    // One share on each node.
    let si = storage_index(&big_cap);
    let mut placed: Vec<String> = Vec::new();
    for node in &nodes {
        let held = node.shares(&si);
        assert_eq!(held.len(), 1, "{} holds {held:?}", node.dir.display());
        placed.extend(held);
    }
    placed.sort();
    assert_eq!(placed, ["0", "1", "2", "3", "4"], "one of each share, one a node");

    // Two nodes down: reads still work (3 of 5 left); a new put cannot reach happiness 4.
    nodes[0].kill();
    nodes[1].kill();
    lafs_ok(&gw, &["get", &big_cap, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), big);
    assert_eq!(lafs_ok(&gw, &["ls", "tahoe:docs"]).trim(), "small.bin");
    random_file(&root.path().join("third"), 200_000, 3);
    let refused = lafs(&gw, &["put", root.path().join("third").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("servers of happiness not met: 4 needed"), "{stderr}");

    // A third down: the error says what is missing.
    nodes[2].kill();
    let failed = lafs(&gw, &["get", &big_cap, out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("not enough shares: 3 needed, 2 found"), "{stderr}");
    // The error names the three dead servers; none of their swissnums.
    for node in &nodes[..3] {
        assert!(stderr.contains(&format!(
            "{} (list shares)",
            node.dir.file_name().unwrap().to_str().unwrap()
        )));
        let swissnum = node.nurl().rsplit('/').next().unwrap().replace("#v=1", "");
        assert!(!stderr.contains(&swissnum), "swissnum in an error: {stderr}");
    }

    // They come back, two of them with their disks lost; repair re-creates the missing shares.
    for node in &mut nodes[..2] {
        std::fs::remove_dir_all(node.dir.join("storage-server")).unwrap();
    }
    for node in &mut nodes[..3] {
        node.start();
    }
    let before = lafs_ok(&gw, &["check", &big_cap]);
    assert!(before.contains("3 of 5 shares good"), "{before}");
    let repaired = lafs_ok(&gw, &["check", "--repair", &big_cap]);
    assert!(
        repaired.contains("5 of 5 shares good (3 needed): healthy"),
        "{repaired}"
    );
    let verified = lafs_ok(&gw, &["check", "--verify", &big_cap]);
    assert!(
        verified.contains("5 of 5 shares good (3 needed), every block verified: healthy"),
        "{verified}"
    );
    let mut placed: Vec<String> = Vec::new();
    for node in &nodes {
        let held = node.shares(&si);
        assert_eq!(held.len(), 1, "{} holds {held:?}", node.dir.display());
        placed.extend(held);
    }
    placed.sort();
    assert_eq!(placed, ["0", "1", "2", "3", "4"], "one of each share, one a node");
    // The other file lost its shares on the wiped nodes too; a healthy file needs nothing.
    let small_repaired = lafs_ok(&gw, &["check", "--repair", &small_cap]);
    assert!(small_repaired.contains("3 of 5 shares good"), "{small_repaired}");
    assert!(
        small_repaired.contains("5 of 5 shares good (3 needed): healthy"),
        "{small_repaired}"
    );
    let again = lafs_ok(&gw, &["check", "--repair", &big_cap]);
    assert!(again.contains("repair: not needed"), "{again}");
    // The root directory (a mutable file) is republished to all five share numbers.
    let root_cap = crate::common::alias_cap(&gw, "tahoe");
    let dir_before = lafs_ok(&gw, &["check", &root_cap]);
    assert!(dir_before.contains("3 of 5 shares good"), "{dir_before}");
    let dir_repaired = lafs_ok(&gw, &["check", "--repair", &root_cap]);
    assert!(
        dir_repaired.contains("5 of 5 shares good (3 needed), version 3: healthy"),
        "{dir_repaired}"
    );
    // And the files read from the repaired shares alone.
    nodes[2].kill();
    nodes[3].kill();
    lafs_ok(&gw, &["get", &big_cap, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), big);
    lafs_ok(&gw, &["get", &small_cap, out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), small);
    assert_eq!(lafs_ok(&gw, &["ls", "tahoe:"]).trim(), "docs");
}

/// curl against a storage node: (status, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap();
    let status = String::from_utf8_lossy(&text[split + 1..]).parse().unwrap_or(0);
    (status, text[..split].to_vec())
}

#[test]
fn storage_node_answers_bad_requests_with_4xx_and_keeps_serving() {
    let root = scratch_dir();
    let node = StorageNode::create(root.path(), "s1");
    let nurl = node.nurl();
    let (authority, swissnum) = nurl.trim_start_matches("pb://").split_once('/').unwrap();
    let swissnum = swissnum.trim_end_matches("#v=1");
    let address = authority.split_once('@').unwrap().1;
    let base = format!("https://{address}/storage/v1");
    let auth = format!(
        "Authorization: Tahoe-LAFS {}",
        base64::engine::general_purpose::STANDARD.encode(swissnum)
    );
    let cbor = "Content-Type: application/cbor";
    let si = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
    let lease = |kind: &str| {
        format!(
            "X-Tahoe-Authorization: {kind} {}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        )
    };
    let upload = format!(
        "X-Tahoe-Authorization: upload-secret {}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 20])
    );

    // The version, with the byte-string keys Tahoe's client insists on.
    let (status, body) = curl(&["-H", &auth, &format!("{base}/version")]);
    assert_eq!(status, 200);
    assert!(body.windows(15).any(|w| w == b"available-space"), "{body:?}");
    // No or wrong authorization.
    assert_eq!(curl(&[&format!("{base}/version")]).0, 401);
    assert_eq!(
        curl(&["-H", "Authorization: Tahoe-LAFS d3Jvbmc=", &format!("{base}/version")]).0,
        401
    );
    // Unknown routes and storage indexes that are not base32.
    assert_eq!(curl(&["-H", &auth, &format!("{base}/nothing")]).0, 404);
    assert_eq!(
        curl(&["-H", &auth, &format!("{base}/immutable/NOT-BASE32/shares")]).0,
        404
    );
    assert_eq!(curl(&["-H", &auth, &format!("{base}/immutable/{si}/0")]).0, 404);
    // An allocation without its secrets, with garbage, with an untagged set.
    let allocate = format!("{base}/immutable/{si}");
    assert_eq!(curl(&["-H", &auth, "-H", cbor, "--data-binary", "x", &allocate]).0, 400);
    let secrets = [
        "-H",
        &auth,
        "-H",
        cbor,
        "-H",
        &lease("lease-renew-secret"),
        "-H",
        &lease("lease-cancel-secret"),
        "-H",
        &upload,
    ];
    let garbage = [secrets.as_slice(), &["--data-binary", "\u{1}\u{2}not cbor", &allocate]].concat();
    assert_eq!(curl(&garbage).0, 400);
    // {share-numbers: [0], allocated-size: 10} without tag 258.
    let untagged = root.path().join("untagged.cbor");
    std::fs::write(&untagged, b"\xa2\x6dshare-numbers\x81\x00\x6eallocated-size\x0a").unwrap();
    let at_untagged = format!("@{}", untagged.display());
    let request = [secrets.as_slice(), &["--data-binary", &at_untagged, &allocate]].concat();
    assert_eq!(curl(&request).0, 400);
    // The same, tagged: allocated; then writes: no Content-Range 416, wrong secret 401, done 201.
    let tagged = root.path().join("tagged.cbor");
    std::fs::write(
        &tagged,
        b"\xa2\x6dshare-numbers\xd9\x01\x02\x81\x00\x6eallocated-size\x0a",
    )
    .unwrap();
    let at_tagged = format!("@{}", tagged.display());
    let request = [secrets.as_slice(), &["--data-binary", &at_tagged, &allocate]].concat();
    assert_eq!(curl(&request).0, 200);
    let share = format!("{base}/immutable/{si}/0");
    assert_eq!(
        curl(&[
            "-X",
            "PATCH",
            "-H",
            &auth,
            "-H",
            &upload,
            "--data-binary",
            "01234",
            &share
        ])
        .0,
        416
    );
    let wrong = format!(
        "X-Tahoe-Authorization: upload-secret {}",
        base64::engine::general_purpose::STANDARD.encode([1u8; 20])
    );
    let range = |r: &str| format!("Content-Range: bytes {r}/*");
    let patch = |secret: &str, r: &str, data: &str| {
        curl(&[
            "-X",
            "PATCH",
            "-H",
            &auth,
            "-H",
            secret,
            "-H",
            &range(r),
            "--data-binary",
            data,
            &share,
        ])
        .0
    };
    assert_eq!(patch(&wrong, "0-4", "01234"), 401);
    assert_eq!(patch(&upload, "0-4", "01234"), 200);
    assert_eq!(patch(&upload, "0-4", "01234"), 200, "the same bytes again");
    assert_eq!(
        patch(&upload, "0-18446744073709551615", "x"),
        416,
        "a range at the end of u64"
    );
    assert_eq!(patch(&upload, "3-5", "xx5"), 409, "different bytes over written ones");
    assert_eq!(patch(&upload, "8-11", "8901"), 416, "past the allocated size");
    assert_eq!(patch(&upload, "5-9", "56789"), 201);
    // Reads: a range 206, past the end 204, open ranges 416, the whole share 200.
    let (status, body) = curl(&["-H", &auth, "-H", "Range: bytes=2-99", &share]);
    assert_eq!((status, body.as_slice()), (206, &b"23456789"[..]));
    assert_eq!(curl(&["-H", &auth, "-H", "Range: bytes=10-19", &share]).0, 204);
    assert_eq!(curl(&["-H", &auth, "-H", "Range: bytes=3-", &share]).0, 416);
    // Ranges at the edge of u64: a short read, and a write that cannot be placed.
    let (status, body) = curl(&["-H", &auth, "-H", "Range: bytes=8-18446744073709551615", &share]);
    assert_eq!((status, body.as_slice()), (206, &b"89"[..]));
    assert_eq!(curl(&["-H", &auth, &share]), (200, b"0123456789".to_vec()));
    // A connection that speaks plain HTTP, or garbage, instead of TLS.
    let (status, _) = curl(&[&format!("http://{address}/storage/v1/version")]);
    assert_ne!(status, 200);
    let mut raw = std::net::TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut raw, &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0]).unwrap();
    drop(raw);
    // Still serving.
    assert_eq!(curl(&["-H", &auth, &format!("{base}/immutable/{si}/shares")]).0, 200);
    assert_eq!(curl(&["-H", &auth, &format!("{base}/version")]).0, 200);
}

#[test]
fn lease_expirer_deletes_shares_whose_leases_aged_out_and_keeps_counting() {
    let root = scratch_dir();
    // Leases older than 2 s count as expired; a crawl cycle takes about a second.
    let node = StorageNode::create_with(
        root.path(),
        "s1",
        "expire_enabled = true\nexpire_override_lease_duration_secs = 2\nlease_crawl_cycle_secs = 1",
    );
    let gw = gateway_with(root.path(), std::slice::from_ref(&node), (1, 1, 1));
    random_file(&root.path().join("f"), 100_000, 4);
    let cap = lafs_ok(&gw, &["put", root.path().join("f").to_str().unwrap()])
        .trim()
        .to_string();
    let si = storage_index(&cap);
    assert_eq!(node.shares(&si), vec!["0"]);
    let state_file = node.dir.join("storage-server/lease_checker.state.json");
    let start = Instant::now();
    while !node.shares(&si).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "share not expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The crawler logged the deletion and the cycle's counts, and saved its state.
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap();
        if log.contains("lease expired; share deleted")
            && log
                .lines()
                .any(|l| l.contains("lease crawl cycle finished") && l.contains("deleted=1"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no deletion logged: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(state["cycle"].as_u64().unwrap() >= 1, "{state}");
    let gone = lafs(&gw, &["get", &cap, root.path().join("out").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not enough shares: 1 needed, 0 found"));
}

/// Waits for `needle` in the file at `path` and returns the rest of that line.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return line[line.find(needle).unwrap() + needle.len()..].trim().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no {needle:?} in {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sftp_and_ftp_uploads_of_several_segments_reach_a_network_grid() {
    let root = scratch_dir();
    let nodes: Vec<StorageNode> = (1..=3)
        .map(|i| StorageNode::create(root.path(), &format!("s{i}")))
        .collect();
    let gw = gateway_with(root.path(), &nodes, (2, 3, 3));
    lafs_ok(&gw, &["alias", "create", "tahoe"]);
    let mut add = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(&gw)
        .args(["account", "add", "bob", "--password", "--root", "tahoe:"])
        .env_remove("LAFS_NODE_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"bobs password\n").unwrap();
    assert!(add.wait().unwrap().success());
    let log_path = root.path().join("gateway.log");
    let gateway = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_lafs"))
            .arg("--node-dir")
            .arg(&gw)
            .args([
                "run",
                "--sftp-listen",
                "127.0.0.1:0",
                "--ftp-listen",
                "127.0.0.1:0",
                "--web-listen",
                "127.0.0.1:0",
            ])
            .env_remove("LAFS_NODE_DIR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let ftp = wait_for_line(&log_path, "ftp listening on ");
    let sftp = wait_for_line(&log_path, "sftp listening on ");
    let (ftp, sftp) = (
        ftp.split_whitespace().next().unwrap(),
        sftp.split_whitespace().next().unwrap(),
    );
    // 3 segments: these uploads are spooled first (HTTP shares are allocated at their exact size).
    let data = random_file(&root.path().join("f"), 3_000_000, 5);
    let f = root.path().join("f");
    let back = root.path().join("back");
    for url in [
        format!("ftp://{ftp}/via-ftp.bin"),
        format!("sftp://{sftp}/via-sftp.bin"),
    ] {
        let put = Command::new("curl")
            .args(["-sS", "--insecure", "--user", "bob:bobs password", "-T"])
            .arg(&f)
            .arg(&url)
            .output()
            .unwrap();
        assert!(put.status.success(), "{url}: {}", String::from_utf8_lossy(&put.stderr));
        let get = Command::new("curl")
            .args(["-sS", "--insecure", "--user", "bob:bobs password", "-o"])
            .arg(&back)
            .arg(&url)
            .output()
            .unwrap();
        assert!(get.status.success(), "{url}: {}", String::from_utf8_lossy(&get.stderr));
        assert_eq!(std::fs::read(&back).unwrap(), data, "{url}");
    }
    // Stopped as a service manager stops it: it publishes the links it acknowledged before it
    // exits (killed, it would leave them in its journal for its next start, and a CLI run
    // beside it reads what is published).
    let mut gateway = gateway;
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(gateway.0.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < Duration::from_secs(60), "lafs run did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    // Both files are in bob's root (the `tahoe` alias), on the storage nodes.
    let listing = lafs_ok(&gw, &["ls", "-l", "tahoe:"]);
    assert!(
        listing.contains("via-ftp.bin") && listing.contains("via-sftp.bin"),
        "{listing}"
    );
}

#[test]
fn a_hung_storage_node_does_not_hold_up_reads() {
    let root = scratch_dir();
    let nodes: Vec<StorageNode> = (1..=5)
        .map(|i| StorageNode::create(root.path(), &format!("s{i}")))
        .collect();
    let gw = gateway(root.path(), &nodes);
    let data = random_file(&root.path().join("f"), 1_500_000, 6);
    let cap = lafs_ok(&gw, &["put", root.path().join("f").to_str().unwrap()])
        .trim()
        .to_string();
    // A small file is read on a guess of where its shares are: hang the node its share 0 is on.
    let small = random_file(&root.path().join("small"), 5_000, 7);
    let small_cap = lafs_ok(&gw, &["put", root.path().join("small").to_str().unwrap()])
        .trim()
        .to_string();
    let small_si = match small_cap.parse::<lafs_gateway::grid::uri::Cap>().unwrap() {
        lafs_gateway::grid::uri::Cap::Chk(chk) => chk.storage_index().to_string(),
        other => panic!("expected a CHK cap, got {other:?}"),
    };
    let hung = nodes
        .iter()
        .position(|node| {
            crate::common::walk(&node.dir)
                .iter()
                .any(|p| p.ends_with(format!("{small_si}/0")))
        })
        .expect("a node holds the small file's share 0");
    // SIGSTOP: its port still accepts connections, but nothing answers (a hung machine).
    let pid = nodes[hung].child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let read = |cap: &str, name: &str| {
        let out = root.path().join(name);
        let started = Instant::now();
        let got = lafs(&gw, &["get", cap, out.to_str().unwrap()]);
        (got, started.elapsed(), std::fs::read(&out).unwrap_or_default())
    };
    let (got, took, bytes) = read(&cap, "out");
    let (small_got, small_took, small_bytes) = read(&small_cap, "small-out");
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    for (got, took, bytes, want) in [(got, took, bytes, data), (small_got, small_took, small_bytes, small)] {
        assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
        assert!(bytes == want, "read back different bytes");
        // Behaviour, not speed: the read went on without the hung node instead of waiting for
        // the client's 10 s connection timeout to give up on it.
        assert!(
            took < Duration::from_secs(8),
            "the read waited {took:?} for a hung server"
        );
        assert!(String::from_utf8_lossy(&got.stderr).contains("reading without the servers that have not answered"));
    }
}
