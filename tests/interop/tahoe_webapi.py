"""The real `tahoe` CLI (tahoe-lafs 1.20) against `lafs run`'s web API, beside a real Tahoe node.

Usage: python tahoe_webapi.py LAFS_BINARY WORKDIR [serve]   (with the Tahoe venv's python)

With `serve` it only starts the nodes, prints `tahoe NODEDIR PID` and `lafs NODEDIR PID` (the
client nodes), and keeps them running until its standard input closes (bench/web.sh).

Both nodes use the same storage servers (three `lafs run` storage nodes, over Tahoe's HTTP
storage protocol), the same encoding (2-of-3, happy 3) and the same convergence secret, so
immutable caps must come out identical. Every CLI command runs against the real Tahoe client
node and against our gateway; their outputs are compared after normalising only what must
differ: caps and storage indexes of mutable files and directories (random keys), dates, and
the sizes of directories (their bodies hold those random caps and times).

The CLI runs in this one process (its commands are plain blocking functions), which saves a
Python start per command. Prints one PASS/FAIL line per command and a closing
`N passed, N failed` line; exits non-zero on any failure.
"""
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

LAFS, WORK = sys.argv[1], os.path.abspath(sys.argv[2])
K, HAPPY, N = 2, 3, 3
PROCS = []
# Our gateway's SFTP and FTP ports (mutable_frontends.py drives them).
FRONTENDS = {}


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(cmd, log):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for p in PROCS:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit("timed out waiting for " + what)


def setup():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    # Our storage nodes: quick to start, and a real Tahoe client stores on them (issue 4 (c)).
    storage_ports = free_ports(N)
    announcements = []
    for i, port in enumerate(storage_ports):
        d = os.path.join(WORK, "s%d" % i)
        subprocess.run([LAFS, "init", d], check=True, capture_output=True)
        with open(os.path.join(d, "lafs.toml"), "w") as f:
            f.write('[storage]\npath = "storage"\nservers = 1\n[frontends]\nsftp = false\nftp = false\n'
                    '[web]\nenabled = false\n[storage_server]\nenabled = true\nlisten = "127.0.0.1:%d"\n'
                    'nickname = "s%d"\n' % (port, i))
        start([LAFS, "--node-dir", d, "run"], os.path.join(WORK, "s%d.log" % i))
        announcements.append(os.path.join(d, "private", "storage-announcement.yaml"))
    tahoe_web, our_web, sftp_port, ftp_port = free_ports(4)
    FRONTENDS.update(sftp=sftp_port, ftp=ftp_port)
    tahoe_dir = os.path.join(WORK, "tahoe")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "tahoe"), "create-node", "--nickname=tc",
                    "--no-storage", "--listen=none", "--webport=tcp:%d:interface=127.0.0.1" % tahoe_web,
                    "--shares-needed=%d" % K, "--shares-happy=%d" % HAPPY, "--shares-total=%d" % N, tahoe_dir],
                   check=True, capture_output=True)
    ours = os.path.join(WORK, "ours")
    subprocess.run([LAFS, "init", ours], check=True, capture_output=True)
    with open(os.path.join(ours, "lafs.toml"), "w") as f:
        f.write('[grid]\nneeded = %d\nhappy = %d\ntotal = %d\nservers_yaml = "private/servers.yaml"\n'
                '[frontends]\nsftp_listen = "127.0.0.1:%d"\nftp_listen = "127.0.0.1:%d"\n'
                'ftp_passive_ports = "40000-60000"\n[web]\nlisten = "127.0.0.1:%d"\n'
                % (K, HAPPY, N, sftp_port, ftp_port, our_web))
    # Tahoe makes its secret at first start: give it ours instead.
    shutil.copy(os.path.join(ours, "private", "convergence"), os.path.join(tahoe_dir, "private", "convergence"))
    wait_for("storage announcements", lambda: all(os.path.exists(a) for a in announcements))
    storage = {}
    for a in announcements:
        with open(a) as f:
            storage.update(yaml.safe_load(f)["storage"])
    for d in (tahoe_dir, ours):
        with open(os.path.join(d, "private", "servers.yaml"), "w") as f:
            yaml.safe_dump({"storage": storage}, f)
    start([os.path.join(os.path.dirname(sys.executable), "tahoe"), "run", "--allow-stdin-close", tahoe_dir],
          os.path.join(WORK, "tahoe.log"))
    start([LAFS, "--node-dir", ours, "run"], os.path.join(WORK, "ours.log"))

    def connected():
        with urllib.request.urlopen("http://127.0.0.1:%d/?t=json" % tahoe_web, timeout=5) as r:
            servers = json.load(r)["servers"]
        return sum(1 for s in servers if s["connection_status"].startswith("connected")) >= N

    wait_for("the Tahoe client to see the storage servers", connected)
    wait_for("our node.url", lambda: urllib.request.urlopen(open(os.path.join(ours, "node.url")).read().strip(),
                                                            timeout=5).status == 200)
    return tahoe_dir, ours


