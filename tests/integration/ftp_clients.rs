//! FTP and FTPS through the `lafs run` process with everyday clients (wget, rclone, ncftp, tnftp,
//! ftplib), raw sessions that pipeline commands or send malformed lines, passive-port exhaustion;
//! every log line the node wrote is checked for length, and names its connection.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{pseudo_random, scratch_dir};

const PASSWORD: &str = "secret";

/// The longest log line allowed (libunftp's spans once printed several KB of Debug output each).
const MAX_LOG_LINE: usize = 1024;

/// A `lafs run` node serving FTP (FTPS offered with the certificate the node made itself) to
/// `alice`, its stderr in `node.log`.
struct FtpNode {
    tmp: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl FtpNode {
    fn start(passive_ports: &str) -> FtpNode {
        let tmp = scratch_dir();
        let node = tmp.path().join("node");
        lafs(&node, &["init"]);
        // `lafs init` made the FTPS certificate; a node without it gets one on `lafs run`.
        for name in ["ftps.pem", "ftps.key"] {
            let path = node.join("private").join(name);
            assert!(path.exists(), "lafs init writes {name}");
            std::fs::remove_file(path).unwrap();
        }
        lafs(&node, &["alias", "create", "root"]);
        let cap = crate::common::alias_cap(&node, "root");
        let hash = lafs_gateway::frontends::accounts::hash_password(PASSWORD).unwrap();
        std::fs::write(node.join("private/accounts"), format!("alice {hash} {cap}\n")).unwrap();
        let config = std::fs::read_to_string(node.join("lafs.toml")).unwrap();
        let config = config.replace(
            "ftp_passive_ports = \"50000-50100\"",
            &format!("ftp_passive_ports = \"{passive_ports}\""),
        );
        std::fs::write(node.join("lafs.toml"), config).unwrap();
        let log = std::fs::File::create(tmp.path().join("node.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_lafs"))
            .arg("--node-dir")
            .arg(&node)
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
            .env("LAFS_LOG", "debug,rustls=info,hyper=info,h2=info,reqwest=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut node = FtpNode {
            tmp,
            child: Some(child),
            port: 0,
        };
        let start = Instant::now();
        while node.port == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "node did not start: {}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
            let log = node.log();
            if !log.contains("serving until") {
                continue;
            }
            node.port = log
                .lines()
                .find_map(|l| l.strip_prefix("ftp listening on 127.0.0.1:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|port| port.parse().ok())
                .expect("the node prints its FTP port");
        }
        for name in ["ftps.pem", "ftps.key"] {
            assert!(
                node.node().join("private").join(name).exists(),
                "lafs run writes {name}"
            );
        }
        node
    }

    fn node(&self) -> PathBuf {
        self.tmp.path().join("node")
    }

    fn work(&self) -> &Path {
        self.tmp.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.tmp.path().join("node.log")).unwrap_or_default()).into_owned()
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://alice:{PASSWORD}@127.0.0.1:{}/{path}", self.port)
    }

