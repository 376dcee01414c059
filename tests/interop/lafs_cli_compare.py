"""The `lafs` CLI beside the real `tahoe` CLI (tahoe-lafs 1.20) on a tree of 1,000 files in 50 directories.

Usage: python lafs_cli_compare.py LAFS_BINARY WORKDIR   (with the Tahoe venv's python)

The nodes are tahoe_webapi.py's: three `lafs run` storage nodes, a real Tahoe client node and our
node, both 2-of-3 with the same convergence secret, so every immutable file must get the same cap
on both sides. Each `lafs` command runs against our node directory, its `tahoe` counterpart
against the real client; what is compared:

  - backup (first run, then again after changing 10 files): the counts of files uploaded/reused
    and directories created/reused; the snapshot's files have the same caps as Tahoe's;
  - cp -r to the grid: the same caps as Tahoe's snapshot, path by path; cp -r back: the same bytes;
  - manifest, manifest --storage-index: the same paths and the same file caps (directory caps
    differ: the entries' metadata holds each side's link times);
  - stats: every count, file size and the size histogram;
  - deep-check (summary), and --verify --repair --add-lease on one directory;
  - ls, ls -l, ls --json of a directory; mkdir without a path; ln, mv, rm (unlink).

Prints one PASS/FAIL line per comparison and a closing `N passed, N failed` line; exits non-zero on
any failure.
"""
import json
import os
import random
import re
import subprocess
import sys
import time

import tahoe_webapi as harness
from sample_tree import make_tree

LAFS, WORK = harness.LAFS, harness.WORK
FILES, DIRS = 1000, 50


