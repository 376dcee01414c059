#!/usr/bin/env bash
# lafs backup (issue 22): a FILES-file tree backed up, then again after CHANGED files change.
#
#   bench/backup.sh                       # 2,000 files of 1-32 KiB in 40 directories, 10 changed
#   FILES=2000 DIRS=40 CHANGED=10 BENCH_DIR=/var/tmp LAFS=target/debug/lafs bench/backup.sh
#
# Prints each run's time and report line, the second run's share of the first, and checks that
# both snapshots read back (Archives/<first> against a copy of the tree taken before the change,
# Latest against the tree now). The reference beside it: `cp -r` of the same tree on the same
# disk (what copying the bytes alone costs), and of the changed files only.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-2000}
DIRS=${DIRS:-40}
CHANGED=${CHANGED:-10}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-backup-bench.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
if [ -z "${LAFS:-}" ]; then
  cargo build --release -q
  LAFS=$PWD/target/release/lafs
fi
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }
lafs() { "$LAFS" --node-dir "$ROOT/node" "$@"; }

python3 - "$ROOT/tree" "$FILES" "$DIRS" <<'PY'
import os, random, sys
root, files, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(22)
for i in range(files):
    d = os.path.join(root, "d%02d" % (i % dirs))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 32768)))
PY
lafs init >/dev/null
lafs alias create tahoe >/dev/null

t=$(now); cp -r "$ROOT/tree" "$ROOT/ref-copy"; ref_full=$(since "$t")
t=$(now); first=$(lafs backup "$ROOT/tree" tahoe:backups); first_s=$(since "$t")
cp -a "$ROOT/tree" "$ROOT/before"
python3 - "$ROOT/tree" "$CHANGED" >"$ROOT/changed.txt" <<'PY'
import os, sys
root, changed = sys.argv[1], int(sys.argv[2])
names = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
for path in names[:: max(1, len(names) // changed)][:changed]:
    with open(path, "ab") as f:
        f.write(b"changed")
    print(path)
PY
t=$(now); second=$(lafs backup "$ROOT/tree" tahoe:backups); second_s=$(since "$t")
t=$(now); xargs cp -t "$ROOT/ref-copy/" <"$ROOT/changed.txt"; ref_changed=$(since "$t")

archives=$(lafs ls tahoe:backups/Archives)
oldest=$(echo "$archives" | head -1)
lafs cp -r "tahoe:backups/Archives/$oldest" "$ROOT/first-back"
lafs cp -r tahoe:backups/Latest "$ROOT/latest-back"
diff -r "$ROOT/before" "$ROOT/first-back/$oldest" && diff -r "$ROOT/tree" "$ROOT/latest-back/Latest" && readback=ok || readback=FAILED

printf 'tree: %d files in %d directories (%s MB), %d changed\n' "$FILES" "$DIRS" \
  "$(du -sm "$ROOT/tree" | cut -f1)" "$CHANGED"
printf 'first backup:  %6.2f s  %s\n' "$first_s" "$(echo "$first" | head -1)"
printf 'second backup: %6.2f s  %s\n' "$second_s" "$(echo "$second" | head -1)"
printf 'second/first:  %6.1f %%\n' "$(echo "100 * $second_s / $first_s" | bc -l)"
printf 'reference cp -r of the tree: %.2f s; of the changed files: %.2f s\n' "$ref_full" "$ref_changed"
printf 'both snapshots read back: %s\n' "$readback"
[ "$readback" = ok ]