    /// Stops the node and checks the length of every line it logged.
    fn finish(mut self) {
        self.stop();
        let log = self.log();
        let longest = log.lines().map(str::len).max().unwrap_or(0);
        assert!(log.lines().count() > 10, "the node logged too little to check: {log}");
        assert!(
            longest <= MAX_LOG_LINE,
            "a log line of {longest} bytes: {}",
            log.lines().find(|l| l.len() == longest).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client program run from the work directory (killed after two minutes).
    fn client(&self, program: &str, args: &[&str]) -> Output {
        self.client_env(program, args, &[])
    }

    fn client_env(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("timeout");
        cmd.arg("120").arg(program).args(args).current_dir(self.work());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (see .ci/run for what it installs): {e}"))
    }

    fn python(&self, script: &str, tls: bool) -> Output {
        let port = self.port.to_string();
        let tls = if tls { "1" } else { "" };
        self.client_env(
            "python3",
            &["-c", script],
            &[("FTP_PORT", &port), ("PASSWORD", PASSWORD), ("TLS", tls)],
        )
    }
}

impl Drop for FtpNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lafs(node: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_lafs"))
        .arg("--node-dir")
        .arg(node)
        .args(args)
        .env_remove("LAFS_NODE_DIR")
        .output()
        .unwrap();
    assert!(ok(&out), "lafs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ok(out: &Output) -> bool {
    out.status.success()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(ok(out), "{}", show(out));
}

/// A local tree: `a.bin` (300 KB), `b.txt`, `sub/c.bin` (2 MB), `sub/deeper/d.txt`.
fn make_tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a.bin"), pseudo_random(300_000, seed)).unwrap();
    std::fs::write(root.join("b.txt"), format!("bee {seed}\n")).unwrap();
    std::fs::write(root.join("sub/c.bin"), pseudo_random(2_000_000, seed + 1)).unwrap();
    std::fs::write(root.join("sub/deeper/d.txt"), "dee\n").unwrap();
}

#[track_caller]
fn assert_same_tree(expected: &Path, actual: &Path) {
    let files = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut out: Vec<_> = crate::common::walk(root)
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| (p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        out
    };
    let (want, got) = (files(expected), files(actual));
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&want), names(&got), "file names");
    assert!(want == got, "file contents differ");
}

/// wget (plain `ftp://` and explicit FTPS `ftps://`): a missing file is a server error (exit 8,
/// the 550 comes without a 150), a file, and a recursive mirror.
#[test]
fn wget_missing_file_one_file_and_mirror_plain_and_ftps() {
    let node = FtpNode::start("50000-50100");
    make_tree(&node.path("tree"), 3);
    // Upload with curl, which the FTP tests already rely on.
    for file in ["a.bin", "b.txt", "sub/c.bin", "sub/deeper/d.txt"] {
        let local = format!("tree/{file}");
        let url = node.url("ftp", &format!("tree/{file}"));
        assert_ok(&node.client("curl", &["-sS", "--ftp-create-dirs", "-T", &local, &url]));
    }
    for (scheme, extra) in [("ftp", &[][..]), ("ftps", &["--no-check-certificate"][..])] {
        let missing = node.client(
            "wget",
            &[
                &["-q", "-O", "missing.out"],
                extra,
                &[&node.url(scheme, "tree/missing.bin")],
            ]
            .concat(),
        );
        assert_eq!(missing.status.code(), Some(8), "{scheme}: {}", show(&missing));
        let out = format!("{scheme}-a.bin");
        assert_ok(&node.client(
            "wget",
            &[&["-q", "-O", &out], extra, &[&node.url(scheme, "tree/a.bin")]].concat(),
        ));
        assert!(std::fs::read(node.path(&out)).unwrap() == std::fs::read(node.path("tree/a.bin")).unwrap());
        let dir = format!("{scheme}-mirror");
        assert_ok(
            &node.client(
                "wget",
                &[
                    &["-q", "-m", "-nH", "--no-remove-listing", "-P", &dir][..],
                    extra,
                    &[&node.url(scheme, "tree/")],
                ]
                .concat(),
            ),
        );
        // wget keeps its `.listing` files; the files themselves must match.
        for file in ["a.bin", "b.txt", "sub/c.bin", "sub/deeper/d.txt"] {
            let got = std::fs::read(node.path(&format!("{dir}/tree/{file}")));
            let want = std::fs::read(node.path(&format!("tree/{file}"))).unwrap();
            assert!(got.ok() == Some(want), "{scheme}: mirror of {file}");
        }
    }
    node.finish();
}