def tahoe(nodedir, *argv):
    """Runs one `tahoe` command in this process; returns (rc, stdout, stderr)."""
    from allmydata.scripts import cli, runner
    # `manifest` writes to stdout.buffer: text streams over bytes, as a terminal's are.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    config = runner.Options()
    try:
        runner.parse_or_exit(config, ["tahoe", "-d", nodedir] + list(argv), out, err)
        so = config.subOptions
        so.stdout, so.stderr, so.stdin = out, err, io.StringIO("")
        rc = cli.dispatch[config.subCommand](so)
    except SystemExit as e:
        rc = e.code
    except Exception as e:  # a CLI crash is an answer too: compare it
        err.write("%s: %s" % (type(e).__name__, e))
        rc = "crash"
    return rc, out.buffer.getvalue().decode("utf-8", "replace"), err.buffer.getvalue().decode("utf-8", "replace")


MUTABLE_CAP = re.compile(r"URI:(?:DIR2(?:-MDMF|-CHK|-LIT)?(?:-RO|-Verifier)?|SSK(?:-RO|-Verifier)?|MDMF(?:-RO|-Verifier)?)"
                         r":[a-z2-7:]*[a-z2-7]")
STORAGE_INDEX = re.compile(r"\b[a-z2-7]{26}\b")
DATES = [
    (re.compile(r"\b\d{4}-\d\d-\d\d_\d\d:\d\d:\d\dZ\b"), "<ARCHIVE>"),
    (re.compile(r"\b[A-Z][a-z]{2} [ \d]\d +(?:\d\d:\d\d|\d{4})\b"), "<DATE>"),
    (re.compile(r"\b1[78]\d{8}(?:\.\d+)?\b"), "<TIME>"),
    (re.compile(r"\d+h \d+m \d+s elapsed|elapsed time: \d+:\d\d:\d\d"), "<ELAPSED>"),
    (re.compile(r"(size-directories|largest-directory)(\"?:\s*)\d+[^\n]*"), r"\1\2<N>"),
    (re.compile(r"(\s)[\d,]+(\s+size-directories)"), r"\1<N>\2"),
]


class Normaliser:
    """Names each mutable cap and storage index by its first appearance (per node)."""

    def __init__(self):
        self.names = {}

    def name(self, kind, value):
        key = (kind, value)
        if key not in self.names:
            self.names[key] = "<%s%d>" % (kind, len([k for k in self.names if k[0] == kind]))
        return self.names[key]

    def __call__(self, text, storage_indexes):
        text = MUTABLE_CAP.sub(lambda m: self.name(m.group(0).split(":")[1], m.group(0)), text)
        if storage_indexes:
            text = STORAGE_INDEX.sub(lambda m: self.name("SI", m.group(0)), text)
        for pattern, replacement in DATES:
            text = pattern.sub(replacement, text)
        return text


