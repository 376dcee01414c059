#!/usr/bin/env bash
# Puts and gets files on the default local grid (3-of-10, 10 on-disk servers) with the release
# `lafs` binary; prints MB/s (10^6 bytes/s of file data) and peak RSS of every run, then the
# median of each workload. Each size gets one untimed warm-up put, then RUNS timed rounds of
# a put (to an empty grid) and a get (with the page cache dropped first, when allowed).
#
#   bench/grid.sh [SIZE_MIB ...]      default: 64 1024
#   RUNS=5 bench/grid.sh              timed rounds per size (default 3)
#   BENCH_DIR=/path bench/grid.sh     where the node and its grid live (default: a temp dir under ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64 1024)
runs=${RUNS:-3}

cargo build --release --quiet
lafs=target/release/lafs
dir=$(mktemp -d "${BENCH_DIR:-$PWD/target}/lafs-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
node="$dir/node"
"$lafs" init "$node" >/dev/null
results="$dir/results"

measure() { # label bytes command...: prints and records MB/s and peak RSS
  local label=$1 bytes=$2; shift 2
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$dir/rss" "$@"
  end=$(date +%s.%N)
  awk -v l="$label" -v b="$bytes" -v s="$start" -v e="$end" -v r="$(cat "$dir/rss")" \
    'BEGIN { t = e - s; printf "%-14s %8.2f s %9.1f MB/s   peak RSS %6.1f MiB\n", l, t, b / t / 1e6, r / 1024 }' |
    tee -a "$results"
}

echo "lafs-gateway grid benchmark: $(nproc) cores, node in $dir, $runs timed runs per size"
for mib in "${sizes[@]}"; do
  input="$dir/in-$mib"
  head -c "$((mib * 1024 * 1024))" /dev/urandom >"$input"
  bytes=$((mib * 1024 * 1024))
  sync
  # The first large write after creating the input pays for the kernel's page-cache reclaim,
  # which varies wildly on a VM; that put is not timed.
  "$lafs" --node-dir "$node" put "$input" >/dev/null
  for _ in $(seq "$runs"); do
    rm -rf "$node/storage"
    sync
    measure "put ${mib} MiB" "$bytes" sh -c "'$lafs' --node-dir '$node' put '$input' >'$dir/cap'"
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    measure "get ${mib} MiB" "$bytes" "$lafs" --node-dir "$node" get "$(cat "$dir/cap")" "$dir/out-$mib"
    cmp -s "$input" "$dir/out-$mib" || { echo "get returned different bytes for ${mib} MiB" >&2; exit 1; }
    rm -f "$dir/out-$mib"
  done
  rm -f "$input"
  rm -rf "$node/storage"
done
echo "medians:"
cut -c1-14 "$results" | sort -u | while read -r label; do
  grep -F "$label " "$results" | awk '{ print $6 }' | sort -n |
    awk -v l="$label" '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
                                            printf "%-14s %9.1f MB/s   (%d runs)\n", l, m, NR }'
done
