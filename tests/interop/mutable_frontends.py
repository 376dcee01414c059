"""Issue 21: mutable files that a real Tahoe 1.20 client made, listed, read and overwritten in place
through `lafs run`'s SFTP (OpenSSH `sftp -b`) and FTP (Python's ftplib), then read back by the real
client under the same cap. Run by tahoe_webapi.py on its nodes (the real client and our gateway
share the storage servers); prints one PASS/FAIL line per check.
"""
import ftplib
import io
import json
import os
import subprocess

USER, PASSWORD = "alice", "mutable-test"


def check(results, label, ok, detail=""):
    results.append(bool(ok))
    print("%s %s%s" % ("PASS" if ok else "FAIL", label, "" if ok else ": " + detail))


def run(tahoe, tahoe_dir, ours, lafs, work, sftp_port, ftp_port):
    """Returns (passed, failed)."""
    results = []
    files = os.path.join(work, "mutable-frontends")
    os.makedirs(files)

    def write(name, data):
        path = os.path.join(files, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def real(*argv):
        rc, out, err = tahoe(tahoe_dir, *argv)
        if rc not in (0, None):
            raise SystemExit("tahoe %s failed: %s %s" % (" ".join(argv), out, err))
        return out.strip()

    def entry(dircap, name):
        return json.loads(real("ls", "--json", dircap + "/" + name))[1]

    sdmf = b"SDMF made by real tahoe put --mutable\n"
    mdmf = bytes(range(256)) * 1200  # 300 KiB: three MDMF segments
    ro = b"read-only through this entry\n"
    dircap = real("mkdir")
    real("put", "--mutable", write("sdmf.txt", sdmf), dircap + "/sdmf.txt")
    real("put", "--format=MDMF", write("mdmf.bin", mdmf), dircap + "/mdmf.bin")
    writable = real("put", "--mutable", write("ro.txt", ro))
    read_only = json.loads(real("ls", "--json", writable))[1]["ro_uri"]
    real("ln", read_only, dircap + "/ro.txt")
    caps = {name: entry(dircap, name)["rw_uri"] for name in ("sdmf.txt", "mdmf.bin")}

    # One root for both protocols: the directory the real client made.
    key = os.path.join(files, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    subprocess.run([lafs, "--node-dir", ours, "account", "add", USER, "--key", key + ".pub", "--root", dircap],
                   check=True, capture_output=True)
    subprocess.run([lafs, "--node-dir", ours, "account", "add", USER, "--password"],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)

    def sftp(batch):
        # -F /dev/null: no SendEnv from the system's ssh_config.
        return subprocess.run(
            ["sftp", "-F", "/dev/null", "-i", key, "-P", str(sftp_port), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-b", "-", USER + "@127.0.0.1"],
            input=batch, text=True, capture_output=True, timeout=60)

    # SFTP: listed with their sizes, read, overwritten in place.
    listing = sftp("ls -l\n")
    sizes = {}
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[0].startswith("-"):
            sizes[fields[-1]] = int(fields[4])
    check(results, "sftp lists real Tahoe's SDMF and MDMF files with their sizes",
          sizes == {"sdmf.txt": len(sdmf), "mdmf.bin": len(mdmf), "ro.txt": len(ro)}, repr(listing))
    got = os.path.join(files, "got")
    read = sftp("get sdmf.txt %s.sdmf\nget mdmf.bin %s.mdmf\n" % (got, got))
    check(results, "sftp reads both mutable files",
          read.returncode == 0 and open(got + ".sdmf", "rb").read() == sdmf
          and open(got + ".mdmf", "rb").read() == mdmf, repr(read))
    new_sdmf = b"SDMF overwritten over SFTP, a longer second version\n"
    put = sftp("put %s sdmf.txt\n" % write("new.sdmf", new_sdmf))
    after = entry(dircap, "sdmf.txt")
    check(results, "sftp put over an SDMF file publishes a new version under the same cap",
          put.returncode == 0 and after["rw_uri"] == caps["sdmf.txt"] and after["mutable"]
          and real("get", dircap + "/sdmf.txt") == new_sdmf.decode().strip(), repr(put))
    denied = sftp("put %s ro.txt\n" % write("attempt", b"not allowed\n"))
    check(results, "sftp put over a read-only mutable cap is refused with permission denied",
          denied.returncode != 0 and "Permission denied" in denied.stderr
          and real("get", dircap + "/ro.txt") == ro.decode().strip(), repr(denied))

    # FTP: the same through ftplib.
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", ftp_port, timeout=60)
    ftp.login(USER, PASSWORD)
    facts = {name: f for name, f in ftp.mlsd("/", facts=["size", "type"])}
    check(results, "ftp MLSD lists the mutable files with their sizes",
          facts.get("mdmf.bin", {}).get("size") == str(len(mdmf))
          and facts.get("sdmf.txt", {}).get("size") == str(len(new_sdmf)), repr(facts))
    whole, tail = io.BytesIO(), io.BytesIO()
    ftp.retrbinary("RETR mdmf.bin", whole.write)
    ftp.retrbinary("RETR mdmf.bin", tail.write, rest=200000)
    check(results, "ftp RETR (and REST) reads an MDMF file",
          whole.getvalue() == mdmf and tail.getvalue() == mdmf[200000:], "%d, %d bytes" % (len(whole.getvalue()), len(tail.getvalue())))
    new_mdmf = b"MDMF replaced over FTP\n" * 9000
    ftp.storbinary("STOR mdmf.bin", io.BytesIO(new_mdmf))
    after = entry(dircap, "mdmf.bin")
    fetched = os.path.join(files, "tahoe-get.mdmf")
    real("get", dircap + "/mdmf.bin", fetched)
    check(results, "ftp STOR over an MDMF file publishes a new version under the same cap",
          after["rw_uri"] == caps["mdmf.bin"] and after["format"] == "MDMF" and after["size"] == len(new_mdmf)
          and open(fetched, "rb").read() == new_mdmf, repr(after))
    try:
        ftp.storbinary("STOR ro.txt", io.BytesIO(b"not allowed\n"))
        refused = "accepted"
    except ftplib.error_perm as e:
        refused = str(e)
    check(results, "ftp STOR over a read-only mutable cap is refused with 550",
          refused.startswith("550") and real("get", dircap + "/ro.txt") == ro.decode().strip(), refused)
    ftp.quit()
    return results.count(True), results.count(False)
