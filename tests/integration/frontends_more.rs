//! Issue 21 through real clients: `/uri/<cap>` paths, kept modes, OpenSSH's extensions and recorded hashes over SFTP and FTP.

use lafs_gateway::grid::uri::Cap;

use crate::common::gateway::{Gateway, PASSWORD, Run};

/// lftp running `script` as alice against the gateway's FTP port.
async fn lftp(gw: &Gateway, script: &str) -> Run {
    let mut lftp = tokio::process::Command::new("lftp");
    lftp.args(["-u", &format!("alice,{PASSWORD}"), "-e", script])
        .arg(format!("ftp://127.0.0.1:{}", gw.ftp_port));
    crate::common::gateway::run(lftp, gw.work.path(), b"").await
}

/// curl over FTP with `args`, `URL` in them replaced by `ftp://alice:PASSWORD@127.0.0.1:PORT`.
async fn curl_ftp(gw: &Gateway, args: &[&str]) -> Run {
    let base = format!("ftp://alice:{PASSWORD}@127.0.0.1:{}", gw.ftp_port);
    let mut cmd = tokio::process::Command::new("curl");
    cmd.arg("-sS");
    for arg in args {
        cmd.arg(arg.replace("URL", &base));
    }
    crate::common::gateway::run(cmd, gw.work.path(), b"").await
}