/// rclone's FTP backend, plain and FTPS: copy into a directory that does not exist yet (nested),
/// check, and sync with deletions.
#[test]
fn rclone_copy_into_new_nested_directory_check_and_sync() {
    let node = FtpNode::start("50000-50100");
    make_tree(&node.path("src"), 5);
    let obscured = node.client("rclone", &["obscure", PASSWORD]);
    assert_ok(&obscured);
    let obscured = String::from_utf8(obscured.stdout).unwrap().trim().to_string();
    let config = node.path("rclone.conf");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap().to_string();
    for (dir, tls) in [("plain", ""), ("tls", ",explicit_tls=true,no_check_certificate=true")] {
        let remote = format!(
            ":ftp,host=127.0.0.1,port={},user=alice,pass={obscured}{tls}:new/{dir}/nested",
            node.port
        );
        let rclone = |args: &[&str]| {
            let out = node.client_env("rclone", args, &[("RCLONE_CONFIG", &config)]);
            assert_ok(&out);
            out
        };
        rclone(&["copy", "src", &remote]);
        rclone(&["check", "src", &remote]);
        rclone(&["copy", &remote, &format!("back-{dir}")]);
        assert_same_tree(&node.path("src"), &node.path(&format!("back-{dir}")));
        // Sync with deletions: a file and a directory go, a file changes, one is added.
        let synced = node.path(&format!("synced-{dir}"));
        make_tree(&synced, 5);
        std::fs::remove_file(synced.join("b.txt")).unwrap();
        std::fs::remove_dir_all(synced.join("sub/deeper")).unwrap();
        std::fs::write(synced.join("a.bin"), pseudo_random(123_456, 77)).unwrap();
        std::fs::write(synced.join("new.txt"), "new\n").unwrap();
        let synced = synced.to_str().unwrap().to_string();
        rclone(&["sync", &synced, &remote]);
        rclone(&["check", &synced, &remote]);
        let listed = rclone(&["lsf", "-R", &remote]);
        let mut names: Vec<String> = String::from_utf8(listed.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        assert_eq!(names, ["a.bin", "new.txt", "sub/", "sub/c.bin"], "{dir}");
    }
    node.finish();
}

/// ncftpput/ncftpget and tnftp (plain FTP: neither speaks TLS).
#[test]
fn ncftp_and_tnftp_put_and_get() {
    let node = FtpNode::start("50000-50100");
    let port = node.port.to_string();
    std::fs::write(node.path("n.bin"), pseudo_random(700_000, 9)).unwrap();
    std::fs::write(node.path("t.bin"), pseudo_random(50_000, 10)).unwrap();
    let login = ["-u", "alice", "-p", PASSWORD, "-P", &port];
    // ncftpput -m makes the remote directory.
    assert_ok(&node.client(
        "ncftpput",
        &[&login[..], &["-m", "127.0.0.1", "/n/dir", "n.bin"]].concat(),
    ));
    std::fs::create_dir(node.path("got")).unwrap();
    assert_ok(&node.client(
        "ncftpget",
        &[&login[..], &["127.0.0.1", "got", "/n/dir/n.bin"]].concat(),
    ));
    assert!(std::fs::read(node.path("got/n.bin")).unwrap() == std::fs::read(node.path("n.bin")).unwrap());
    let missing = node.client(
        "ncftpget",
        &[&login[..], &["127.0.0.1", "got", "/n/dir/none.bin"]].concat(),
    );
    assert!(
        !ok(&missing),
        "ncftpget of a missing file must fail: {}",
        show(&missing)
    );
    // tnftp: upload to a URL, then auto-fetch it back.
    assert_ok(&node.client("tnftp", &["-n", "-u", &node.url("ftp", "n/dir/"), "t.bin"]));
    assert_ok(&node.client("tnftp", &["-n", "-o", "t.out", &node.url("ftp", "n/dir/t.bin")]));
    assert!(std::fs::read(node.path("t.out")).unwrap() == std::fs::read(node.path("t.bin")).unwrap());
    let missing = node.client("tnftp", &["-n", "-o", "none.out", &node.url("ftp", "n/dir/none.bin")]);
    assert!(!ok(&missing), "tnftp of a missing file must fail: {}", show(&missing));
    node.finish();
}

const FTPLIB_FACTS: &str = r#"
import ftplib, io, os, ssl
port = int(os.environ["FTP_PORT"])
if os.environ["TLS"]:
    context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
    f = ftplib.FTP_TLS(context=context); f.connect("127.0.0.1", port); f.login("alice", os.environ["PASSWORD"]); f.prot_p()
else:
    f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("alice", os.environ["PASSWORD"])
feat = f.sendcmd("FEAT")
assert " MLST type*;size*;modify*;" in feat, feat
f.mkd("m"); f.storbinary("STOR m/x.bin", io.BytesIO(b"x" * 1234)); f.mkd("m/sub")
entries = dict(f.mlsd("m", facts=["type", "size"]))
assert entries["x.bin"] == {"type": "file", "size": "1234"}, entries
assert entries["sub"]["type"] == "dir" and "modify" not in entries["sub"], entries
feat = f.sendcmd("FEAT")
assert " MLST type*;size*;modify;" in feat, feat
assert f.sendcmd("OPTS MLST modify;nonsense;") == "200 MLST OPTS modify;"
mlst = f.sendcmd("MLST m/x.bin")
assert "modify=" in mlst and "size=" not in mlst and "type=" not in mlst, mlst
assert list(f.mlsd("m", facts=["type", "size", "modify"]))
# A missing directory or file: 550 at once, no 150 first, and the session goes on.
for cmd in ["MLSD nothing", "LIST nothing", "NLST nothing", "RETR nothing", "STOR nothing/x.bin", "APPE m/x.bin/y"]:
    try:
        f.transfercmd(cmd); raise SystemExit(cmd + " opened a transfer")
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), (cmd, e)
assert f.voidcmd("NOOP").startswith("200")
print("facts ok")
"#;

