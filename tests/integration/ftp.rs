//! The FTP frontend driven by real clients: curl `ftp://` and Python's ftplib.

use crate::common::gateway::{Gateway, PASSWORD};
use crate::common::pseudo_random;

const FTPLIB_MATRIX: &str = r#"
import ftplib, io, os
port = int(os.environ["FTP_PORT"])
def login(user="alice", password=os.environ["PASSWORD"]):
    f = ftplib.FTP(); f.encoding = "utf-8"; f.connect("127.0.0.1", port); f.login(user, password); return f
f = login()
assert f.sendcmd("OPTS UTF8 ON").startswith("200")
data = os.urandom(3_000_000)
f.storbinary("STOR a.bin", io.BytesIO(data))
out = io.BytesIO(); f.retrbinary("RETR a.bin", out.write); assert out.getvalue() == data
assert f.size("a.bin") == len(data)
f.mkd("d"); f.cwd("d"); assert f.pwd() == "/d"; f.cwd("/")
f.rename("a.bin", "d/b.bin")
names = dict(f.mlsd("d")); assert "b.bin" in names and names["b.bin"]["type"] == "file", names
f.storbinary("STOR Grüße 日本.txt", io.BytesIO("✓".encode()))
assert "Grüße 日本.txt" in f.nlst()
# resume: REST + STOR from the committed size, and APPE
f.storbinary("STOR r.bin", io.BytesIO(data[:1000]))
f.storbinary("STOR r.bin", io.BytesIO(data[1000:5000]), rest=1000)
f.storbinary("APPE r.bin", io.BytesIO(data[5000:7000]))
out = io.BytesIO(); f.retrbinary("RETR r.bin", out.write); assert out.getvalue() == data[:7000]
out = io.BytesIO(); f.retrbinary("RETR r.bin", out.write, rest=6000); assert out.getvalue() == data[6000:7000]
# MFMT sets the time MDTM and MLSD report
feat = f.sendcmd("FEAT")
assert " MFMT" in feat and " MDTM" in feat and " REST STREAM" in feat, feat
assert f.sendcmd("MFMT 20200102030405 r.bin") == "213 Modify=20200102030405; r.bin"
assert f.sendcmd("MDTM r.bin").startswith("213 20200102030405"), f.sendcmd("MDTM r.bin")
assert dict(f.mlsd("/"))["r.bin"]["modify"].startswith("20200102030405")
mlst = f.sendcmd("MLST r.bin")
assert mlst.startswith("250") and "size=7000" in mlst.lower() and "type=file" in mlst.lower(), mlst
for cmd, code in [("MFMT 20200102030405 nothing", "550"), ("MFMT 2020 r.bin", "501"), ("MFMT 20201302030405 r.bin", "501")]:
    try:
        f.sendcmd(cmd); raise SystemExit(cmd + " should have failed")
    except ftplib.error_perm as e:
        assert str(e).startswith(code), (cmd, e)
# errors: missing things are 550
for cmd in [lambda: f.size("nothing"), lambda: f.cwd("nothing"), lambda: f.delete("nothing"), lambda: f.rmd("d")]:
    try:
        cmd(); raise SystemExit("should have failed")
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), e
f.delete("d/b.bin"); f.rmd("d")
# read-only account: 550 for every write
ro = login("reader")
out = io.BytesIO(); ro.retrbinary("RETR hello.txt", out.write); assert out.getvalue() == b"hello, read-only world\n"
for cmd in [lambda: ro.storbinary("STOR x", io.BytesIO(b"x")), lambda: ro.mkd("x"), lambda: ro.delete("hello.txt"),
            lambda: ro.rmd("sub"), lambda: ro.rename("hello.txt", "y"),
            lambda: ro.sendcmd("MFMT 20200102030405 hello.txt")]:
    try:
        cmd(); raise SystemExit("read-only write succeeded")
    except ftplib.error_perm as e:
        assert str(e).startswith("550"), e
