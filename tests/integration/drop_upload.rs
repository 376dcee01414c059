//! Drop-upload through the `lafs run` process: files dropped, moved in, nested, modified, ignored,
//! written slowly; the node killed with -9 while hundreds are queued; storage servers gone and back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use lafs_gateway::grid::uri::Cap;
use lafs_gateway::node::Node;
use lafs_gateway::vfs::Vfs;

use crate::common::{pseudo_random, runtime, scratch_dir, spawn_lafs_run, wait_for};

/// A node directory with one `[[drop_upload]]` folder (`in/`) targeting a fresh directory.
struct DropNode {
    tmp: tempfile::TempDir,
    cap: String,
    child: Option<Child>,
}

impl DropNode {
    fn new(retry_max_secs: u64) -> DropNode {
        DropNode::with_target(retry_max_secs, None)
    }

    /// With `target`, the folder's target lines instead of the `drop` alias's cap.
    fn with_target(retry_max_secs: u64, target: Option<&str>) -> DropNode {
        let tmp = scratch_dir();
        let node = tmp.path().join("node");
        lafs(&node, &["init"]);
        lafs(&node, &["alias", "create", "drop"]);
        let cap = crate::common::alias_cap(&node, "drop");
        let mut config = std::fs::read_to_string(node.join("lafs.toml")).unwrap();
        let target = target.map_or_else(|| format!("target = \"{cap}\""), str::to_string);
        config.push_str(&format!(
            "\n[[drop_upload]]\nname = \"in\"\nlocal_dir = \"{}\"\n{target}\nsettle_ms = 300\nretry_max_secs = {retry_max_secs}\n",
            tmp.path().join("in").display()
        ));
        std::fs::write(node.join("lafs.toml"), config).unwrap();
        std::fs::create_dir(tmp.path().join("in")).unwrap();
        DropNode { tmp, cap, child: None }
    }

    fn node(&self) -> PathBuf {
        self.tmp.path().join("node")
    }

    fn dropped(&self, relative: &str) -> PathBuf {
        self.tmp.path().join("in").join(relative)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("node.log")).unwrap_or_default()
    }

    /// Starts `lafs run` (its log appended to `node.log`) and waits until it serves.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("node.log"))
            .unwrap();
        let before = self.log().matches("serving until").count();
        let child = spawn_lafs_run(&self.node(), log);
        self.child = Some(child);
        wait_for("the node to serve", Duration::from_secs(30), || {
            self.log().matches("serving until").count() > before
        });
    }

    fn add_account(&self, user: &str) {
        let mut add = Command::new(env!("CARGO_BIN_EXE_lafs"))
            .arg("--node-dir")
            .arg(self.node())
            .args(["account", "add", user, "--password"])
            .env_remove("LAFS_NODE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"a password\n").unwrap();
        assert!(add.wait().unwrap().success());
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The target directory, read in this process from the same on-disk servers.
    fn target(&self) -> Vfs {
        let node = Node::open(&self.node()).unwrap();
        Vfs::new(node.grid, Cap::parse(&self.cap).unwrap())
    }

    fn status(&self) -> String {
        let node = self.node();
        let out = lafs(&node, &["drop-upload", "status"]);
        String::from_utf8(out.stdout).unwrap()
    }

    fn uploads_of(&self, relative: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(" uploaded ") && l.contains(&format!("path=\"{relative}\"")))
            .count()
    }
}

