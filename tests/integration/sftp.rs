//! The SFTP frontend driven by real clients: OpenSSH sftp, curl, paramiko and the Rust russh/russh-sftp client.

use std::time::Duration;

use lafs_gateway::vfs::Kind;

use crate::common::gateway::{Gateway, PASSWORD};
use crate::common::{pseudo_random, walk};

fn write(gw: &Gateway, name: &str, data: &[u8]) {
    std::fs::write(gw.path(name), data).unwrap();
}

fn read(gw: &Gateway, name: &str) -> Vec<u8> {
    std::fs::read(gw.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_sftp_put_get_list_rename_remove_and_sizes() {
    let gw = Gateway::start().await;
    let big = pseudo_random(100 << 20, 1);
    for (name, data) in [
        ("empty", Vec::new()),
        ("f55", pseudo_random(55, 2)),
        ("f56", pseudo_random(56, 3)),
        ("big", big.clone()),
        ("Grüße 日本.txt", "non-ASCII contents ✓\n".as_bytes().to_vec()),
        ("old.txt", b"an old file\n".to_vec()),
    ] {
        write(&gw, name, &data);
    }
    let old = gw.path("old.txt");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2020-01-02 03:04:05 UTC"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(touched.success());
    std::fs::create_dir(gw.path("out")).unwrap();
    let batch = r#"mkdir docs
put empty docs/empty
put f55 docs/f55
put f56 docs/f56
put big docs/big
put -p old.txt docs/old.txt
put "Grüße 日本.txt" "docs/Grüße 日本.txt"
ls -l docs
get docs/empty out/empty
get docs/f55 out/f55
get docs/f56 out/f56
get docs/big out/big
get "docs/Grüße 日本.txt" out/uni
rename -l docs/f55 docs/copy55
-rename -l docs/f56 docs/copy55
rename docs/f56 docs/copy55
get docs/copy55 out/copy55
rm docs/empty
mkdir docs/sub
-mkdir docs/sub
rmdir docs/sub
-rmdir docs
-rm docs/nothing-here
ls -l docs
"#;
    let run = gw.sftp_key(batch, gw.work.path()).await;
    run.ok();
    for (local, fetched) in [
        ("empty", "out/empty"),
        ("f55", "out/f55"),
        ("f56", "out/f56"),
        ("big", "out/big"),
    ] {
        assert!(read(&gw, local) == read(&gw, fetched), "{local} came back different");
    }
    assert_eq!(read(&gw, "out/uni"), read(&gw, "Grüße 日本.txt"));
    // posix-rename replaced copy55 (first f55's bytes) with f56's.
    assert_eq!(read(&gw, "out/copy55"), read(&gw, "f56"));
    let listing = run.stdout.split("sftp> ls -l docs").nth(1).unwrap();
    // sftp formats the lines itself (the server offers users-groups-by-id), naming each entry
    // by its path.
    assert!(
        listing
            .lines()
            .any(|l| l.contains(" 104857600 ") && l.ends_with("docs/big")),
        "{listing}"
    );
    assert!(listing.contains("Grüße 日本.txt"), "{listing}");
    let old_line = listing.lines().find(|l| l.ends_with("docs/old.txt")).unwrap();
    assert!(old_line.contains("Jan  2  2020"), "put -p lost the mtime: {old_line}");
    assert!(old_line.starts_with("-rw-r--r--"), "{old_line}");
    // The failures that were expected, each with its reason.
    assert!(
        run.stderr.contains("docs/copy55"),
        "legacy rename onto a file must fail: {}",
        run.stderr
    );
    assert!(run.stderr.contains("docs/sub"), "{}", run.stderr);
    assert!(run.stderr.contains("docs/nothing-here"), "{}", run.stderr);
    // And the grid agrees.
    let entries = gw.alice().list(b"docs").await.unwrap();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for name in ["big", "copy55", "old.txt", "Grüße 日本.txt"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let big_stat = gw.alice().stat(b"docs/big").await.unwrap();
    assert_eq!((big_stat.kind, big_stat.size), (Kind::File, big.len() as u64));
    let old_stat = gw.alice().stat(b"docs/old.txt").await.unwrap();
    assert_eq!(old_stat.mtime, Some(1_577_934_245.0));
    // `put -p` sets the time right after the close, while the link is still pending: the time
    // is journaled with it, and the published directory has it.
    let grid = &gw.grid.grid;
    let root = grid.list_directory(&gw.alice_root).await.unwrap();
    let docs = lafs_gateway::grid::directory::child_cap(&root["docs"]).unwrap();
    let queue = grid.commit_queue().expect("the test node journals small files");
    queue.flush(docs.storage_index().unwrap()).await.unwrap();
    let published = grid.list_directory(&docs).await.unwrap();
    assert_eq!(
        published["old.txt"].metadata.get("mtime"),
        Some(&serde_json::Value::from(1_577_934_245.0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_reput_and_reget_resume_partial_transfers() {
    let gw = Gateway::start().await;
    let full = pseudo_random(3 << 20, 7);
    write(&gw, "full.bin", &full);
    write(&gw, "partial.bin", &full[..(1 << 20) + 1000]);
    gw.sftp_key(
        "put partial.bin r.bin\nreput full.bin r.bin\nget r.bin whole.bin\n",
        gw.work.path(),
    )
    .await
    .ok();
    assert!(read(&gw, "whole.bin") == full, "reput did not complete the file");
    write(&gw, "local-part.bin", &full[..12345]);
    gw.sftp_key("reget r.bin local-part.bin\n", gw.work.path()).await.ok();
    assert!(read(&gw, "local-part.bin") == full, "reget did not complete the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn big_requests_and_the_limits_extension_move_64_mib_both_ways() {
    let gw = Gateway::start().await;
    let data = pseudo_random(64 << 20, 21);
    write(&gw, "big.bin", &data);
    // Default: the client learns our limits (limits@openssh.com) and sizes its requests by them.
    gw.sftp_key("put big.bin a.bin\nget a.bin a.out\n", gw.work.path())
        .await
        .ok();
    assert!(read(&gw, "a.out") == data);
    // 255 KiB per request with 64 in flight, answered whole. A request loop that stopped reading
    // the channel while a reply waited for window space stalled here after 27 MB: russh's
    // per-channel queue filled up and its session loop, blocked on it, no longer took in the
    // client's window adjustments.
    let run = gw
        .sftp_key_with(&["-B", "261120", "-R", "64"], "get a.bin b.out\n", gw.work.path())
        .await;
    run.ok();
    assert!(read(&gw, "b.out") == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_account_is_refused_every_write_with_permission_denied() {
    let gw = Gateway::start().await;
    write(&gw, "up.txt", b"nope");
    let batch = "get hello.txt got.txt\nls -l\n-put up.txt new.txt\n-put up.txt hello.txt\n-mkdir d\n-rmdir sub\n\
                 -rm hello.txt\n-rename hello.txt h2.txt\n-chmod 600 hello.txt\n";
    let run = gw.sftp_password("reader", PASSWORD, batch, gw.work.path()).await;
    run.ok();
    assert_eq!(read(&gw, "got.txt"), b"hello, read-only world\n");
    let refusals = run.stderr.matches("Permission denied").count();
    assert_eq!(
        refusals, 7,
        "every write must be refused as PERMISSION_DENIED:\n{}",
        run.stderr
    );
    let listing = run.stdout.split("sftp> ls -l").nth(1).unwrap();
    assert!(
        listing.contains("-r--r--r--") && listing.contains("dr-xr-xr-x"),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_sftp_upload_download_list_and_quote_commands() {
    let gw = Gateway::start().await;
    let data = pseudo_random(300_000, 11);
    write(&gw, "c.bin", &data);
    let user = format!("alice:{PASSWORD}");
    let cwd = gw.work.path();
    gw.curl(&["-u", &user, "-T", "c.bin", "URL/c.bin"], cwd).await.ok();
    gw.curl(&["-u", &user, "-o", "c.out", "URL/c.bin"], cwd).await.ok();
    assert!(read(&gw, "c.out") == data);
    let key = gw.key();
    let key_pub = gw.path("alice_key.pub");
    let listing = gw
        .curl(
            &[
                "-u",
                "alice:",
                "--key",
                key.to_str().unwrap(),
                "--pubkey",
                key_pub.to_str().unwrap(),
                "URL/",
            ],
            cwd,
        )
        .await;
    listing.ok();
    assert!(
        listing.stdout.contains(" 300000 ") && listing.stdout.contains("c.bin"),
        "{}",
        listing.stdout
    );
    gw.curl(
        &[
            "-u",
            &user,
            "-Q",
            "rename /c.bin /d.bin",
            "-Q",
            "mkdir /dir",
            "-Q",
            "rmdir /dir",
            "-o",
            "/dev/null",
            "URL/",
        ],
        cwd,
    )
    .await
    .ok();
    let names: Vec<String> = gw
        .alice()
        .list(b"")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["d.bin".to_string()]);
    gw.curl(&["-u", &user, "-Q", "rm /d.bin", "-o", "/dev/null", "URL/"], cwd)
        .await
        .ok();
    assert!(gw.alice().list(b"").await.unwrap().is_empty());
    let wrong = gw.curl(&["-u", "alice:wrong", "-o", "x", "URL/d.bin"], cwd).await;
    assert_ne!(wrong.code, 0, "a wrong password must be refused");
    let missing = gw.curl(&["-u", &user, "-o", "x", "URL/missing"], cwd).await;
    assert_eq!(missing.code, 78, "curl's 'remote file not found': {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shell_and_exec_are_refused_and_sftp_closes_cleanly_without_ssh_config() {
    let gw = Gateway::start().await;
    let port = gw.port.to_string();
    let key = gw.key();
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-i"])
    .arg(&key)
    .args(["-p", &port, "alice@127.0.0.1", "ls", "/"]);
    let exec = crate::common::gateway::run(ssh, gw.work.path(), b"").await;
    assert_eq!(exec.code, 1, "{exec:?}");
    assert!(exec.stderr.contains("only the SFTP protocol"), "{exec:?}");
    // No ssh_config (so no SendEnv), a pty request and env sent anyway: the session must end at EOF.
    let mut sftp = tokio::process::Command::new("sftp");
    sftp.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args([
        "-o",
        "LogLevel=ERROR",
        "-o",
        "SendEnv=LANG",
        "-o",
        "RequestTTY=yes",
        "-i",
    ])
    .arg(&key)
    .args(["-P", &port, "-b", "-", "alice@127.0.0.1"])
    .env("LANG", "C.UTF-8");
    let started = std::time::Instant::now();
    let run = crate::common::gateway::run(sftp, gw.work.path(), b"mkdir x\nls\n").await;
    run.ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "sftp did not exit after EOF"
    );
    assert!(run.stdout.contains('x'));
    // scp (SFTP mode since OpenSSH 9.0) up and back: it exits 0 only if the server sends the
    // exit status at the end, as sshd does for sftp-server.
    write(&gw, "scp.bin", &pseudo_random(70_000, 9));
    for (from, to) in [
        ("scp.bin".to_string(), "alice@127.0.0.1:x/scp.bin".to_string()),
        ("alice@127.0.0.1:x/scp.bin".to_string(), "scp.back".to_string()),
    ] {
        let mut scp = tokio::process::Command::new("scp");
        scp.args(Gateway::ssh_options())
            .args(["-F", "/dev/null", "-s", "-o", "BatchMode=yes", "-i"])
            .arg(&key)
            .args(["-P", &port, &from, &to]);
        crate::common::gateway::run(scp, gw.work.path(), b"").await.ok();
    }
    assert!(
        read(&gw, "scp.back") == read(&gw, "scp.bin"),
        "scp brought back other bytes"
    );
}

/// paramiko: the semantics clients rely on, each checked against what the server answered.
const PARAMIKO_SEMANTICS: &str = r#"
import errno, os, paramiko, stat, time
port = int(os.environ["PORT"])
def connect(user="alice", password=None, key=None):
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", port=port, username=user, password=password, pkey=key,
              look_for_keys=False, allow_agent=False)
    return c
key = paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"])
c = connect(key=key)
s = c.open_sftp()

# put/get/listdir_attr/stat/posix_rename/remove/mkdir/rmdir
with s.open("a.txt", "wb") as f:
    f.write(b"version one")
assert s.stat("a.txt").st_size == 11
assert stat.S_ISREG(s.stat("a.txt").st_mode)
s.mkdir("d")
assert stat.S_ISDIR(s.stat("d").st_mode)
s.posix_rename("a.txt", "d/a.txt")
assert sorted(a.filename for a in s.listdir_attr("d")) == ["a.txt"]
try:
    s.mkdir("d"); raise SystemExit("mkdir of an existing directory succeeded")
except IOError: pass
try:
    s.rmdir("d"); raise SystemExit("rmdir of a non-empty directory succeeded")
except IOError: pass
try:
    s.stat("nothing"); raise SystemExit("stat of a missing file succeeded")
except IOError as e:
    assert e.errno == errno.ENOENT, e

# stat of a file open for writing answers its current size; setstat of the mtime right after close works
f = s.open("w.bin", "wb")
f.write(b"x" * 1000); f.flush()
assert s.stat("w.bin").st_size == 1000, s.stat("w.bin")
f.write(b"y" * 500); f.flush()
assert s.stat("w.bin").st_size == 1500
f.close()
s.utime("w.bin", (1000000000, 1000000000))
assert s.stat("w.bin").st_mtime == 1000000000

# readers keep the version they opened; of two writers the last close wins
r = s.open("d/a.txt", "rb")
w1 = s.open("d/a.txt", "wb"); w2 = s.open("d/a.txt", "wb")
w1.write(b"from writer one"); w2.write(b"from writer two")
w2.close(); w1.close()
assert r.read() == b"version one"
r.close()
assert s.open("d/a.txt", "rb").read() == b"from writer one"

# WinSCP-style resume: open without APPEND or TRUNC, write from an offset
with s.open("d/a.txt", "r+") as f:
    f.seek(15); f.write(b" and more")
assert s.open("d/a.txt", "rb").read() == b"from writer one and more"
with s.open("d/a.txt", "ab") as f:
    f.write(b"!")
assert s.open("d/a.txt", "rb").read() == b"from writer one and more!"

# exclusive create
f = s.open("x.txt", "x"); f.close()
try:
    s.open("x.txt", "x"); raise SystemExit("O_EXCL on an existing file succeeded")
except IOError: pass

# a session that drops with files open for writing commits nothing
c2 = connect(password=os.environ["PASSWORD"])
s2 = c2.open_sftp()
f = s2.open("d/a.txt", "wb"); f.write(b"half of a new version"); f.flush()
g = s2.open("new.txt", "wb"); g.write(b"never closed"); g.flush()
h = s2.open("big-never-closed.bin", "wb"); h.write(os.urandom(3 << 20)); h.flush()
c2.close()
time.sleep(0.5)
assert s.open("d/a.txt", "rb").read() == b"from writer one and more!"
assert "new.txt" not in s.listdir("."), s.listdir(".")
assert "big-never-closed.bin" not in s.listdir(".")

# a write out of order after a file began streaming to the grid moves it to the spool, losing nothing
blob = os.urandom((2 << 20) + 12345)
with s.open("ooo.bin", "wb") as f:
    f.write(blob)
    f.seek(100); f.write(b"XYZ")
    f.seek(len(blob)); f.write(b"tail")
assert s.open("ooo.bin", "rb").read() == blob[:100] + b"XYZ" + blob[103:] + b"tail"
with s.open("seq.bin", "wb") as f:
    f.write(blob)
assert s.stat("seq.bin").st_size == len(blob)
assert s.open("seq.bin", "rb").read() == blob

# truncate through setstat, statvfs, symlinks unsupported
s.truncate("d/a.txt", 4)
assert s.open("d/a.txt", "rb").read() == b"from"
v = c.exec_command  # keep a reference: exec must be refused below
try:
    s.symlink("d/a.txt", "link"); raise SystemExit("symlink succeeded")
except IOError: pass
stdin, stdout, stderr = c.exec_command("ls")
assert stdout.channel.recv_exit_status() == 1
assert b"only the SFTP protocol" in stderr.read()

# wrong password and wrong user are refused
for user, password in [("alice", "wrong"), ("nobody", "secret")]:
    try:
        connect(user=user, password=password); raise SystemExit("bad login accepted")
    except paramiko.AuthenticationException: pass

# the read-only account: every write is PERMISSION_DENIED
ro = connect(user="reader", password=os.environ["PASSWORD"]).open_sftp()
assert ro.open("hello.txt").read() == b"hello, read-only world\n"
def denied(what, *args):
    try:
        what(*args)
    except PermissionError: return
    except IOError as e:
        assert e.errno == errno.EACCES, (what, e)
        return
    raise SystemExit("%s succeeded on a read-only account" % what.__name__)
denied(lambda: ro.open("new.txt", "wb").write(b"x"))
denied(lambda: ro.open("hello.txt", "r+"))
denied(ro.mkdir, "d"); denied(ro.rmdir, "sub"); denied(ro.remove, "hello.txt")
denied(ro.rename, "hello.txt", "h"); denied(ro.posix_rename, "hello.txt", "h")
denied(ro.utime, "hello.txt", (1, 1)); denied(ro.chmod, "hello.txt", 0o600)
denied(ro.truncate, "hello.txt", 1)
print("paramiko semantics ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paramiko_semantics_concurrent_opens_dropped_sessions_resume_and_read_only() {
    let gw = Gateway::start().await;
    let run = gw.python(PARAMIKO_SEMANTICS).await;
    run.ok();
    assert!(run.stdout.contains("paramiko semantics ok"), "{run:?}");
    // What paramiko saw is what the grid holds.
    let stat = gw.alice().stat(b"w.bin").await.unwrap();
    assert_eq!((stat.size, stat.mtime), (1500, Some(1_000_000_000.0)));
    let a = gw.alice().read(b"d/a.txt", 0, 100).await.unwrap();
    assert_eq!(a, b"from");
    // The dropped session's streamed upload was aborted: no share is left half-written.
    let incoming: Vec<_> = walk(gw.grid.dir.path())
        .into_iter()
        .filter(|p| p.is_file() && p.to_string_lossy().contains("incoming"))
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
}

/// The Rust client: russh for SSH, russh-sftp's client for SFTP.
pub(crate) mod rust_client {
    use std::sync::Arc;

    use russh::client;
    use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
    use russh_sftp::client::SftpSession;

    pub struct AcceptAnyHostKey;

    impl client::Handler for AcceptAnyHostKey {
        type Error = russh::Error;

        async fn check_server_key(&mut self, _key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }

    pub enum Login<'a> {
        Password(&'a str),
        Key(&'a PrivateKey),
    }

    /// Logs in; `Ok(None)` if the server refused the credentials.
    pub async fn connect(port: u16, user: &str, login: Login<'_>) -> anyhow::Result<Option<SftpSession>> {
        let config = Arc::new(client::Config::default());
        let mut session = client::connect(config, ("127.0.0.1", port), AcceptAnyHostKey).await?;
        let result = match login {
            Login::Password(password) => session.authenticate_password(user, password).await?,
            Login::Key(key) => {
                let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
                session.authenticate_publickey(user, key).await?
            }
        };
        if !result.success() {
            return Ok(None);
        }
        let channel = session.channel_open_session().await?;
        channel.request_subsystem(true, "sftp").await?;
        let sftp = SftpSession::new(channel.into_stream()).await?;
        // The SSH session lives as long as its channel; keep the handle alive with it.
        std::mem::forget(session);
        Ok(Some(sftp))
    }

    /// Creates (or truncates) `path` and writes `data` to it (`SftpSession::write` does not create).
    pub async fn put(sftp: &SftpSession, path: String, data: &[u8]) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut file = sftp.create(path).await?;
        file.write_all(data).await?;
        file.shutdown().await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_client_key_and_password_logins_and_accounts_file_reload() {
    use rust_client::{Login, connect};
    let gw = Gateway::start().await;
    let key = russh::keys::PrivateKey::read_openssh_file(gw.key()).unwrap();
    let sftp = connect(gw.port, "alice", Login::Key(&key))
        .await
        .unwrap()
        .expect("key login");
    let data = pseudo_random(200_000, 5);
    rust_client::put(&sftp, "r.bin".into(), &data).await.unwrap();
    assert!(sftp.read("r.bin").await.unwrap() == data);
    sftp.create_dir("dir").await.unwrap();
    sftp.rename("r.bin", "dir/s.bin").await.unwrap();
    let names: Vec<String> = sftp.read_dir("dir").await.unwrap().map(|e| e.file_name()).collect();
    assert_eq!(names, vec!["s.bin".to_string()]);
    assert_eq!(sftp.metadata("dir/s.bin").await.unwrap().size, Some(200_000));
    let info = sftp.fs_info("/").await.unwrap().expect("statvfs@openssh.com");
    assert!(info.blocks_avail > 0);
    sftp.remove_file("dir/s.bin").await.unwrap();
    sftp.remove_dir("dir").await.unwrap();

    let password = connect(gw.port, "alice", Login::Password(PASSWORD)).await.unwrap();
    assert!(password.is_some(), "password login");
    for (user, pw) in [("alice", "Secret"), ("alice", ""), ("bob", PASSWORD)] {
        let refused = connect(gw.port, user, Login::Password(pw)).await.unwrap();
        assert!(refused.is_none(), "{user}/{pw:?} must be refused");
    }
    let other = russh::keys::PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&[9; 32]));
    assert!(
        connect(gw.port, "alice", Login::Key(&other)).await.unwrap().is_none(),
        "unknown key accepted"
    );

    // Edit the accounts file while the gateway runs: add bob, take alice's password away.
    let text = std::fs::read_to_string(&gw.accounts_path).unwrap();
    let hash = lafs_gateway::frontends::accounts::hash_password("bobs password").unwrap();
    let mut edited: String = text
        .lines()
        .filter(|l| !(l.starts_with("alice $argon2")))
        .map(|l| format!("{l}\n"))
        .collect();
    edited.push_str(&format!("bob {hash} {}\n", gw.alice_root));
    edited.push_str("broken line that is skipped\n");
    let temp = gw.path("accounts.new");
    std::fs::write(&temp, edited).unwrap();
    std::fs::rename(&temp, &gw.accounts_path).unwrap();
    let bob = connect(gw.port, "bob", Login::Password("bobs password")).await.unwrap();
    assert!(
        bob.expect("bob can log in without a restart")
            .try_exists("/")
            .await
            .unwrap()
    );
    assert!(
        connect(gw.port, "alice", Login::Password(PASSWORD))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        connect(gw.port, "alice", Login::Key(&key)).await.unwrap().is_some(),
        "alice's key still works"
    );
    drop(sftp);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_sessions_each_write_and_reread_twenty_files() {
    use rust_client::{Login, connect};
    let gw = Gateway::start().await;
    let key = russh::keys::PrivateKey::read_openssh_file(gw.key()).unwrap();
    let mut sessions = tokio::task::JoinSet::new();
    for session in 0..50u64 {
        let key = key.clone();
        let port = gw.port;
        sessions.spawn(async move {
            let sftp = connect(port, "alice", Login::Key(&key)).await.unwrap().expect("login");
            let dir = format!("s{session:02}");
            sftp.create_dir(dir.clone()).await.unwrap();
            for n in 0..20u64 {
                let data = pseudo_random(64 << 10, session * 100 + n);
                rust_client::put(&sftp, format!("{dir}/f{n:02}"), &data).await.unwrap();
            }
            let mut correct = 0;
            for n in 0..20u64 {
                let data = pseudo_random(64 << 10, session * 100 + n);
                if sftp.read(format!("{dir}/f{n:02}")).await.unwrap() == data {
                    correct += 1;
                }
            }
            correct
        });
    }
    let mut correct = 0;
    while let Some(result) = sessions.join_next().await {
        correct += result.unwrap();
    }
    assert_eq!(correct, 1000);
    // The grid holds all 1,000, each in its session's directory.
    let vfs = gw.alice();
    let mut stored = 0;
    for session in 0..50 {
        stored += vfs.list(format!("s{session:02}").as_bytes()).await.unwrap().len();
    }
    assert_eq!(stored, 1000);
}