try:
    login("alice", "wrong"); raise SystemExit("bad password accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("530"), e
print("ftplib ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftplib_matrix_resume_errors_and_read_only() {
    let gw = Gateway::start().await;
    let run = gw.python(FTPLIB_MATRIX).await;
    run.ok();
    assert!(run.stdout.contains("ftplib ok"), "{run:?}");
    let names: Vec<String> = gw
        .alice()
        .list(b"")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["Grüße 日本.txt".to_string(), "r.bin".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn curl_ftp_passive_and_active_transfers() {
    let gw = Gateway::start().await;
    let data = pseudo_random(2_500_000, 31);
    std::fs::write(gw.path("c.bin"), &data).unwrap();
    let user = format!("alice:{PASSWORD}");
    let base = format!("ftp://127.0.0.1:{}", gw.ftp_port);
    let modes: [(&[&str], &str); 3] = [
        (&[], "epsv.bin"),
        (&["--disable-epsv"], "pasv.bin"),
        (&["--ftp-port", "-"], "port.bin"),
    ];
    for (mode, name) in modes {
        let mut up = tokio::process::Command::new("curl");
        up.args(["-sS", "-u", &user, "-T", "c.bin"])
            .args(mode)
            .arg(format!("{base}/{name}"));
        crate::common::gateway::run(up, gw.work.path(), b"").await.ok();
        let mut down = tokio::process::Command::new("curl");
        down.args(["-sS", "-u", &user, "-o", "back.bin"])
            .args(mode)
            .arg(format!("{base}/{name}"));
        crate::common::gateway::run(down, gw.work.path(), b"").await.ok();
        assert!(std::fs::read(gw.path("back.bin")).unwrap() == data, "{name}");
    }
    let mut list = tokio::process::Command::new("curl");
    list.args(["-sS", "-u", &user]).arg(format!("{base}/"));
    let listing = crate::common::gateway::run(list, gw.work.path(), b"").await;
    listing.ok();
    assert!(
        listing.stdout.contains("epsv.bin") && listing.stdout.contains("2500000"),
        "{}",
        listing.stdout
    );
    let mut quote = tokio::process::Command::new("curl");
    quote
        .args([
            "-sS",
            "-u",
            &user,
            "-Q",
            "RNFR pasv.bin",
            "-Q",
            "RNTO moved.bin",
            "-Q",
            "DELE port.bin",
            "-o",
            "/dev/null",
        ])
        .arg(format!("{base}/"));
    crate::common::gateway::run(quote, gw.work.path(), b"").await.ok();
    let mut names: Vec<String> = gw
        .alice()
        .list(b"")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    assert_eq!(names, vec!["epsv.bin".to_string(), "moved.bin".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftps_required_takes_tls_and_refuses_plain_ftp() {
    let gw = Gateway::start_with(true).await;
    let data = pseudo_random(1_500_000, 41);
    std::fs::write(gw.path("s.bin"), &data).unwrap();
    let user = format!("alice:{PASSWORD}");
    let url = format!("ftp://127.0.0.1:{}/s.bin", gw.ftp_port);
    let mut up = tokio::process::Command::new("curl");
    up.args(["-sS", "--ssl-reqd", "--insecure", "-u", &user, "-T", "s.bin", &url]);
    crate::common::gateway::run(up, gw.work.path(), b"").await.ok();
    let mut down = tokio::process::Command::new("curl");
    down.args(["-sS", "--ssl-reqd", "--insecure", "-u", &user, "-o", "s.out", &url]);
    crate::common::gateway::run(down, gw.work.path(), b"").await.ok();
    assert!(std::fs::read(gw.path("s.out")).unwrap() == data);
    let mut plain = tokio::process::Command::new("curl");
    plain.args(["-sS", "-u", &user, "-o", "p.out", &url]);
    let refused = crate::common::gateway::run(plain, gw.work.path(), b"").await;
    assert_ne!(refused.code, 0, "plain FTP must be refused when FTPS is required");
    assert!(!gw.path("p.out").exists() || std::fs::read(gw.path("p.out")).unwrap().is_empty());
    let run = gw.python(FTPS_FTPLIB).await;
    run.ok();
    assert!(run.stdout.contains("ftps ok"), "{run:?}");
    let script = "set cmd:fail-exit yes; set net:max-retries 1; set ftp:ssl-force yes; \
                  set ftp:ssl-protect-data yes; set ssl:verify-certificate no; \
                  put s.bin -o l.bin; cls -l; get l.bin -o l.out; bye";
    let mut lftp = tokio::process::Command::new("lftp");
    lftp.args(["-u", &format!("alice,{PASSWORD}"), "-e", script])
        .arg(format!("ftp://127.0.0.1:{}", gw.ftp_port));
    let run = crate::common::gateway::run(lftp, gw.work.path(), b"").await;
    run.ok();
    assert!(run.stdout.contains("l.bin"), "{}", run.stdout);
    assert!(std::fs::read(gw.path("l.out")).unwrap() == data, "lftp over FTPS");
}

const FTPS_FTPLIB: &str = r#"
import ftplib, io, os, socket, ssl
port = int(os.environ["FTP_PORT"])
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=context); f.connect("127.0.0.1", port); f.login("alice", os.environ["PASSWORD"]); f.prot_p()
data = os.urandom(700_000)
f.storbinary("STOR t.bin", io.BytesIO(data))
out = io.BytesIO(); f.retrbinary("RETR t.bin", out.write); assert out.getvalue() == data
assert "t.bin" in f.nlst()
# A data connection that does not speak TLS: the transfer fails with a reply, the session goes on.
host, dport = f.makepasv()
f.putcmd("STOR garbage.bin")
assert f.getresp().startswith("150")
s = socket.create_connection((host, dport)); s.sendall(b"this is not a TLS handshake\r\n" * 100); s.close()
try:
    resp = f.getresp(); raise SystemExit("garbage accepted: " + resp)
except (ftplib.error_temp, ftplib.error_perm) as e:
    assert str(e)[:1] in "45", e
assert f.voidcmd("NOOP").startswith("200")
assert "garbage.bin" not in f.nlst(), f.nlst()
f.quit()
print("ftps ok")
"#;

const FTPLIB_ABORTS: &str = r#"
import ftplib, io, os, socket, struct, time
port = int(os.environ["FTP_PORT"])
f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("alice", os.environ["PASSWORD"])
f.storbinary("STOR keep.bin", io.BytesIO(b"the old contents"))
# A data connection reset part-way: the upload is dropped, the old file stays.
conn = f.transfercmd("STOR keep.bin")
conn.sendall(os.urandom(3 << 20))
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
try:
    f.voidresp()
except ftplib.all_errors:
    pass
# The same for a new file: nothing appears under its name.
conn = f.transfercmd("STOR never.bin")
conn.sendall(os.urandom(2 << 20))
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
try:
    f.voidresp()
except ftplib.all_errors:
    pass
# ABOR while the client is still sending: 426 for the STOR, then 226 for the ABOR (ftplib sends
# ABOR's last byte as urgent data); the data connection is closed cleanly afterwards.
conn = f.transfercmd("STOR keep.bin")
conn.sendall(os.urandom(3 << 20))
first = f.abort()
assert first.startswith("426"), first
assert f.voidresp().startswith("226")
conn.close()
conn = f.transfercmd("STOR aborted.bin")
conn.sendall(os.urandom(100_000))
assert f.abort().startswith("426")
assert f.voidresp().startswith("226")
conn.close()
# ABOR during a download, the usual case: 426 then 226, and the session goes on.
f.storbinary("STOR big.bin", io.BytesIO(os.urandom(24 << 20)))
conn = f.transfercmd("RETR big.bin")
assert len(conn.recv(65536)) > 0
first = f.abort()
assert first.startswith("426"), first
assert f.voidresp().startswith("226")
conn.close()
# ABOR with no transfer: one 226; also with the Telnet "interrupt process" and "data mark" before it.
assert f.abort().startswith("226")
f.sock.sendall(b"\xff\xf4\xff\xf2ABOR\r\n")
assert f.getresp().startswith("226")
assert f.sendcmd("NOOP").startswith("200")
# The control connection goes away mid-upload, then the data connection ends cleanly: the upload is
# not stored (the client never saw a 226).
gone = ftplib.FTP(); gone.connect("127.0.0.1", port); gone.login("alice", os.environ["PASSWORD"])
conn = gone.transfercmd("STOR gone.bin")
conn.sendall(os.urandom(2 << 20))
gone.sock.shutdown(socket.SHUT_RDWR)
gone.close()
time.sleep(0.3)
conn.close()
time.sleep(0.5)
g = ftplib.FTP(); g.connect("127.0.0.1", port); g.login("alice", os.environ["PASSWORD"])
out = io.BytesIO(); g.retrbinary("RETR keep.bin", out.write)
assert out.getvalue() == b"the old contents", out.getvalue()[:40]
names = g.nlst()
for name in ["never.bin", "aborted.bin", "gone.bin"]:
    assert name not in names, names
print("aborts ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_uploads_never_replace_or_create_files() {
    let gw = Gateway::start().await;
    let run = gw.python(FTPLIB_ABORTS).await;
    run.ok();
    assert!(run.stdout.contains("aborts ok"), "{run:?}");
    let keep = gw.alice().read(b"keep.bin", 0, 100).await.unwrap();
    assert_eq!(keep, b"the old contents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lftp_mkdir_put_list_get_move_remove_and_100_mib() {
    let gw = Gateway::start().await;
    let big = pseudo_random(100 << 20, 51);
    std::fs::write(gw.path("big.bin"), &big).unwrap();
    std::fs::write(gw.path("up.txt"), "lftp ✓\n").unwrap();
    // mirror -R keeps each file's time with MFMT.
    std::fs::create_dir(gw.path("tree")).unwrap();
    let old = std::fs::File::create(gw.path("tree/old.txt")).unwrap();
    old.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_934_245))
        .unwrap();
    drop(old);
    let script = "set cmd:fail-exit yes; set net:max-retries 1; set ftp:ssl-allow no; mkdir -p d; \
                  put up.txt -o d/a.txt; put big.bin -o d/big.bin; cls -l d; get d/a.txt -o out.txt; \
                  get d/big.bin -o big.out; mv d/a.txt d/b.txt; rm d/b.txt; mirror -R tree d/tree; bye";
    let mut lftp = tokio::process::Command::new("lftp");
    lftp.args(["-u", &format!("alice,{PASSWORD}"), "-e", script])
        .arg(format!("ftp://127.0.0.1:{}", gw.ftp_port));
    let run = crate::common::gateway::run(lftp, gw.work.path(), b"").await;
    run.ok();
    assert!(run.stdout.contains("big.bin"), "{}", run.stdout);
    assert_eq!(std::fs::read(gw.path("out.txt")).unwrap(), "lftp ✓\n".as_bytes());
    assert!(
        std::fs::read(gw.path("big.out")).unwrap() == big,
        "100 MiB came back different"
    );
    let names: Vec<String> = gw
        .alice()
        .list(b"d")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["big.bin".to_string(), "tree".to_string()]);
    let kept = gw.alice().stat(b"d/tree/old.txt").await.unwrap();
    assert_eq!(kept.mtime, Some(1_577_934_245.0), "mirror -R keeps the file's time");
}

/// The status a refused command got from the server.
fn refused_with<T: std::fmt::Debug>(result: suppaftp::FtpResult<T>) -> u32 {
    match result {
        Err(suppaftp::FtpError::UnexpectedResponse(response)) => response.status.code(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn suppaftp_login(gw: &Gateway, user: &str, mode: suppaftp::Mode) -> suppaftp::tokio::AsyncFtpStream {
    use suppaftp::types::FileType;
    let mut ftp = suppaftp::tokio::AsyncFtpStream::connect(("127.0.0.1", gw.ftp_port))
        .await
        .unwrap();
    if mode == suppaftp::Mode::Active {
        ftp = ftp.active_mode(std::time::Duration::from_secs(10));
    } else {
        ftp.set_mode(mode);
    }
    ftp.login(user, PASSWORD).await.unwrap();
    ftp.transfer_type(FileType::Binary).await.unwrap();
    ftp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_client_matrix_in_passive_extended_passive_and_active_mode() {
    use suppaftp::Mode;
    use suppaftp::Status;
    use tokio::io::AsyncReadExt;
    let gw = Gateway::start().await;
    for (mode, dir, size) in [
        (Mode::Passive, "pasv", 300_000),
        (Mode::ExtendedPassive, "epsv", 100 << 20),
        (Mode::Active, "port", 2_000_000),
    ] {
        let mut ftp = suppaftp_login(&gw, "alice", mode).await;
        let data = pseudo_random(size, size as u64);
        ftp.mkdir(dir).await.unwrap();
        ftp.cwd(dir).await.unwrap();
        assert_eq!(ftp.pwd().await.unwrap(), format!("/{dir}"));
        let name = "Grüße ✓.bin";
        assert_eq!(ftp.put_file(name, &mut &data[..]).await.unwrap(), size as u64);
        assert_eq!(ftp.size(name).await.unwrap(), size);
        let mut download = ftp.retr_as_stream(name).await.unwrap();
        let mut back = Vec::new();
        download.read_to_end(&mut back).await.unwrap();
        download.finish().await.unwrap();
        assert!(back == data, "{dir}: the file came back different");
        // Times: MFMT then MDTM.
        ftp.custom_command(format!("MFMT 20200102030405 {name}"), &[Status::File])
            .await
            .unwrap();
        let mdtm = ftp.mdtm(name).await.unwrap();
        assert_eq!(mdtm.and_utc().timestamp(), 1_577_934_245, "{dir}");
        // Resume: REST + STOR from the committed size, then APPE.
        ftp.put_file("r.bin", &mut &data[..1000]).await.unwrap();
        ftp.resume_transfer(1000).await.unwrap();
        ftp.put_file("r.bin", &mut &data[1000..5000]).await.unwrap();
        ftp.append_file("r.bin", &mut &data[5000..7000]).await.unwrap();
        ftp.resume_transfer(6000).await.unwrap();
        let mut download = ftp.retr_as_stream("r.bin").await.unwrap();
        let mut tail = Vec::new();
        download.read_to_end(&mut tail).await.unwrap();
        download.finish().await.unwrap();
        assert!(tail == data[6000..7000], "{dir}: RETR after REST 6000");
        assert_eq!(ftp.size("r.bin").await.unwrap(), 7000);
        // Listings, rename, delete.
        ftp.rename("r.bin", "s.bin").await.unwrap();
        let mut names = ftp.nlst(None).await.unwrap();
        names.sort();
        assert_eq!(names, vec!["Grüße ✓.bin".to_string(), "s.bin".to_string()], "{dir}");
        let long = ftp.list(None).await.unwrap();
        assert!(
            long.iter().any(|l| l.contains("s.bin") && l.contains("7000")),
            "{long:?}"
        );
        let facts = ftp.mlsd(None).await.unwrap();
        assert!(
            facts.iter().any(|l| l.contains("type=file") && l.ends_with(" s.bin")),
            "{facts:?}"
        );
        // An upload aborted part-way: 426 then 226 (suppaftp checks both), nothing stored.
        let mut upload = ftp.put_with_stream("aborted.bin").await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut upload, &data[..size.min(1 << 20)])
            .await
            .unwrap();
        ftp.abort(upload).await.unwrap();
        assert_eq!(refused_with(ftp.size("aborted.bin").await), 550, "{dir}");
        // Errors: missing things are 550.
        assert_eq!(refused_with(ftp.rm("nothing").await), 550);
        assert_eq!(refused_with(ftp.cwd("nothing").await), 550);
        assert_eq!(refused_with(ftp.rmdir(format!("/{dir}")).await), 550, "not empty");
        ftp.rm("s.bin").await.unwrap();
        ftp.rm(name).await.unwrap();
        ftp.cdup().await.unwrap();
        ftp.rmdir(dir).await.unwrap();
        ftp.quit().await.unwrap();
    }
    assert!(gw.alice().list(b"").await.unwrap().is_empty());
    // The read-only account: 550 for every change.
    let mut ro = suppaftp_login(&gw, "reader", Mode::ExtendedPassive).await;
    assert_eq!(ro.size("hello.txt").await.unwrap(), 23);
    assert_eq!(refused_with(ro.put_file("x", &mut &b"x"[..]).await), 550);
    assert_eq!(refused_with(ro.mkdir("x").await), 550);
    assert_eq!(refused_with(ro.rm("hello.txt").await), 550);
    assert_eq!(refused_with(ro.rename("hello.txt", "y").await), 550);
    assert_eq!(refused_with(ro.rmdir("sub").await), 550);
    // A wrong password is 530.
    let mut wrong = suppaftp::tokio::AsyncFtpStream::connect(("127.0.0.1", gw.ftp_port))
        .await
        .unwrap();
    assert_eq!(refused_with(wrong.login("alice", "wrong").await), 530);
}

/// A connection to the FTP port from `local` (another loopback address), and the greeting's first line.
async fn ftp_from(local: &str, port: u16) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncReadExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !line.ends_with(b"\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            line.push(byte[0]);
        }
    });
    read.await.expect("no greeting within 10 s");
    (stream, String::from_utf8_lossy(&line).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ftp_sessions_over_the_per_address_limit_get_421_and_others_are_served() {
    use lafs_gateway::frontends::limits::SessionLimits;
    use tokio::io::AsyncReadExt;
    let gw = Gateway::start_with_limits(SessionLimits {
        max_sessions_per_address: 3,
        ..SessionLimits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (stream, greeting) = ftp_from("127.0.0.2", gw.ftp_port).await;
        assert!(greeting.starts_with("220"), "greeting {greeting:?}");
        held.push(stream);
    }
    // The fourth from that address is told why, and closed.
    let (mut extra, refusal) = ftp_from("127.0.0.2", gw.ftp_port).await;
    assert!(refusal.starts_with("421 "), "refusal {refusal:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), extra.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the refused connection stayed open: {closed:?}"
    );
    // Another address is served meanwhile.
    let user = format!("alice:{PASSWORD}");
    let mut list = tokio::process::Command::new("curl");
    list.args(["-sS", "-u", &user, &format!("ftp://127.0.0.1:{}/", gw.ftp_port)]);
    crate::common::gateway::run(list, gw.work.path(), b"").await.ok();
    // A freed slot admits the address again.
    drop(held.pop());
    let started = std::time::Instant::now();
    loop {
        let (_stream, greeting) = ftp_from("127.0.0.2", gw.ftp_port).await;
        if greeting.starts_with("220") {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the freed slot was not given back: {greeting:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