impl Drop for DropNode {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn lafs(node: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args(args)
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lafs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The summary line's counts: (pending, uploading, done, failed).
fn counts(status: &str) -> (usize, usize, usize, usize) {
    let line = status.lines().next().unwrap_or("");
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [p, u, d, f] => (p, u, d, f),
        _ => panic!("unexpected status: {status}"),
    }
}

fn read_all(vfs: &Vfs, rt: &tokio::runtime::Runtime, path: &str) -> Option<Vec<u8>> {
    rt.block_on(async {
        let stat = vfs.stat(path.as_bytes()).await.ok()?;
        vfs.read(path.as_bytes(), 0, stat.size).await.ok()
    })
}

#[test]
fn dropped_moved_nested_modified_and_ignored_files() {
    let mut node = DropNode::new(2);
    // Already there before the node starts: found by the start-up scan.
    std::fs::write(node.dropped("early.txt"), b"before start\n").unwrap();
    node.start();
    let rt = runtime();
    // Written in place.
    std::fs::write(node.dropped("a.txt"), b"first version\n").unwrap();
    // Written elsewhere, then renamed in.
    let outside = node.tmp.path().join("outside.bin");
    let moved = pseudo_random(200_000, 7);
    std::fs::write(&outside, &moved).unwrap();
    std::fs::rename(&outside, node.dropped("moved.bin")).unwrap();
    // Ignored: a dotfile, a temporary and an editor leftover.
    std::fs::write(node.dropped(".hidden"), b"secret").unwrap();
    std::fs::write(node.dropped("download.part"), b"partial").unwrap();
    std::fs::write(node.dropped("notes.txt~"), b"old").unwrap();
    // A tree of 100 files in nested subdirectories.
    let mut tree = Vec::new();
    for i in 0..100 {
        let relative = format!("tree/{}/{}/f{i:03}.txt", i % 4, i % 3);
        std::fs::create_dir_all(node.dropped(&relative).parent().unwrap()).unwrap();
        std::fs::write(node.dropped(&relative), format!("file {i}\n")).unwrap();
        tree.push(relative);
    }
    wait_for("103 files done", Duration::from_secs(120), || {
        counts(&node.status()).2 == 103
    });
    let target = node.target();
    assert_eq!(read_all(&target, &rt, "early.txt").unwrap(), b"before start\n");
    assert_eq!(read_all(&target, &rt, "a.txt").unwrap(), b"first version\n");
    assert!(read_all(&target, &rt, "moved.bin").unwrap() == moved);
    for (i, relative) in tree.iter().enumerate() {
        assert_eq!(
            read_all(&target, &rt, relative).unwrap(),
            format!("file {i}\n").as_bytes()
        );
    }
    let mut names: Vec<String> = rt
        .block_on(target.list(b""))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a.txt", "early.txt", "moved.bin", "tree"],
        "ignored files stay local"
    );
    // The local modification time is kept in the entry's metadata.
    let local = std::fs::metadata(node.dropped("moved.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let local = local.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let kept = rt.block_on(target.stat(b"moved.bin")).unwrap().mtime.unwrap();
    assert!((kept - local).abs() < 1e-3, "mtime {kept} vs local {local}");
    // Modified after upload: the new version replaces the entry.
    std::fs::write(node.dropped("a.txt"), b"second version, longer\n").unwrap();
    wait_for("the new version", Duration::from_secs(60), || {
        read_all(&node.target(), &rt, "a.txt").is_some_and(|d| d == b"second version, longer\n")
    });
    // The upload is logged once its link is made, so a read can see the link first.
    wait_for("the second upload logged", Duration::from_secs(10), || {
        node.uploads_of("a.txt") >= 2
    });
    assert_eq!(node.uploads_of("a.txt"), 2);
    assert_eq!(node.uploads_of("early.txt"), 1, "unchanged files go up once");
    // A restart rescans: nothing is uploaded again.
    node.kill_9();
    node.start();
    std::fs::write(node.dropped("after-restart.txt"), b"new\n").unwrap();
    wait_for("the file after the restart", Duration::from_secs(60), || {
        node.uploads_of("after-restart.txt") == 1
    });
    assert_eq!(counts(&node.status()), (0, 0, 104, 0));
    assert_eq!(
        node.uploads_of("early.txt"),
        1,
        "nothing went up twice after the restart"
    );
    assert_eq!(node.uploads_of("tree/0/0/f000.txt"), 1);
}

#[test]
fn a_file_written_slowly_goes_up_once_after_it_is_closed() {
    let mut node = DropNode::new(2);
    node.start();
    let rt = runtime();
    let piece = pseudo_random(10 << 20, 99);
    let mut file = std::fs::File::create(node.dropped("slow.bin")).unwrap();
    for _ in 0..20 {
        std::io::Write::write_all(&mut file, &piece).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    // Still open: nothing on the grid, nothing in the journal.
    assert!(
        rt.block_on(node.target().stat(b"slow.bin")).is_err(),
        "uploaded before it was closed"
    );
    assert_eq!(node.uploads_of("slow.bin"), 0);
    drop(file);
    wait_for("the 200 MiB file", Duration::from_secs(180), || {
        node.uploads_of("slow.bin") == 1
    });
    let target = node.target();
    let back = read_all(&target, &rt, "slow.bin").unwrap();
    assert_eq!(back.len(), 200 << 20);
    assert!(back.chunks(10 << 20).all(|c| c == &piece[..]), "contents differ");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node.uploads_of("slow.bin"), 1, "uploaded exactly once");
    assert_eq!(counts(&node.status()), (0, 0, 1, 0));
}

#[test]
fn killed_with_500_files_queued_every_file_ends_up_once() {
    let mut node = DropNode::new(2);
    node.start();
    for i in 0..500 {
        std::fs::write(
            node.dropped(&format!("f{i:03}.txt")),
            format!("contents of {i}\n").repeat(i % 7 + 1),
        )
        .unwrap();
    }
    // Kill it while it works through the queue.
    wait_for("the first uploads", Duration::from_secs(60), || {
        node.log().matches(" uploaded ").count() >= 20
    });
    node.kill_9();
    let done_before = counts(&node.status()).2;
    assert!(
        done_before < 500,
        "the kill came too late to test anything ({done_before} done)"
    );
    node.start();
    wait_for("500 files done", Duration::from_secs(180), || {
        counts(&node.status()).2 == 500
    });
    let rt = runtime();
    let target = node.target();
    let listing = rt.block_on(target.list(b"")).unwrap();
    assert_eq!(listing.len(), 500, "each file once");
    for i in 0..500 {
        let name = format!("f{i:03}.txt");
        let expected = format!("contents of {i}\n").repeat(i % 7 + 1);
        assert_eq!(read_all(&target, &rt, &name).unwrap(), expected.as_bytes(), "{name}");
    }
    assert_eq!(counts(&node.status()), (0, 0, 500, 0));
}

#[test]
fn files_wait_while_servers_are_gone_and_go_up_when_they_return() {
    let mut node = DropNode::new(1);
    node.start();
    // 4 of the 10 servers disappear (a file where each server directory was): 6 < happy 7.
    let storage = node.node().join("storage");
    let mut away = Vec::new();
    for server in ["server-00", "server-01", "server-02", "server-03"] {
        let from = storage.join(server);
        let to = storage.join(format!("{server}.away"));
        std::fs::rename(&from, &to).unwrap();
        std::fs::write(&from, b"not a directory").unwrap();
        away.push((from, to));
    }
    for i in 0..5 {
        std::fs::write(node.dropped(&format!("w{i}.bin")), pseudo_random(100_000 + i, i as u64)).unwrap();
    }
    wait_for("failures with a reason", Duration::from_secs(60), || {
        let status = node.status();
        counts(&status).3 == 5 && status.contains("w0.bin")
    });
    let status = node.status();
    assert!(status.contains("storage grid temporarily unavailable"), "{status}");
    assert!(status.contains("attempts"), "{status}");
    assert_eq!(counts(&status).2, 0);
    // The servers come back; nobody does anything else.
    for (from, to) in &away {
        std::fs::remove_file(from).unwrap();
        std::fs::rename(to, from).unwrap();
    }
    wait_for("all 5 after the outage", Duration::from_secs(60), || {
        counts(&node.status()).2 == 5
    });
    let rt = runtime();
    let target = node.target();
    for i in 0..5 {
        let name = format!("w{i}.bin");
        assert!(
            read_all(&target, &rt, &name).unwrap() == pseudo_random(100_000 + i, i as u64),
            "{name}"
        );
    }
}

#[test]
fn an_account_target_and_local_deletes_that_unlink() {
    let mut node = DropNode::with_target(
        2,
        Some("account = \"bob\"\npath = \"camera/inbox\"\non_delete = \"unlink\""),
    );
    node.add_account("bob");
    node.start();
    std::fs::write(node.dropped("keep.txt"), b"keep").unwrap();
    std::fs::write(node.dropped("delete-me.txt"), b"short-lived").unwrap();
    wait_for("2 files done", Duration::from_secs(60), || {
        counts(&node.status()).2 == 2
    });
    let rt = runtime();
    // The files are under bob's root, in the path the config names (made on the first start).
    let bob = {
        let accounts = std::fs::read_to_string(node.node().join("private/accounts")).unwrap();
        let root = accounts
            .lines()
            .find(|l| l.starts_with("bob "))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap()
            .to_string();
        Vfs::new(Node::open(&node.node()).unwrap().grid, Cap::parse(&root).unwrap())
    };
    assert_eq!(read_all(&bob, &rt, "camera/inbox/keep.txt").unwrap(), b"keep");
    assert_eq!(
        read_all(&bob, &rt, "camera/inbox/delete-me.txt").unwrap(),
        b"short-lived"
    );
    std::fs::remove_file(node.dropped("delete-me.txt")).unwrap();
    wait_for("the unlink", Duration::from_secs(30), || {
        rt.block_on(bob.stat(b"camera/inbox/delete-me.txt")).is_err()
    });
    assert_eq!(read_all(&bob, &rt, "camera/inbox/keep.txt").unwrap(), b"keep");
    assert_eq!(counts(&node.status()), (0, 0, 1, 0));
}

#[test]
fn sigterm_stops_the_node_while_the_target_cannot_be_reached() {
    let mut node = DropNode::with_target(2, Some("account = \"bob\"\npath = \"camera/inbox\""));
    node.add_account("bob");
    // The grid shrinks to 2 of its 10 servers: bob's root directory (3 of its 10 shares needed)
    // cannot be read, so the folder's target cannot be made and is retried.
    let config_file = node.node().join("lafs.toml");
    let config = std::fs::read_to_string(&config_file).unwrap();
    assert!(config.contains("\nservers = 10\n"), "{config}");
    std::fs::write(&config_file, config.replace("\nservers = 10\n", "\nservers = 2\n")).unwrap();
    node.start();
    wait_for("the target to be retried", Duration::from_secs(30), || {
        node.log().contains("target not reachable yet")
    });
    let mut child = node.child.take().unwrap();
    let sent = Instant::now();
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let limit = Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "lafs run still running {limit:?} after SIGTERM; its log:\n{}",
                node.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}; its log:\n{}", node.log());
    assert!(node.log().contains("stopping"), "{}", node.log());
}
