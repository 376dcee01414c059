#!/usr/bin/env bash
# Drop-upload benchmark: 1,000 files of 4 KiB dropped into a watched folder at once (moved in from
# a staging directory on the same file system); the time until the journal has every one done.
# Release build, default local grid 3-of-10 on disk.
#
#   bench/drop_upload.sh       # FILES=1000 SIZE=4096 RUNS=3 BENCH_DIR=/var/tmp
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-1000}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
cargo build --release -q
LAFS=$PWD/target/release/lafs
now() { date +%s.%N; }
done_count() { "$LAFS" --node-dir "$1" drop-upload status | head -1 | sed -E 's/.* ([0-9]+) done.*/\1/'; }

for run in $(seq "$RUNS"); do
  ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-drop-bench.XXXXXX")
  "$LAFS" --node-dir "$ROOT/node" init >/dev/null
  "$LAFS" --node-dir "$ROOT/node" alias create drop >/dev/null
  cap=$(sed -n 's/^drop: //p' "$ROOT/node/private/aliases")
  printf '\n[[drop_upload]]\nname = "bench"\nlocal_dir = "%s"\ntarget = "%s"\n' "$ROOT/in" "$cap" >>"$ROOT/node/lafs.toml"
  mkdir -p "$ROOT/in" "$ROOT/staging"
  for i in $(seq -w 1 "$FILES"); do head -c "$SIZE" /dev/urandom >"$ROOT/staging/f$i"; done
  "$LAFS" --node-dir "$ROOT/node" run --sftp-listen 127.0.0.1:0 --ftp-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 >"$ROOT/node.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "serving until" "$ROOT/node.log" && break; sleep 0.1; done
  sync
  t0=$(now)
  mv "$ROOT"/staging/* "$ROOT/in/"
  while [ "$(grep -c ' uploaded ' "$ROOT/node.log")" -lt "$FILES" ]; do sleep 0.05; done
  t1=$(now)
  [ "$(done_count "$ROOT/node")" = "$FILES" ] || { echo "journal disagrees" >&2; exit 1; }
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  listed=$("$LAFS" --node-dir "$ROOT/node" ls drop: | wc -l)
  secs=$(echo "$t1 - $t0" | bc -l)
  printf "run %d: %d files of %d B all uploaded in %.2f s (%.0f files/s), %d listed, peak RSS %d MiB\n" \
    "$run" "$FILES" "$SIZE" "$secs" "$(echo "$FILES / $secs" | bc -l)" "$listed" $((rss / 1024))
  rm -rf "$ROOT"
done
