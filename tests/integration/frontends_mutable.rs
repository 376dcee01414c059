//! Issue 21: mutable files (SDMF, MDMF) in directories over SFTP (paramiko) and FTP (ftplib):
//! listed with their sizes, read at offsets, written in place under the same cap, refused when
//! the cap is read-only. (Files made by real Tahoe: `tests/interop/mutable_frontends.py`.)

use lafs_gateway::grid::uri::{Cap, MutableCap, MutableFormat};

use crate::common::gateway::Gateway;
use crate::common::pseudo_random;

const SCRIPT: &str = r#"
import errno, ftplib, io, os, paramiko
caps = dict(line.split(" ", 1) for line in open(os.path.join(os.environ["WORK"], "caps")).read().splitlines())
mdmf = open(os.path.join(os.environ["WORK"], "mdmf.expected"), "rb").read()
c = paramiko.SSHClient(); c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", port=int(os.environ["PORT"]), username="alice",
          pkey=paramiko.Ed25519Key.from_private_key_file(os.environ["KEY"]), look_for_keys=False, allow_agent=False)
s = c.open_sftp()
sizes = {a.filename: a.st_size for a in s.listdir_attr("/")}
assert sizes == {"sdmf.txt": 19, "mdmf.bin": len(mdmf), "ro.txt": 9}, sizes
assert s.stat("mdmf.bin").st_size == len(mdmf)
assert s.stat("ro.txt").st_mode & 0o222 == 0, oct(s.stat("ro.txt").st_mode)
with s.open("mdmf.bin") as f:
    f.seek(150000)
    assert f.read(1000) == mdmf[150000:151000]
    f.seek(10)
    assert f.read(5) == mdmf[10:15]
# In place, without truncation: the rest of the file stays.
with s.open("sdmf.txt", "r+") as f:
    f.seek(5); f.write(b"EDIT")
assert s.open("sdmf.txt").read() == b"SDMF EDIT contents\n", s.open("sdmf.txt").read()
# The bare cap is written in place too.
with s.open("/uri/" + caps["mdmf"], "wb") as f:
    f.write(b"via the bare cap\n")
for path in ("ro.txt", "/uri/" + caps["ro"]):
    try:
        s.open(path, "wb").close(); raise SystemExit("wrote " + path)
    except IOError as e:
        assert e.errno == errno.EACCES, (path, e)
ftp = ftplib.FTP(); ftp.connect("127.0.0.1", int(os.environ["FTP_PORT"])); ftp.login("alice", os.environ["PASSWORD"])
facts = {n: f for n, f in ftp.mlsd("/", facts=["size"])}
assert facts["mdmf.bin"]["size"] == "17", facts
got = io.BytesIO(); ftp.retrbinary("RETR sdmf.txt", got.write, rest=5)
assert got.getvalue() == b"EDIT contents\n", got.getvalue()
ftp.storbinary("STOR sdmf.txt", io.BytesIO(b"over FTP\n"))
try:
    ftp.storbinary("STOR ro.txt", io.BytesIO(b"no\n")); raise SystemExit("stored over a read-only cap")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
ftp.storbinary("STOR new.txt", io.BytesIO(b"a new file\n"))
print("mutable ok")
"#;

async fn mutable(gw: &Gateway, data: &[u8], format: MutableFormat) -> MutableCap {
    let grid = &gw.grid.grid;
    let key = grid.new_signing_key().await.unwrap();
    grid.create_mutable_as(key, data, format).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutable_files_are_listed_read_and_written_in_place_over_sftp_and_ftp() {
    let gw = Gateway::start().await;
    let alice = gw.alice();
    // 300 KB: three MDMF segments, read from the middle.
    let mdmf_data = pseudo_random(300_000, 7);
    let sdmf = mutable(&gw, b"SDMF file contents\n", MutableFormat::Sdmf).await;
    let mdmf = mutable(&gw, &mdmf_data, MutableFormat::Mdmf).await;
    let other = mutable(&gw, b"readonly\n", MutableFormat::Sdmf).await;
    for (name, cap) in [
        ("sdmf.txt", Cap::Mutable(sdmf.clone())),
        ("mdmf.bin", Cap::Mutable(mdmf.clone())),
        ("ro.txt", Cap::Mutable(other.read_only())),
    ] {
        alice.link_file(name.as_bytes(), &cap, false, None).await.unwrap();
    }
    std::fs::write(gw.path("mdmf.expected"), &mdmf_data).unwrap();
    std::fs::write(
        gw.path("caps"),
        format!(
            "mdmf {}\nro {}\n",
            Cap::Mutable(mdmf.clone()),
            Cap::Mutable(other.read_only())
        ),
    )
    .unwrap();
    let run = gw.python(SCRIPT).await;
    run.ok();
    assert!(run.stdout.contains("mutable ok"), "{run:?}");
    // Same caps, new versions; the new file is immutable as before.
    let grid = &gw.grid.grid;
    assert_eq!(grid.read_mutable(&sdmf).await.unwrap(), b"over FTP\n");
    assert_eq!(grid.read_mutable(&mdmf).await.unwrap(), b"via the bare cap\n");
    assert_eq!(grid.read_mutable(&other).await.unwrap(), b"readonly\n");
    assert_eq!(alice.cap_of(b"sdmf.txt").await.unwrap(), Cap::Mutable(sdmf));
    assert_eq!(alice.cap_of(b"mdmf.bin").await.unwrap(), Cap::Mutable(mdmf));
    assert!(matches!(
        alice.cap_of(b"new.txt").await.unwrap(),
        Cap::Literal(_) | Cap::Chk(_)
    ));
}
