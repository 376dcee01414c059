#!/usr/bin/env bash
# Put and get SIZE_MIB through the web API: curl against `lafs run`'s WAPI beside `tahoe put` /
# `tahoe get` through a real Tahoe 1.20 client node, both on the same three storage nodes (ours,
# over Tahoe's HTTP storage protocol; 2-of-3, happy 3). Prints each run's seconds, the medians
# as MB/s (10^6 bytes per second), and the peak RSS (VmHWM) of our gateway and of the Tahoe
# client node after all runs.
#
#   bench/web.sh [SIZE_MIB]        default 256
#   RUNS=3 bench/web.sh            timed rounds (default 3); each put is a fresh random file
#   BENCH_DIR=/var/tmp bench/web.sh    where the nodes live (default /var/tmp: on disk)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${RUNS:-3}

cargo build --release --quiet
lafs=$PWD/target/release/lafs
venv=${TAHOE_VENV:-$PWD/target/tahoe-venv}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-webbench.XXXXXX")
coproc NODES { "$venv/bin/python" tests/interop/tahoe_webapi.py "$lafs" "$work/nodes" serve 2>"$work/setup.log"; }
cleanup() {
  exec {NODES[1]}>&- 2>/dev/null || true
  wait "$NODES_PID" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
read -r _ tahoe_dir tahoe_pid <&"${NODES[0]}"
read -r _ lafs_dir lafs_pid <&"${NODES[0]}"
url=$(tr -d '\n' <"$lafs_dir/node.url")
echo "nodes in $work: tahoe client pid $tahoe_pid, lafs gateway pid $lafs_pid ($url)"

results=$work/results
: >"$results"
timed() { # LABEL COMMAND...
  local label=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$label $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')" | tee -a "$results"
}
for run in $(seq "$runs"); do
  head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
  timed lafs-put curl -sS --fail -T "$work/file" "${url}uri"
  cap=$(cat "$work/out")
  timed lafs-get curl -sS --fail -o "$work/got" "${url}uri/$cap"
  cmp "$work/file" "$work/got"
  head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
  timed tahoe-put "$venv/bin/tahoe" -d "$tahoe_dir" put "$work/file"
  cap=$(grep -o 'URI:[^ ]*' "$work/out" | tail -n 1)
  timed tahoe-get "$venv/bin/tahoe" -d "$tahoe_dir" get "$cap" "$work/got"
  cmp "$work/file" "$work/got"
  rm -f "$work/got"
done
echo "medians over $runs runs of $size_mib MiB:"
for label in lafs-put lafs-get tahoe-put tahoe-get; do
  awk -v l="$label" -v mb="$((size_mib << 20))" '$1 == l { print $2 }' "$results" | sort -n |
    awk -v l="$label" -v mb="$((size_mib << 20))" '{ a[NR] = $1 } END { m = a[int((NR + 1) / 2)]; printf "  %-9s %7.2f s  %7.1f MB/s\n", l, m, mb / m / 1e6 }'
done
echo "peak RSS: lafs gateway $(awk '/VmHWM/ { print $2, $3 }' "/proc/$lafs_pid/status"), tahoe client node $(awk '/VmHWM/ { print $2, $3 }' "/proc/$tahoe_pid/status")"
