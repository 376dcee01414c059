#!/usr/bin/env bash
# lafs beside real Tahoe-LAFS 1.20 (issue 22): the same local tree copied onto the same real grid
# (introducer, storage nodes and client started by tests/interop/tahoe_interop.sh, scenario a)
# by `tahoe cp -r` and by `lafs cp -r`, our gateway holding the Tahoe client's convergence
# secret; then manifest, stats and deep-check of both copies, compared:
#   - every immutable file has the same cap at the same path;
#   - manifest line counts, and stats counts, file sizes and histogram are the same (directory
#     sizes differ: the entries' metadata holds different times);
#   - both deep-checks find every object healthy.
#
#   FILES=1000 DIRS=50 LAFS=target/debug/lafs bench/tahoe_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-1000}
DIRS=${DIRS:-50}
LAFS=$(realpath "${LAFS:-target/debug/lafs}")
VENV=$(realpath "${TAHOE_VENV:-target/tahoe-venv}")
TAHOE=$VENV/bin/tahoe
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-tahoe-compare.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 1
  [ "${KEEP:-0}" = 1 ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l; }

KEEP_RUNNING=1 SCENARIOS=a EXTRA_MUTABLE=0 TAHOE_VENV="$VENV" \
  bash tests/interop/tahoe_interop.sh "$LAFS" "$WORK/grid" >"$WORK/interop.out" 2>&1 || true
read -r -a PIDS <<<"$(sed -n 's/^KEEP_RUNNING=1: leaving PIDs running: //p' "$WORK/interop.out")"
grep -q "PASS (setup) our gateway gw-real" "$WORK/interop.out" || { cat "$WORK/interop.out"; exit 1; }
TC=$WORK/grid/nodes/tc
GW=$WORK/grid/nodes/gw-real
tahoe() { "$TAHOE" -d "$TC" "$@"; }
lafs() { "$LAFS" --node-dir "$GW" "$@"; }

python3 tests/interop/sample_tree.py "$WORK/tree" "$FILES" "$DIRS"

tahoe create-alias tahoe >/dev/null
lafs alias create tahoe >/dev/null
t=$(now); tahoe cp -r "$WORK/tree" tahoe:tree >/dev/null; tahoe_cp=$(since "$t")
t=$(now); lafs cp -r "$WORK/tree" tahoe:tree; lafs_cp=$(since "$t")

files_by_path() { grep -v ' $' | awk '$1 !~ /^URI:DIR2/ {print $2, $1}' | sort; }
t=$(now); tahoe manifest tahoe:tree >"$WORK/tahoe.manifest"; tahoe_manifest=$(since "$t")
t=$(now); lafs manifest tahoe:tree >"$WORK/lafs.manifest"; lafs_manifest=$(since "$t")
files_by_path <"$WORK/tahoe.manifest" >"$WORK/tahoe.files"
files_by_path <"$WORK/lafs.manifest" >"$WORK/lafs.files"
t=$(now); tahoe stats --raw tahoe:tree >"$WORK/tahoe.stats"; tahoe_stats=$(since "$t")
t=$(now); lafs stats --json tahoe:tree >"$WORK/lafs.stats"; lafs_stats=$(since "$t")
t=$(now); tahoe deep-check tahoe:tree >"$WORK/tahoe.check"; tahoe_check=$(since "$t")
t=$(now); lafs deep-check tahoe:tree >"$WORK/lafs.check"; lafs_check=$(since "$t")

failed=0
set +e
verdict() { if [ "$1" = 0 ]; then echo "SAME  $2"; else echo "DIFF  $2"; failed=1; fi; }
diff "$WORK/tahoe.files" "$WORK/lafs.files" | head -5; verdict ${PIPESTATUS[0]} "immutable file caps by path ($(wc -l <"$WORK/lafs.files") files)"
[ "$(wc -l <"$WORK/tahoe.manifest")" = "$(wc -l <"$WORK/lafs.manifest")" ]; verdict $? "manifest lines ($(wc -l <"$WORK/lafs.manifest"))"
python3 - "$WORK/tahoe.stats" "$WORK/lafs.stats" <<'PY'
import json, sys
tahoe, ours = (json.load(open(p)) for p in sys.argv[1:3])
keys = ["count-immutable-files", "count-mutable-files", "count-literal-files", "count-files",
        "count-directories", "count-unknown", "size-immutable-files", "size-literal-files",
        "largest-directory-children", "largest-immutable-file", "size-files-histogram"]
bad = [k for k in keys if tahoe.get(k) != ours.get(k)]
for k in bad:
    print("  ", k, "tahoe", tahoe.get(k), "lafs", ours.get(k))
sys.exit(1 if bad else 0)
PY
verdict $? "stats counts, sizes, histogram"
tail -1 "$WORK/tahoe.check" | sed 's/^/  tahoe: /'
tail -1 "$WORK/lafs.check" | sed 's/^/  lafs:  /'
[ "$(tail -1 "$WORK/tahoe.check")" = "$(tail -1 "$WORK/lafs.check")" ]; verdict $? "deep-check summary"
printf '%-12s %10s %10s\n' "seconds" "tahoe" "lafs"
printf '%-12s %10.2f %10.2f\n' "cp -r" "$tahoe_cp" "$lafs_cp" "manifest" "$tahoe_manifest" "$lafs_manifest" \
  "stats" "$tahoe_stats" "$lafs_stats" "deep-check" "$tahoe_check" "$lafs_check"
exit $failed