/// Python's ftplib `mlsd(path, facts=[...])` (OPTS MLST) and 550 before any 150, plain and FTPS.
#[test]
fn ftplib_mlsd_facts_and_missing_targets_plain_and_ftps() {
    let node = FtpNode::start("50000-50100");
    for tls in [false, true] {
        let run = node.python(FTPLIB_FACTS, tls);
        assert_ok(&run);
        assert!(
            String::from_utf8_lossy(&run.stdout).contains("facts ok"),
            "{}",
            show(&run)
        );
        assert_ok(&node.python(
            "import ftplib, os\nf = ftplib.FTP(); f.connect('127.0.0.1', int(os.environ['FTP_PORT'])); \
             f.login('alice', os.environ['PASSWORD']); f.delete('m/x.bin'); f.rmd('m/sub'); f.rmd('m')",
            false,
        ));
    }
    node.finish();
}

const RAW_SESSION: &str = r#"
import os, socket
port = int(os.environ["FTP_PORT"])
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def reply():
    line = f.readline()
    code = line[:3]
    if line[3:4] == b"-":
        while not (line[:3] == code and line[3:4] == b" "):
            line = f.readline()
    return line.decode()
assert reply().startswith("220")
# Sent back to back in one write: answered in order.
s.sendall(("USER alice\r\nPASS %s\r\nTYPE I\r\nPWD\r\n" % os.environ["PASSWORD"]).encode())
got = [reply()[:3] for _ in range(4)]
assert got == ["331", "230", "200", "257"], got
s.sendall(b"MKD piped\r\nCWD piped\r\nPWD\r\nCDUP\r\nRMD piped\r\nPWD\r\n")
got = [reply() for _ in range(6)]
assert [g[:3] for g in got] == ["257", "250", "257", "250", "250", "257"], got
assert '"/piped"' in got[2] and '"/"' in got[5], got
# Malformed and unknown lines are answered, and the session goes on.
for line in [b"XYZZY\r\n", b"OPTS\r\n", b"STRU Q\r\n", b"OPTS FOO BAR\r\n", b"\xc3\x28\xc3\x28\r\n", b"\r\n"]:
    s.sendall(line)
    r = reply()
    assert r[:1] == "5", (line, r)
    s.sendall(b"NOOP\r\n")
    assert reply().startswith("200"), line
