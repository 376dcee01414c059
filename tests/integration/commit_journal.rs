//! The commit journal through `lafs run` processes and paramiko: a gateway killed with -9 during a
//! stream of small uploads, a storage node killed during one, and two gateways writing one directory.
//!
//! Each stream prints `START name` before opening a file and `ACK name` once its close was
//! answered OK, so the test knows exactly which files the gateway promised to keep.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lafs_gateway::grid::uri::Cap;
use lafs_gateway::node::Node;
use lafs_gateway::vfs::Vfs;

use crate::common::python::python;
use crate::common::{runtime, scratch_dir};
use crate::common::{spawn_lafs_run, wait_for};
use crate::network_grid::{StorageNode, lafs_ok, servers_yaml};

const PASSWORD: &str = "a password";

/// The contents the scripts write and check, the same in Python and in [`contents`].
const CONTENTS_PY: &str = r#"
import hashlib, os, sys, paramiko
def contents(name):
    b = name.encode()
    size = 60 + (sum(b) * 997 + len(b)) % 9000
    unit = b + b"\n"
    return (unit * (size // len(unit) + 1))[:size]
def connect():
    t = paramiko.Transport(("127.0.0.1", int(os.environ["PORT"])))
    t.connect(username="alice", password=os.environ["PASSWORD"])
    return paramiko.SFTPClient.from_transport(t)
"#;

/// Puts COUNT files named PREFIX0000..., one after another, each closed before the next opens.
const STREAM_PY: &str = r#"
s = connect()
for i in range(int(os.environ["COUNT"])):
    name = "%s%04d" % (os.environ["PREFIX"], i)
    print("START " + name, flush=True)
    f = s.open(name, "wb")
    f.write(contents(name))
    f.close()
    print("ACK " + name, flush=True)
"#;

/// Lists the root and reads every file: `name ok` or `name bad`.
const CHECK_PY: &str = r#"
s = connect()
for a in s.listdir_attr("."):
    with s.open(a.filename, "rb") as f:
        data = f.read()
    print(a.filename, "ok" if data == contents(a.filename) else "bad", flush=True)
"#;

fn contents(name: &str) -> Vec<u8> {
    let b = name.as_bytes();
    let sum: usize = b.iter().map(|&c| c as usize).sum();
    let size = 60 + (sum * 997 + b.len()) % 9000;
    let mut unit = b.to_vec();
    unit.push(b'\n');
    unit.iter().copied().cycle().take(size).collect()
}

/// A `lafs run` gateway serving SFTP on a free port, its log in `node.log` beside its directory.
struct GatewayProcess {
    dir: PathBuf,
    child: Option<Child>,
    port: u16,
}

impl GatewayProcess {
    fn new(dir: &Path) -> GatewayProcess {
        GatewayProcess {
            dir: dir.to_path_buf(),
            child: None,
            port: 0,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.with_extension("log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn start(&mut self) {
        let before = self.log().matches("sftp listening on ").count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = spawn_lafs_run(&self.dir, log);
        self.child = Some(child);
        wait_for("the gateway to serve SFTP", Duration::from_secs(30), || {
            self.log().matches("sftp listening on ").count() > before
        });
        let log = self.log();
        let line = log.rsplit("sftp listening on ").next().unwrap();
        let address = line.lines().next().unwrap().trim();
        self.port = address.rsplit(':').next().unwrap().parse().unwrap();
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// alice's root directory, as the accounts file names it.
    fn alice_root(&self) -> Cap {
        let accounts = std::fs::read_to_string(self.dir.join("private/accounts")).unwrap();
        let line = accounts.lines().find(|l| l.starts_with("alice ")).unwrap();
        Cap::parse(line.split_whitespace().last().unwrap()).unwrap()
    }

    fn add_alice(&self, root: Option<&Cap>) {
        let mut args = vec!["account".to_string(), "add".into(), "alice".into(), "--password".into()];
        if let Some(root) = root {
            args.extend(["--root".into(), root.to_string()]);
        }
        let mut add = Command::new(env!("CARGO_BIN_EXE_lafs"))
            .arg("--node-dir")
            .arg(&self.dir)
            .args(&args)
            .env_remove("LAFS_NODE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        add.stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(add.wait().unwrap().success());
    }

    /// A paramiko script against this gateway, its stdout lines collected as they come.
    fn script(&self, body: &str, env: &[(&str, String)]) -> Script {
        let mut command = Command::new(python());
        command
            .arg("-c")
            .arg(format!("{CONTENTS_PY}{body}"))
            .env("PORT", self.port.to_string())
            .env("PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    lines.lock().unwrap().push(line.unwrap_or_default());
                }
            })
        };
        Script {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// What this gateway serves, read back over SFTP: each name and whether its contents are right.
    fn check_over_sftp(&self) -> BTreeMap<String, bool> {
        let mut check = self.script(CHECK_PY, &[]);
        let (ok, stderr) = check.finish();
        assert!(ok, "listing over SFTP failed: {stderr}");
        check
            .lines()
            .iter()
            .map(|l| {
                let (name, verdict) = l.rsplit_once(' ').unwrap();
                (name.to_string(), verdict == "ok")
            })
            .collect()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

struct Script {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Script {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn with_prefix(&self, prefix: &str) -> BTreeSet<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .collect()
    }

    /// Waits for the script's end: whether it succeeded, and its stderr.
    fn finish(&mut self) -> (bool, String) {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.success(), stderr)
    }
}

/// Waits until the grid itself (read in this process, no journal) lists every name in
/// `expected` under `root`, then checks each one's contents and that nothing outside `allowed`
/// is listed (returns what is listed).
fn published(node_dir: &Path, root: &Cap, expected: &BTreeSet<String>, allowed: &BTreeSet<String>) -> BTreeSet<String> {
    let rt = runtime();
    let node = Node::open(node_dir).unwrap();
    let vfs = Vfs::new(node.grid, root.clone());
    let list = || -> BTreeSet<String> {
        rt.block_on(vfs.list(b"/"))
            .map(|entries| entries.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default()
    };
    wait_for(
        "every acknowledged file to be published",
        Duration::from_secs(120),
        || list().is_superset(expected),
    );
    let listed = list();
    for name in &listed {
        assert!(allowed.contains(name), "{name} is listed but the client never wrote it");
        let stat = rt.block_on(vfs.stat(name.as_bytes())).unwrap();
        let data = rt.block_on(vfs.read(name.as_bytes(), 0, stat.size)).unwrap();
        assert!(data == contents(name), "{name} reads back different from the grid");
    }
    listed
}

#[test]
fn a_gateway_killed_during_a_stream_of_small_uploads_keeps_every_acknowledged_file() {
    let root = scratch_dir();
    let node_dir = root.path().join("gateway");
    lafs_ok(&node_dir, &["init"]);
    let mut gateway = GatewayProcess::new(&node_dir);
    gateway.add_alice(None);
    gateway.start();
    let mut stream = gateway.script(STREAM_PY, &[("COUNT", "2000".into()), ("PREFIX", "f".into())]);
    wait_for("60 acknowledged closes", Duration::from_secs(120), || {
        stream.with_prefix("ACK ").len() >= 60
    });
    gateway.kill_9();
    let (completed, _) = stream.finish();
    assert!(!completed, "the stream finished before the kill: nothing was tested");
    let started = stream.with_prefix("START ");
    let acked = stream.with_prefix("ACK ");

    // The close in flight when the gateway died (started, not acknowledged) may go either
    // way; every acknowledged one must be there, whole.
    gateway.start();
    let served = gateway.check_over_sftp();
    for name in &acked {
        assert_eq!(
            served.get(name),
            Some(&true),
            "acknowledged {name} is missing or wrong after the restart"
        );
    }
    for (name, whole) in &served {
        assert!(started.contains(name), "{name} is listed but the client never wrote it");
        assert!(whole, "{name} reads back wrong");
    }
    let listed = published(&node_dir, &gateway.alice_root(), &acked, &started);
    assert!(
        listed.len() <= acked.len() + 1,
        "more files than acknowledged plus the one in flight"
    );
}

/// A gateway on five storage node processes, 2-of-5 with happiness 3.
fn network_gateway(root: &Path, name: &str, nodes: &[StorageNode]) -> GatewayProcess {
    let dir = root.join(name);
    lafs_ok(&dir, &["init"]);
    std::fs::write(dir.join("private/servers.yaml"), servers_yaml(nodes)).unwrap();
    std::fs::write(
        dir.join("lafs.toml"),
        "[grid]\nneeded = 2\nhappy = 3\ntotal = 5\nservers_yaml = \"private/servers.yaml\"\n",
    )
    .unwrap();
    GatewayProcess::new(&dir)
}

#[test]
fn a_storage_node_killed_during_a_stream_of_small_uploads_loses_no_acknowledged_file() {
    let root = scratch_dir();
    let mut nodes: Vec<StorageNode> = (1..=5)
        .map(|i| StorageNode::create(root.path(), &format!("s{i}")))
        .collect();
    let mut gateway = network_gateway(root.path(), "gateway", &nodes);
    gateway.add_alice(None);
    gateway.start();
    let count = 150;
    let mut stream = gateway.script(STREAM_PY, &[("COUNT", count.to_string()), ("PREFIX", "f".into())]);
    wait_for("30 acknowledged closes", Duration::from_secs(120), || {
        stream.with_prefix("ACK ").len() >= 30
    });
    nodes[0].kill();
    let (completed, stderr) = stream.finish();
    let started = stream.with_prefix("START ");
    let acked = stream.with_prefix("ACK ");
    assert!(
        completed && acked.len() == count,
        "with one of five storage nodes gone the gateway still takes files; {} of {count} acknowledged: {stderr}",
        acked.len()
    );
    let served = gateway.check_over_sftp();
    for name in &acked {
        assert_eq!(served.get(name), Some(&true), "acknowledged {name} is missing or wrong");
    }
    published(&gateway.dir, &gateway.alice_root(), &acked, &started);
}

#[test]
fn two_gateways_writing_one_directory_at_once_lose_no_entry() {
    let root = scratch_dir();
    let nodes: Vec<StorageNode> = (1..=5)
        .map(|i| StorageNode::create(root.path(), &format!("s{i}")))
        .collect();
    let mut first = network_gateway(root.path(), "first", &nodes);
    first.add_alice(None);
    let shared = first.alice_root();
    let mut second = network_gateway(root.path(), "second", &nodes);
    second.add_alice(Some(&shared));
    first.start();
    second.start();
    let count = 100;
    let mut streams = [
        first.script(STREAM_PY, &[("COUNT", count.to_string()), ("PREFIX", "a".into())]),
        second.script(STREAM_PY, &[("COUNT", count.to_string()), ("PREFIX", "b".into())]),
    ];
    let mut acked = BTreeSet::new();
    for stream in &mut streams {
        let (completed, stderr) = stream.finish();
        assert!(completed, "a stream failed: {stderr}");
        acked.extend(stream.with_prefix("ACK "));
    }
    assert_eq!(acked.len(), 2 * count);
    let listed = published(&first.dir, &shared, &acked, &acked);
    assert_eq!(listed, acked, "both gateways' files, each once, nothing else");
}