fn read(gw: &Gateway, name: &str) -> Vec<u8> {
    std::fs::read(gw.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Caps someone shared: a literal file, a CHK file, a writable directory holding `inside.txt`, and
/// that directory's read-only cap; none of them linked in alice's root.
async fn shared_caps(gw: &Gateway) -> (Cap, Cap, Cap, Cap) {
    let grid = &gw.grid.grid;
    let lit = Cap::parse("URI:LIT:nbswy3dpeb3w64tmmq").unwrap(); // "hello world"
    let chk_data = crate::common::pseudo_random(70_000, 21);
    let chk = grid
        .upload(
            std::io::Cursor::new(chk_data),
            70_000,
            lafs_gateway::grid::immutable::upload::KeyChoice::Convergent,
            None,
        )
        .await
        .unwrap();
    let dir = grid.create_directory().await.unwrap();
    let shared = lafs_gateway::vfs::Vfs::new(grid.clone(), dir.clone());
    shared
        .write_file(
            b"inside.txt",
            std::io::Cursor::new(b"inside\n".to_vec()),
            7,
            false,
            None,
        )
        .await
        .unwrap();
    let read_only = dir.read_only();
    (lit, chk, dir, read_only)
}

const PARAMIKO_URI: &str = r#"
import errno, os, paramiko, stat
caps = dict(line.split(" ", 1) for line in open(os.path.join(os.environ["WORK"], "caps")).read().splitlines())
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
          pkey=paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"]), look_for_keys=False, allow_agent=False)
s = c.open_sftp()
assert s.open("/uri/" + caps["lit"]).read() == b"hello world"
assert s.stat("/uri/" + caps["chk"]).st_size == 70000
assert s.stat("/uri/" + caps["chk"]).st_mode & 0o222 == 0, "a file cap alone is read-only"
assert sorted(s.listdir("/uri/" + caps["ro"])) == ["from-sftp.txt", "inside.txt"], s.listdir("/uri/" + caps["ro"])
assert stat.S_ISDIR(s.stat("/uri/" + caps["ro"]).st_mode)
assert s.stat("/uri/" + caps["ro"]).st_mode & 0o222 == 0
try:
    s.open("/uri/" + caps["ro"] + "/new.txt", "wb").close(); raise SystemExit("wrote into a read-only dircap")
except IOError as e:
    assert e.errno == errno.EACCES, e
try:
    s.remove("/uri/" + caps["lit"]); raise SystemExit("removed a bare cap")
except IOError as e:
    assert e.errno == errno.EACCES, e
with s.open("/uri/" + caps["rw"] + "/from-paramiko.txt", "wb") as f:
    f.write(b"paramiko was here")
print("paramiko uri ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uri_paths_open_files_and_directories_as_their_caps_allow() {
    let gw = Gateway::start().await;
    let (lit, chk, rw, ro) = shared_caps(&gw).await;
    std::fs::write(gw.path("up.txt"), b"uploaded\n").unwrap();
    std::fs::create_dir(gw.path("out")).unwrap();
    // OpenSSH sftp: get a file cap, a file inside a dircap, list a read-only dircap, write.
    let batch = format!(
        "get /uri/{lit} out/lit\nget /uri/{chk} out/chk\nget /uri/{rw}/inside.txt out/inside\n\
         put up.txt /uri/{rw}/from-sftp.txt\n-put up.txt /uri/{ro}/refused.txt\nls -l /uri/{ro}\n"
    );
    let run = gw.sftp_key(&batch, gw.work.path()).await;
    run.ok();
    assert_eq!(read(&gw, "out/lit"), b"hello world");
    assert_eq!(read(&gw, "out/chk"), crate::common::pseudo_random(70_000, 21));
    assert_eq!(read(&gw, "out/inside"), b"inside\n");
    let listing = run.stdout.split("ls -l /uri/").nth(1).unwrap();
    assert!(
        listing.contains("from-sftp.txt") && listing.contains("-r--r--r--"),
        "{listing}"
    );
    assert!(!listing.contains("refused.txt"), "{listing}");
    assert!(run.stderr.contains("ermission denied"), "{}", run.stderr);
    // paramiko.
    std::fs::write(gw.path("caps"), format!("lit {lit}\nchk {chk}\nrw {rw}\nro {ro}\n")).unwrap();
    let run = gw.python(PARAMIKO_URI).await;
    run.ok();
    assert!(run.stdout.contains("paramiko uri ok"), "{run:?}");
    let shared = lafs_gateway::vfs::Vfs::new(gw.grid.grid.clone(), rw.clone());
    assert_eq!(
        shared.read(b"from-paramiko.txt", 0, 100).await.unwrap(),
        b"paramiko was here"
    );
    // curl over SFTP and over FTP.
    let run = gw
        .curl(
            &[
                "-u",
                &format!("alice:{PASSWORD}"),
                "-o",
                "out/curl-sftp",
                &format!("URL/uri/{chk}"),
            ],
            gw.work.path(),
        )
        .await;
    run.ok();
    assert_eq!(read(&gw, "out/curl-sftp"), crate::common::pseudo_random(70_000, 21));
    let run = curl_ftp(&gw, &["-o", "out/curl-ftp", &format!("URL/uri/{rw}/inside.txt")]).await;
    run.ok();
    assert_eq!(read(&gw, "out/curl-ftp"), b"inside\n");
    let run = curl_ftp(&gw, &["-T", "up.txt", &format!("URL/uri/{ro}/refused.txt")]).await;
    assert_ne!(run.code, 0, "curl stored into a read-only dircap");
    // lftp: list a read-only dircap, get from it, put into the writable one.
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; cls -1 /uri/{ro}/; get /uri/{ro}/inside.txt -o out/lftp; \
         put up.txt -o /uri/{rw}/from-lftp.txt; bye"
    );
    let run = lftp(&gw, &script).await;
    run.ok();
    assert!(run.stdout.contains("inside.txt"), "{run:?}");
    assert_eq!(read(&gw, "out/lftp"), b"inside\n");
    assert_eq!(shared.read(b"from-lftp.txt", 0, 100).await.unwrap(), b"uploaded\n");
    // Nothing of this was linked into alice's own root.
    assert!(gw.alice().list(b"").await.unwrap().is_empty());
}

const PARAMIKO_MODES: &str = r#"
import os, paramiko, stat
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
          pkey=paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"]), look_for_keys=False, allow_agent=False)
s = c.open_sftp()
assert stat.S_IMODE(s.stat("m/sftp.txt").st_mode) == 0o640, oct(s.stat("m/sftp.txt").st_mode)
s.chmod("m/sftp.txt", 0o600)
assert stat.S_IMODE(s.stat("m/sftp.txt").st_mode) == 0o600
assert stat.S_IMODE(s.stat("m").st_mode) == 0o750, oct(s.stat("m").st_mode)
# A mode set on the open handle (as put -p does) is kept by the commit.
with s.open("m/handle.txt", "wb") as f:
    f.write(b"x"); f.chmod(0o604)
assert stat.S_IMODE(s.stat("m/handle.txt").st_mode) == 0o604, oct(s.stat("m/handle.txt").st_mode)
print("paramiko modes ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chmod_640_round_trips_over_sftp_and_ftp() {
    let gw = Gateway::start().await;
    std::fs::write(gw.path("f.txt"), b"mode me\n").unwrap();
    let run = gw
        .sftp_key(
            "mkdir m\nput f.txt m/sftp.txt\nput f.txt m/ftp.txt\nchmod 640 m/sftp.txt\nchmod 750 m\nls -l m\n",
            gw.work.path(),
        )
        .await;
    run.ok();
    let line = run
        .stdout
        .lines()
        .find(|l| l.ends_with("sftp.txt") && !l.starts_with("sftp>"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(line.starts_with("-rw-r----- "), "{line}");
    let stat = gw.alice().stat(b"m/sftp.txt").await.unwrap();
    assert_eq!(stat.mode, Some(0o640));
    let run = gw.python(PARAMIKO_MODES).await;
    run.ok();
    assert!(run.stdout.contains("paramiko modes ok"), "{run:?}");
    // lftp's chmod is SITE CHMOD; the server's LIST shows the bits.
    let run = lftp(&gw, "set cmd:fail-exit yes; chmod 640 m/ftp.txt; ls m/; bye").await;
    run.ok();
    let line = run
        .stdout
        .lines()
        .find(|l| l.ends_with("ftp.txt") && !l.contains("sftp"))
        .unwrap();
    assert!(line.starts_with("-rw-r----- "), "{line}");
    assert_eq!(gw.alice().stat(b"m/ftp.txt").await.unwrap().mode, Some(0o640));
    // curl sends SITE CHMOD as a quoted command.
    let run = curl_ftp(
        &gw,
        &["-Q", "SITE CHMOD 604 m/ftp.txt", "URL/m/ftp.txt", "-o", "/dev/null"],
    )
    .await;
    run.ok();
    assert_eq!(gw.alice().stat(b"m/ftp.txt").await.unwrap().mode, Some(0o604));
}

/// OpenSSH `ssh` running `command` as alice (an exec request).
async fn ssh_exec(gw: &Gateway, command: &str) -> Run {
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
    ])
    .arg(gw.key())
    .args(["-p", &gw.port.to_string(), "alice@127.0.0.1", command]);
    crate::common::gateway::run(ssh, gw.work.path(), b"").await
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

const PARAMIKO_CHECK: &str = r#"
import hashlib, os, paramiko
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
          pkey=paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"]), look_for_keys=False, allow_agent=False)
s = c.open_sftp()
with s.open("big.bin") as f:
    print("check", f.check("sha256").hex())
try:
    with s.open("big.bin") as f:
        f.check("md5"); raise SystemExit("md5 was answered")
except IOError:
    pass
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recorded_sha256_answers_check_file_hash_xsha256_and_sha256sum() {
    let gw = Gateway::start().await;
    // Streamed (over one segment) and small (journaled) uploads both record the digest.
    let big = crate::common::pseudo_random(8 << 20, 31);
    let small = b"small file\n".repeat(10);
    std::fs::write(gw.path("big.bin"), &big).unwrap();
    std::fs::write(gw.path("small.txt"), &small).unwrap();
    gw.sftp_key("put big.bin\nput small.txt\n", gw.work.path()).await.ok();
    for (name, data) in [("big.bin", &big), ("small.txt", &small)] {
        let (_, _, metadata) = gw.alice().lookup_entry(name.as_bytes()).await.unwrap();
        assert_eq!(
            metadata.get("sha256").and_then(|v| v.as_str()),
            Some(sha256_hex(data).as_str()),
            "{name}: {metadata:?}"
        );
    }
    let want = sha256_hex(&big);
    // paramiko's SFTPFile.check() (the check-file extension).
    let run = gw.python(PARAMIKO_CHECK).await;
    run.ok();
    assert!(run.stdout.contains(&format!("check {want}")), "{run:?}");
    // FTP HASH and XSHA256 through curl's quoted commands (the replies show with -v).
    let run = curl_ftp(
        &gw,
        &[
            "-v",
            "-Q",
            "HASH big.bin",
            "-Q",
            "XSHA256 big.bin",
            "URL/small.txt",
            "-o",
            "/dev/null",
        ],
    )
    .await;
    run.ok();
    let expected_hash = format!("213 SHA-256 0-{} {want} big.bin", big.len() - 1);
    assert!(run.stderr.contains(&expected_hash), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("250 {want}")), "{}", run.stderr);
    // sha256sum over SSH exec, as coreutils prints it.
    let run = ssh_exec(&gw, "sha256sum big.bin small.txt").await;
    run.ok();
    assert_eq!(
        run.stdout,
        format!("{want}  big.bin\n{}  small.txt\n", sha256_hex(&small))
    );
    // A file stored without a digest is hashed once and the digest recorded.
    let plain = crate::common::pseudo_random(300_000, 32);
    gw.alice()
        .write_file(b"plain.bin", std::io::Cursor::new(plain.clone()), 300_000, false, None)
        .await
        .unwrap();
    let run = ssh_exec(&gw, "sha256sum plain.bin").await;
    run.ok();
    assert_eq!(run.stdout, format!("{}  plain.bin\n", sha256_hex(&plain)));
    let (_, _, metadata) = gw.alice().lookup_entry(b"plain.bin").await.unwrap();
    assert_eq!(
        metadata.get("sha256").and_then(|v| v.as_str()),
        Some(sha256_hex(&plain).as_str())
    );
    let run = ssh_exec(&gw, "sha256sum nothing-here").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("nothing-here"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn site_verify_and_exec_verify_name_a_share_corrupted_on_disk() {
    let gw = Gateway::start().await;
    let data = crate::common::pseudo_random(200_000, 41);
    gw.alice()
        .write_file(b"v.bin", std::io::Cursor::new(data), 200_000, false, None)
        .await
        .unwrap();
    let (cap, _) = gw.alice().lookup(b"v.bin").await.unwrap();
    let run = curl_ftp(&gw, &["-v", "-Q", "SITE VERIFY v.bin", "URL/v.bin", "-o", "/dev/null"]).await;
    run.ok();
    assert!(
        run.stderr.contains("200 v.bin: healthy (10 of 10 shares good)"),
        "{}",
        run.stderr
    );
    // Flip a byte in the middle of one share's blocks.
    let files = gw.grid.share_files(&cap.storage_index().unwrap().to_string());
    let (victim, path) = files[4].clone();
    let mut raw = std::fs::read(&path).unwrap();
    let middle = raw.len() / 2;
    raw[middle] ^= 0x40;
    std::fs::write(&path, raw).unwrap();
    let run = curl_ftp(&gw, &["-v", "-Q", "SITE VERIFY v.bin", "URL/v.bin", "-o", "/dev/null"]).await;
    run.ok();
    assert!(
        run.stderr.contains("unhealthy: 9 of 10 shares good; bad: share ")
            && run.stderr.contains(&format!("share {victim} on ")),
        "{}",
        run.stderr
    );
    let run = ssh_exec(&gw, "verify v.bin").await;
    assert_eq!(run.code, 1, "an unhealthy file fails the command: {run:?}");
    assert!(
        run.stdout.contains(&format!(
            "v.bin: unhealthy: 9 of 10 shares good; bad: share {victim} on "
        )),
        "{run:?}"
    );
    // SITE REPAIR puts a good copy of that share elsewhere; verify is healthy again.
    let run = curl_ftp(&gw, &["-v", "-Q", "SITE REPAIR v.bin", "URL/v.bin", "-o", "/dev/null"]).await;
    run.ok();
    assert!(run.stderr.contains("200 v.bin: repaired"), "{}", run.stderr);
    // An account without write access may verify, not repair.
    let reader = format!("ftp://reader:{PASSWORD}@127.0.0.1:{}", gw.ftp_port);
    let mut curl = tokio::process::Command::new("curl");
    curl.args(["-sS", "-v", "-Q", "SITE REPAIR hello.txt", "-o", "/dev/null"])
        .arg(format!("{reader}/hello.txt"));
    let run = crate::common::gateway::run(curl, gw.work.path(), b"").await;
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("550 SITE REPAIR hello.txt: permission denied"),
        "{}",
        run.stderr
    );
    let run = curl_ftp(&gw, &["-v", "-Q", "SITE VERIFY v.bin", "URL/v.bin", "-o", "/dev/null"]).await;
    run.ok();
    assert!(
        run.stderr.contains(&format!(
            "200 v.bin: healthy (10 of 10 shares good); bad copies: share {victim} on "
        )),
        "{}",
        run.stderr
    );
}

const PARAMIKO_OPENSSH: &str = r#"
import errno, os, paramiko, stat
from paramiko.sftp import CMD_EXTENDED, CMD_NAME, CMD_EXTENDED_REPLY, int64
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
          pkey=paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"]), look_for_keys=False, allow_agent=False)
s = c.open_sftp()
def names(msg):
    return [msg.get_text() for _ in range(msg.get_int()) if True]
t, msg = s._request(CMD_EXTENDED, "expand-path@openssh.com", "~/docs/../big.bin")
assert t == CMD_NAME and msg.get_int() == 1 and msg.get_text() == "/big.bin"
t, msg = s._request(CMD_EXTENDED, "home-directory", "alice")
assert t == CMD_NAME and msg.get_int() == 1 and msg.get_text() == "/"
ids = paramiko.Message(); ids.add_int(0); ids.add_int(4242)
t, msg = s._request(CMD_EXTENDED, "users-groups-by-id@openssh.com", ids.asbytes(), paramiko.Message().asbytes())
assert t == CMD_EXTENDED_REPLY
users = paramiko.Message(msg.get_binary()); groups = msg.get_binary()
assert users.get_text() == "alice" and users.get_text() == "" and groups == b""
attrs = paramiko.SFTPAttributes(); attrs.st_mode = 0o600
s._request(CMD_EXTENDED, "lsetstat@openssh.com", "big.bin", attrs)
assert stat.S_IMODE(s.stat("big.bin").st_mode) == 0o600
with s.open("big.bin") as f:
    t, msg = s._request(CMD_EXTENDED, "fstatvfs@openssh.com", f.handle)
    assert t == CMD_EXTENDED_REPLY and msg.get_int64() == 4096
    # A part of a file is copied by its bytes.
    with s.open("part.bin", "wb") as out:
        s._request(CMD_EXTENDED, "copy-data", f.handle, int64(1000), int64(5000), out.handle, int64(0))
try:
    s._request(CMD_EXTENDED, "hardlink@openssh.com", "big.bin", "copy.bin"); raise SystemExit("linked over a file")
except IOError as e:
    pass
try:
    s._request(CMD_EXTENDED, "hardlink@openssh.com", "docs", "docs2"); raise SystemExit("linked a directory")
except IOError as e:
    assert e.errno == errno.EACCES, e
print("paramiko openssh ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openssh_cp_and_ln_copy_by_cap_and_the_other_extensions_answer_as_openssh() {
    let gw = Gateway::start().await;
    let big = crate::common::pseudo_random(3 << 20, 51);
    std::fs::write(gw.path("big.bin"), &big).unwrap();
    gw.sftp_key("put big.bin\nmkdir docs\n", gw.work.path()).await.ok();
    // cp (copy-data) and ln (hardlink) in a session of their own, whose bytes ssh counts.
    let run = gw
        .sftp_key_with(
            &["-o", "LogLevel=VERBOSE"],
            "cp big.bin copy.bin\nln big.bin link.bin\ndf\n",
            gw.work.path(),
        )
        .await;
    run.ok();
    let transferred = run
        .stderr
        .lines()
        .find_map(|l| l.split("Transferred: sent ").nth(1))
        .unwrap_or_else(|| panic!("no byte counts: {}", run.stderr));
    let counts: Vec<u64> = transferred
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        counts.iter().sum::<u64>() < 200_000,
        "the copy crossed the wire: {transferred}"
    );
    // The copy and the link are the very file (a streamed upload has a random key: a copy of
    // its bytes would have another cap).
    let (cap, _) = gw.alice().lookup(b"big.bin").await.unwrap();
    for name in ["copy.bin", "link.bin"] {
        let (other, stat) = gw.alice().lookup(name.as_bytes()).await.unwrap();
        assert_eq!(other, cap, "{name} is another file");
        assert_eq!(stat.size, big.len() as u64);
    }
    let (_, _, metadata) = gw.alice().lookup_entry(b"copy.bin").await.unwrap();
    assert!(
        metadata.contains_key("sha256"),
        "the copy keeps the digest: {metadata:?}"
    );
    let run = gw.python(PARAMIKO_OPENSSH).await;
    run.ok();
    assert!(run.stdout.contains("paramiko openssh ok"), "{run:?}");
    assert_eq!(gw.alice().read(b"part.bin", 0, 10_000).await.unwrap(), &big[1000..6000]);
}