def lafs(ours, *argv):
    p = subprocess.run([LAFS, "--node-dir", ours] + list(argv), capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def file_caps(manifest):
    """path -> cap of every file line of a manifest (`CAP PATH`); directories as 'dir'."""
    found = {}
    for line in manifest.splitlines():
        cap, _, path = line.partition(" ")
        found[path] = "dir" if cap.startswith("URI:DIR2") else cap
    return found


BACKUP_COUNTS = re.compile(r"(\d+) files uploaded \((\d+) reused\).*?(\d+) directories created \((\d+) reused\)", re.S)


def as_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return {"not JSON": text}


def backup_counts(out):
    m = BACKUP_COUNTS.search(out)
    return tuple(int(x) for x in m.groups()) if m else out


def main():
    tahoe_dir, ours = harness.setup()
    source = os.path.join(WORK, "tree")
    make_tree(source, FILES, DIRS)
    passed, failed = 0, 0
    timings = {"tahoe": 0.0, "lafs": 0.0}

    def timed(side, run, *argv):
        t0 = time.time()
        result = run(*argv)
        timings[side] += time.time() - t0
        return result

    def T(*argv):
        return timed("tahoe", harness.tahoe, tahoe_dir, *argv)

    def L(*argv):
        return timed("lafs", lafs, ours, *argv)

    def same(label, tahoe_value, lafs_value, detail=""):
        nonlocal passed, failed
        if tahoe_value == lafs_value and tahoe_value not in (None, "", {}, []):
            passed += 1
            print("PASS %s%s" % (label, detail))
        else:
            failed += 1
            print("FAIL %s\n  tahoe: %r\n  lafs:  %r" % (label, str(tahoe_value)[:2000], str(lafs_value)[:2000]))
        sys.stdout.flush()

    def ok(result):
        """stdout of a command that must succeed, else the whole result (which then differs)."""
        rc, out, err = result
        return out if rc == 0 else "exit %s\nstdout: %s\nstderr: %s" % (rc, out, err)

    def normalised(text, storage_indexes=False):
        return harness.Normaliser()(text, storage_indexes)

    same("alias", T("create-alias", "t")[0], L("alias", "create", "t")[0])
    same("mkdir without a path prints a new directory's write cap",
         normalised(ok(T("mkdir"))), normalised(ok(L("mkdir"))))

    # backup: Tahoe's first (its uploads place the shares), then ours.
    t_first = backup_counts(ok(T("backup", source, "t:backup")))
    l_first = backup_counts(ok(L("backup", source, "t:backup")))
    same("backup: files uploaded/reused, directories created/reused", t_first, l_first, " %r" % (l_first,))
    t_latest = file_caps(ok(T("manifest", "t:backup/Latest")))
    l_latest = file_caps(ok(L("manifest", "t:backup/Latest")))
    files_in = sum(1 for c in t_latest.values() if c != "dir")
    same("backup: Latest holds the same paths and file caps", t_latest, l_latest, " (%d files)" % files_in)

    rng = random.Random(10)
    for i in rng.sample(range(FILES), 10):
        with open(os.path.join(source, "d%02d" % (i % DIRS), "f%05d" % i), "ab") as f:
            f.write(b"changed\n")
    time.sleep(1.1)  # both backup databases compare mtimes in whole seconds
    t_second = backup_counts(ok(T("backup", source, "t:backup")))
    l_second = backup_counts(ok(L("backup", source, "t:backup")))
    same("backup again after changing 10 files: the same counts", t_second, l_second, " %r" % (l_second,))
    same("backup again: Latest has the same caps",
         file_caps(ok(T("manifest", "t:backup/Latest"))), file_caps(ok(L("manifest", "t:backup/Latest"))))
    same("backup: two archives on both sides",
         len(ok(T("ls", "t:backup/Archives")).split()), len(ok(L("ls", "t:backup/Archives")).split()))

    # cp -r of the changed tree: ours beside Tahoe's second snapshot (same contents, same caps).
    # As Tahoe's, a missing target is made and the named source directory is copied into it.
    rc, _, err = L("cp", "-r", source, "t:copy")
    same("cp -r to the grid exits 0", 0, rc, "" if rc == 0 else err)
    t_tree = file_caps(ok(T("manifest", "t:backup/Latest")))
    l_copy = file_caps(ok(L("manifest", "t:copy/tree")))
    same("cp -r to the grid gives Tahoe's caps", t_tree, l_copy)
    back = os.path.join(WORK, "lafs-back")
    L("cp", "-r", "t:copy/tree", back)
    same("cp -r from the grid gives the same bytes", harness.tree(source), harness.tree(os.path.join(back, "tree")))

    same("manifest: the same number of lines",
         len(ok(T("manifest", "t:backup/Latest")).splitlines()), len(ok(L("manifest", "t:copy/tree")).splitlines()))
    stats_keys = ["count-immutable-files", "count-mutable-files", "count-literal-files", "count-files",
                  "count-directories", "count-unknown", "size-immutable-files", "size-mutable-files",
                  "size-literal-files", "largest-directory-children", "largest-immutable-file",
                  "size-files-histogram"]
    t_stats = as_json(ok(T("stats", "--raw", "t:backup/Latest")))
    l_stats = as_json(ok(L("stats", "--json", "t:copy/tree")))
    same("stats: counts, sizes, histogram", {k: t_stats.get(k) for k in stats_keys},
         {k: l_stats.get(k) for k in stats_keys}, " (%s files)" % l_stats.get("count-files"))

    t_sis = set(ok(T("manifest", "--storage-index", "t:backup/Latest")).split())
    l_sis = set(ok(L("manifest", "--storage-index", "t:copy/tree")).split())
    # Directory storage indexes differ (their caps do); every CHK file's is the same.
    same("manifest --storage-index: as many storage indexes, the files' the same",
         (len(t_sis), t_stats.get("count-immutable-files")), (len(l_sis), len(t_sis & l_sis)))

    t_check = ok(T("deep-check", "t:backup/Latest")).strip().splitlines()[-1:]
    l_check = ok(L("deep-check", "t:copy/tree")).strip().splitlines()[-1:]
    same("deep-check: the summary", t_check, l_check, " %r" % (l_check,))
    t_verify = ok(T("deep-check", "--verify", "--repair", "--add-lease", "t:backup/Latest/d07"))
    l_verify = ok(L("deep-check", "--verify", "--repair", "--add-lease", "t:copy/tree/d07"))
    same("deep-check --verify --repair --add-lease: the summary",
         t_verify.strip().splitlines()[-3:], l_verify.strip().splitlines()[-3:])

    same("ls", ok(T("ls", "t:backup/Latest/d03")), ok(L("ls", "t:copy/tree/d03")))
    same("ls -l (dates aside)", normalised(ok(T("ls", "-l", "t:backup/Latest/d03"))),
         normalised(ok(L("ls", "-l", "t:copy/tree/d03"))))

    def children(listing):
        body = as_json(listing)
        return {name: (kind, {k: v for k, v in info.items() if k in ("ro_uri", "size", "format", "mutable")})
                for name, (kind, info) in body[1]["children"].items()} if isinstance(body, list) else body

    same("ls --json: the same children, caps and sizes", children(ok(T("ls", "--json", "t:backup/Latest/d03"))),
         children(ok(L("ls", "--json", "t:copy/tree/d03"))))

    T("mkdir", "t:work")
    L("mkdir", "t:work")
    for run in (T, L):
        src = "t:backup/Latest/d04" if run is T else "t:copy/tree/d04"
        run("ln", src + "/f00004", "t:work/linked")
        run("ln", src, "t:work/dir-link")
        run("cp", src + "/f00054", "t:work/copied")
        run("mv", "t:work/copied", "t:work/moved")
        run("unlink" if run is T else "rm", "t:work/linked")
    # Tahoe's d04 is a backup's immutable directory, ours a mutable one: directory caps differ.
    def entries(listing):
        return re.sub(r"URI:DIR2\S*", "<DIR>", listing)

    same("ln, cp, mv, rm: the same entries and caps", entries(ok(T("ls", "--uri", "t:work"))),
         entries(ok(L("ls", "--uri", "t:work"))))

    print("seconds: tahoe %.1f, lafs %.1f" % (timings["tahoe"], timings["lafs"]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        harness.stop_all()
    sys.exit(rc)