def tree(path):
    """Every file under `path` (or the file `path`) with its contents, for comparing downloads."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": f.read()}
    found = {}
    for base, _, files in os.walk(path):
        for name in files:
            full = os.path.join(base, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def main():
    tahoe_dir, ours = setup()
    files = os.path.join(WORK, "files")
    os.makedirs(os.path.join(files, "tree", "docs"))
    small = os.path.join(files, "small.txt")
    medium = os.path.join(files, "medium.bin")
    with open(small, "w") as f:
        f.write("forty bytes of text, stored in the cap\n")
    with open(medium, "wb") as f:
        f.write(os.urandom(1) * 0 + bytes(range(256)) * 1200)
    with open(os.path.join(files, "mut.txt"), "w") as f:
        f.write("mutable contents, first version\n")
    with open(os.path.join(files, "mut2.txt"), "w") as f:
        f.write("mutable contents, second version, longer\n")
    with open(os.path.join(files, "mdmf.bin"), "wb") as f:
        f.write(b"M" * 70000)
    for rel, body in [("tree/a.txt", b"a" * 100), ("tree/docs/b.txt", b"b" * 30), ("tree/docs/c.bin", b"c" * 5000)]:
        with open(os.path.join(files, rel), "wb") as f:
            f.write(body)
    sides = {"tahoe": (tahoe_dir, Normaliser()), "lafs": (ours, Normaliser())}
    passed, failed = 0, 0

    def both(label, *argv, storage_indexes=False, before=None):
        nonlocal passed, failed
        results = {}
        for side, (nodedir, normalise) in sides.items():
            if before:
                before(side)
            args = [a.replace("{SIDE}", side) for a in argv]
            rc, out, err = tahoe(nodedir, *args)
            mine = os.path.join(WORK, side + "-")
            out, err = out.replace(mine, "<WORK>/"), err.replace(mine, "<WORK>/")
            results[side] = (rc, normalise(out, storage_indexes), normalise(err, storage_indexes))
        if results["tahoe"] == results["lafs"]:
            passed += 1
            print("PASS %s" % label)
        else:
            failed += 1
            print("FAIL %s: tahoe %s" % (label, " ".join(argv)))
            for side in sides:
                rc, out, err = results[side]
                print("  --- %s: rc=%s\n  stdout: %r\n  stderr: %r" % (side, rc, out, err))
        sys.stdout.flush()
        return results

    def same_tree(label, a, b):
        nonlocal passed, failed
        if tree(a) == tree(b) and tree(a):
            passed += 1
            print("PASS %s" % label)
        else:
            failed += 1
            print("FAIL %s: %s differs from %s" % (label, a, b))

    both("create-alias", "create-alias", "work")
    both("mkdir", "mkdir", "work:sub")
    both("mkdir with parents", "mkdir", "work:a/b/c")
    both("mkdir where a file is in the way", "mkdir", "work:a/b/c/d/e")
    both("put LIT", "put", small, "work:small.txt")
    both("put CHK", "put", medium, "work:medium.bin")
    both("put unlinked (same immutable cap)", "put", medium)
    both("put --mutable", "put", "--mutable", os.path.join(files, "mut.txt"), "work:mut.txt")
    both("put over a mutable file (in place)", "put", os.path.join(files, "mut2.txt"), "work:mut.txt")
    both("put --format=MDMF", "put", "--format=MDMF", os.path.join(files, "mdmf.bin"), "work:mdmf.bin")
    both("put onto a directory", "put", small, "work:sub")
    # PUT ?offset= (no CLI command sends it): the same requests to both web APIs, then the
    # file's bytes compared. An offset past the end is refused by both, Tahoe with a 500 (a
    # failed assertion), ours with a 400.
    with open(os.path.join(files, "offset.bin"), "wb") as f:
        f.write(b"A" * 1000)
    both("put --format=MDMF (for offsets)", "put", "--format=MDMF", os.path.join(files, "offset.bin"), "work:offset.bin")

    def web_put(side, path, body):
        nodedir = sides[side][0]
        url = open(os.path.join(nodedir, "node.url")).read().strip().rstrip("/")
        with open(os.path.join(nodedir, "private", "aliases")) as f:
            work = [line.split(":", 1)[1].strip() for line in f if line.startswith("work:")][0]
        request = urllib.request.Request("%s/uri/%s/%s" % (url, work, path), data=body, method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def offset_put(label, path, body, refused=False, read_back="work:offset.bin"):
        nonlocal passed, failed
        codes = {side: web_put(side, path, body) for side in sides}
        contents = {side: tahoe(sides[side][0], "get", read_back)[1] for side in sides}
        agreed = (all(c >= 400 for c in codes.values()) if refused else codes["tahoe"] == codes["lafs"] == 200)
        if agreed and contents["tahoe"] == contents["lafs"]:
            passed += 1
            print("PASS %s (tahoe %d, lafs %d)" % (label, codes["tahoe"], codes["lafs"]))
        else:
            failed += 1
            print("FAIL %s: status %r, same contents %s" % (label, codes, contents["tahoe"] == contents["lafs"]))
        sys.stdout.flush()

    offset_put("PUT offset= inside an MDMF file", "offset.bin?offset=10", b"XYZ")
    offset_put("PUT offset= at its end (append)", "offset.bin?offset=1000", b"END")
    offset_put("PUT offset= across its end", "offset.bin?offset=998", b"0123456789")
    offset_put("PUT offset= negative", "offset.bin?offset=-1", b"no", refused=True)
    offset_put("PUT offset= past the end", "offset.bin?offset=5000", b"no", refused=True)
    offset_put("PUT offset= to an immutable file", "medium.bin?offset=1", b"no", refused=True, read_back="work:medium.bin")

    def put_over_a_read_only_mutable_entry():
        nonlocal passed, failed
        codes, contents = {}, {}
        for side, (nodedir, _) in sides.items():
            ro_cap = json.loads(tahoe(nodedir, "ls", "--json", "work:mut.txt")[1])[1]["ro_uri"]
            tahoe(nodedir, "ln", ro_cap, "work:ro-mut.txt")
            codes[side] = web_put(side, "ro-mut.txt", b"replaced?")
            contents[side] = tahoe(nodedir, "get", "work:ro-mut.txt")[1]
        label = "PUT over a read-only mutable entry"
        if codes["tahoe"] == codes["lafs"] == 400 and contents["tahoe"] == contents["lafs"] != "replaced?":
            passed += 1
            print("PASS %s (tahoe %d, lafs %d)" % (label, codes["tahoe"], codes["lafs"]))
        else:
            failed += 1
            print("FAIL %s: status %r, contents %r" % (label, codes, contents))
        sys.stdout.flush()

    put_over_a_read_only_mutable_entry()
    both("get", "get", "work:medium.bin", os.path.join(WORK, "{SIDE}-medium.bin"))
    same_tree("get gives the same bytes", os.path.join(WORK, "tahoe-medium.bin"), os.path.join(WORK, "lafs-medium.bin"))
    both("get a mutable file to stdout", "get", "work:mut.txt")
    both("get MDMF", "get", "work:mdmf.bin", os.path.join(WORK, "{SIDE}-mdmf.bin"))
    both("get a missing file", "get", "work:nope.txt")
    both("ls", "ls", "work:")
    both("ls -l", "ls", "-l", "work:")
    both("ls --json", "ls", "--json", "work:")
    both("ls --json of a file", "ls", "--json", "work:medium.bin")
    both("cp -r to the grid", "cp", "-r", os.path.join(files, "tree"), "work:")
    both("cp -r from the grid", "cp", "-r", "work:tree", os.path.join(WORK, "{SIDE}-dl"))
    same_tree("cp -r downloads the same tree", os.path.join(WORK, "tahoe-dl"), os.path.join(WORK, "lafs-dl"))
    both("mv", "mv", "work:small.txt", "work:sub/small2.txt")
    both("ln", "ln", "work:medium.bin", "work:sub/medium-link.bin")
    both("mv onto a directory", "mv", "work:mdmf.bin", "work:a")
    both("unlink", "unlink", "work:sub/medium-link.bin")
    both("ls -l after mv/ln/unlink", "ls", "-l", "work:sub")
    both("ls --json of a subdirectory", "ls", "--json", "work:tree/docs")
    both("check", "check", "work:medium.bin", storage_indexes=True)
    both("check --verify --repair", "check", "--verify", "--repair", "work:medium.bin", storage_indexes=True)
    both("check a mutable file", "check", "work:mut.txt", storage_indexes=True)
    both("check --raw (LIT)", "check", "--raw", "work:sub/small2.txt")
    backup_src = os.path.join(files, "tree")
    both("backup", "backup", "-v", backup_src, "work:backups")

    def change_a_file(side):
        if side == "tahoe":
            time.sleep(1.1)  # the backupdb compares mtimes in seconds
            with open(os.path.join(backup_src, "docs", "b.txt"), "ab") as f:
                f.write(b"changed\n")

    both("backup again (only the changed file)", "backup", "-v", backup_src, "work:backups", before=change_a_file)
    both("ls the backups", "ls", "work:backups/Archives")
    both("ls -l Latest", "ls", "-l", "work:backups/Latest/docs")
    both("deep-check", "deep-check", "-v", "work:", storage_indexes=True)
    both("manifest", "manifest", "work:tree")
    both("manifest --storage-index", "manifest", "--storage-index", "work:tree", storage_indexes=True)
    both("stats", "stats", "work:tree")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mutable_frontends
    more = mutable_frontends.run(tahoe, tahoe_dir, ours, LAFS, WORK, FRONTENDS["sftp"], FRONTENDS["ftp"])
    passed, failed = passed + more[0], failed + more[1]
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def serve():
    tahoe_dir, ours = setup()
    print("tahoe %s %d" % (tahoe_dir, PROCS[N].pid))
    print("lafs %s %d" % (ours, PROCS[N + 1].pid))
    sys.stdout.flush()
    sys.stdin.read()
    return 0


if __name__ == "__main__":
    try:
        rc = serve() if sys.argv[3:] == ["serve"] else main()
    finally:
        stop_all()
    sys.exit(rc)