# A data command on a missing file, pipelined after PASV: 227, then 550 without 150.
s.sendall(b"PASV\r\nRETR missing.bin\r\nNOOP\r\n")
got = [reply()[:3] for _ in range(3)]
assert got == ["227", "550", "200"], got
s.sendall(b"QUIT\r\n")
assert reply().startswith("221")
print("raw ok")
"#;

/// A raw session: pipelined USER/PASS/TYPE/PWD in one write, pipelined CWD/PWD, malformed lines
/// answered with the session going on, 550 before 150.
#[test]
fn raw_session_pipelined_commands_and_malformed_lines() {
    let node = FtpNode::start("50000-50100");
    let run = node.python(RAW_SESSION, false);
    assert_ok(&run);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("raw ok"),
        "{}",
        show(&run)
    );
    node.finish();
}

const PASSIVE_FLOOD: &str = r#"
import ftplib, io, os, socket, threading
port = int(os.environ["FTP_PORT"])
def session():
    s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(("USER alice\r\nPASS %s\r\n" % os.environ["PASSWORD"]).encode())
    assert f.readline().startswith(b"331") and f.readline().startswith(b"230")
    return s, f
# 1,000 PASV without a transfer in one session: each closes the listener of the one before.
s, f = session()
s.sendall(b"PASV\r\n" * 1000)
codes = [f.readline()[:3] for _ in range(1000)]
assert codes.count(b"227") == 1000, set(codes)
# Meanwhile 10 other sessions transfer normally.
errors = []
def transfer(i):
    try:
        c = ftplib.FTP(); c.connect("127.0.0.1", port); c.login("alice", os.environ["PASSWORD"])
        data = os.urandom(20_000 + i)
        for n in range(3):
            c.storbinary("STOR t%d-%d.bin" % (i, n), io.BytesIO(data))
            out = io.BytesIO(); c.retrbinary("RETR t%d-%d.bin" % (i, n), out.write)
            assert out.getvalue() == data
            assert "t%d-%d.bin" % (i, n) in c.nlst()
        c.quit()
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=transfer, args=(i,)) for i in range(10)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
# More sessions holding a listener each than the range has ports: those left over get 425, and
# once they are gone the ports come back.
held = [session() for _ in range(30)]
for hs, hf in held:
    hs.sendall(b"PASV\r\n")
codes = [hf.readline()[:3] for hs, hf in held]
assert b"425" in codes and b"227" in codes, codes
for hs, hf in held:
    hs.sendall(b"QUIT\r\n"); hf.readline(); hs.close()
import time; time.sleep(0.5)
c = ftplib.FTP(); c.connect("127.0.0.1", port); c.login("alice", os.environ["PASSWORD"])
c.storbinary("STOR after.bin", io.BytesIO(b"after")); assert "after.bin" in c.nlst()
s.sendall(b"NOOP\r\n"); assert f.readline().startswith(b"200")
print("passive ok")
"#;

/// 1,000 PASV without transfers, normal transfers in 10 other sessions, a full passive range
/// answering 425 to the requests over and recovering.
#[test]
fn thousand_pasv_without_transfers_leave_ports_for_everyone() {
    let node = FtpNode::start("39500-39519");
    let run = node.python(PASSIVE_FLOOD, false);
    assert_ok(&run);
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("passive ok"),
        "{}",
        show(&run)
    );
    node.finish();
}

