#!/usr/bin/env bash
# Puts and gets files on the default local grid (3-of-10, 10 on-disk servers) with the release
# `lafs` binary; prints MB/s (10^6 bytes/s of file data) and peak RSS for each.
#
#   bench/grid.sh [SIZE_MIB ...]      default: 64 1024
#   BENCH_DIR=/path bench/grid.sh     where the node and its grid live (default: a temp dir under ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(64 1024)

cargo build --release --quiet
lafs=target/release/lafs
dir=$(mktemp -d "${BENCH_DIR:-$PWD/target}/lafs-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
node="$dir/node"
"$lafs" init "$node" >/dev/null

measure() { # label bytes command...: prints MB/s and peak RSS
  local label=$1 bytes=$2; shift 2
  local start end rss
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$dir/rss" "$@"
  end=$(date +%s.%N)
  rss=$(cat "$dir/rss")
  awk -v l="$label" -v b="$bytes" -v s="$start" -v e="$end" -v r="$rss" \
    'BEGIN { t = e - s; printf "%-14s %8.2f s %9.1f MB/s   peak RSS %6.1f MiB\n", l, t, b / t / 1e6, r / 1024 }'
}

echo "lafs-gateway grid benchmark: $(nproc) cores, node in $dir"
for mib in "${sizes[@]}"; do
  input="$dir/in-$mib"
  head -c "$((mib * 1024 * 1024))" /dev/urandom >"$input"
  bytes=$((mib * 1024 * 1024))
  sync
  measure "put ${mib} MiB" "$bytes" sh -c "'$lafs' --node-dir '$node' put '$input' >'$dir/cap'"
  # Drop the page cache when allowed, so get reads shares from disk as after a restart.
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  measure "get ${mib} MiB" "$bytes" "$lafs" --node-dir "$node" get "$(cat "$dir/cap")" "$dir/out-$mib"
  cmp -s "$input" "$dir/out-$mib" || { echo "get returned different bytes for ${mib} MiB" >&2; exit 1; }
  rm -f "$input" "$dir/out-$mib"
  rm -rf "$node/storage"
done