/// Every line a connection logs names its peer, and once logged in its user: one span per FTP and
/// per SFTP connection (libunftp's own lines and the storage back-end's included); neither the
/// password tried nor the account's root cap is ever logged.
#[test]
fn every_log_line_of_a_connection_names_its_peer_and_user() {
    let mut node = FtpNode::start("50000-50100");
    std::fs::write(node.path("up.txt"), b"logged\n").unwrap();
    assert_ok(&node.client("curl", &["-sS", "-T", "up.txt", &node.url("ftp", "ftp-up.txt")]));
    // A `/uri/<cap>` path: libunftp logs the paths it stores and reads (info, debug).
    let root = crate::common::alias_cap(&node.node(), "root");
    let by_cap = node.url("ftp", &format!("uri/{root}/by-cap.txt"));
    assert_ok(&node.client("curl", &["-sS", "-T", "up.txt", &by_cap]));
    assert_ok(&node.client("curl", &["-sS", "-o", "by-cap.txt", &by_cap]));
    let wrong = format!("ftp://mallory:Wr0ngPa55@127.0.0.1:{}/", node.port);
    assert!(
        !ok(&node.client("curl", &["-sS", &wrong])),
        "a wrong password is refused"
    );
    let sftp_port = node
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("sftp listening on 127.0.0.1:").map(str::to_string))
        .expect("the node prints its SFTP port");
    std::fs::write(node.path("put.batch"), "put up.txt sftp-up.txt\n").unwrap();
    let options = [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
    ];
    let options = [&options[..], &["BatchMode=no", "PubkeyAuthentication=no"]].concat();
    // The options go before -b, which sets BatchMode=yes (ssh takes an option's first value).
    let mut args = vec!["-e", "sftp"];
    for option in &options {
        args.extend(["-o", option]);
    }
    args.extend(["-P", &sftp_port, "-b", "put.batch", "alice@127.0.0.1"]);
    let sftp = node.client_env("sshpass", &args, &[("SSHPASS", PASSWORD)]);
    assert!(ok(&sftp), "{}\n{}", show(&sftp), node.log());
    node.stop();
    let log = node.log();
    let line = |what: &str| -> &str {
        log.lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{log}"))
    };
    // FTP: the login, and what libunftp and the storage back-end log after it.
    let login = line("lafs_gateway::frontends::ftp: ftp login");
    let ftp_span = span_of(login, " ftp{");
    assert!(ftp_span.starts_with(" ftp{peer=127.0.0.1:"), "{login}");
    assert!(ftp_span.ends_with(" user=alice}"), "{login}");
    assert!(line("Successful STOR").contains(ftp_span));
    assert!(line("QUIT: User logged out").contains(ftp_span));
    let refused = line("ftp login refused");
    assert!(
        refused.contains(" ftp{peer=127.0.0.1:") && refused.contains("user=\"mallory\""),
        "{refused}"
    );
    // SFTP: the login and the upload.
    let login = line("lafs_gateway::frontends::sftp: sftp login");
    let sftp_span = span_of(login, " sftp{");
    assert!(sftp_span.starts_with(" sftp{peer=127.0.0.1:"), "{login}");
    assert!(sftp_span.ends_with(" user=alice}"), "{login}");
    let stored = line("lafs_gateway::frontends::sftp::handles: stored ");
    assert!(stored.contains(sftp_span) && stored.contains("sftp-up.txt"), "{stored}");
    // Every line the frontends and libunftp wrote is in a connection's span.
    for l in log
        .lines()
        .filter(|l| l.contains("frontends::ftp") || l.contains("libunftp::"))
    {
        assert!(l.contains(" ftp{peer=127.0.0.1:"), "{l}");
    }
    for l in log.lines().filter(|l| l.contains("frontends::sftp")) {
        assert!(l.contains(" sftp{peer=127.0.0.1:"), "{l}");
    }
    assert!(line("Successful RETR").contains("/uri/<cap>/by-cap.txt"), "{log}");
    for secret in [PASSWORD, "Wr0ngPa55", root.as_str(), "URI:"] {
        assert!(!log.contains(secret), "{secret:?} logged");
    }
    node.finish();
}

/// The span part of a log line: from `start` (such as `" ftp{"`) to its closing brace.
fn span_of<'a>(line: &'a str, start: &str) -> &'a str {
    let from = line
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} span in {line}"));
    let len = line[from..]
        .find('}')
        .unwrap_or_else(|| panic!("unclosed span in {line}"));
    &line[from..=from + len]
}
