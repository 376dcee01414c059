#!/usr/bin/env bash
# FTP benchmark: curl puts and gets a big file against the gateway (release build, default local
# grid 3-of-10 on disk) and, in the same run, against pyftpdlib serving a directory on the same disk.
# Prints both and the ratio, medians of RUNS runs, then the gateway's peak RSS while 1 GiB goes up.
# Then small files and round trips, ftplib against both in the same run: 200 x 4 KiB STOR in one
# session (files/s), LIST and MLSD of those 200 entries and LIST of an empty directory (ms),
# NOOP and SIZE (ms); medians of RUNS rounds.
#
#   bench/ftp.sh               # RUNS=5, BIG_MB=256, BENCH_DIR=/var/tmp (a real disk)
#   BIG=0 bench/ftp.sh         # only the small-file part
#   LAFS=target/debug/lafs ... # that binary instead of a fresh release build
#
# Each timed step starts with `sync` and an empty page cache (as root). Needs pyftpdlib
# (`python3 -m pip install pyftpdlib`).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BIG_MB=${BIG_MB:-256}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-ftp-bench.XXXXXX")
PIDS=()
cleanup() {
  # start_gateway runs in a command substitution, so its gateways are known by their pid files.
  for pid in "${PIDS[@]}" $(cat "$ROOT"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$ROOT"
}
trap cleanup EXIT

python3 -c 'import pyftpdlib' 2>/dev/null || { echo "needs pyftpdlib (python3 -m pip install pyftpdlib)" >&2; exit 1; }
if [ -z "${LAFS:-}" ]; then # LAFS=path/to/lafs benchmarks that binary instead of a release build
  cargo build --release -q
  LAFS=$PWD/target/release/lafs
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
drop_caches() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }

start_gateway() { # $1 = node dir (a fresh one gets the demo account demo/demo); prints the FTP port
  local node=$1 port
  port=$(free_port)
  "$LAFS" --node-dir "$node" run --sftp-listen 127.0.0.1:0 --ftp-listen "127.0.0.1:$port" --web-listen 127.0.0.1:0 >"$node.log" 2>&1 &
  PIDS+=($!)
  echo "$!" >"$node.pid"
  for _ in $(seq 100); do grep -q "serving until" "$node.log" 2>/dev/null && break; sleep 0.1; done
  echo "$port"
}
GW_PORT=$(start_gateway "$ROOT/node")

mkdir -p "$ROOT/pyftpdlib"
PY_PORT=$(free_port)
python3 -m pyftpdlib -i 127.0.0.1 -p "$PY_PORT" -w -u demo -P demo -d "$ROOT/pyftpdlib" -r 30000-30100 \
  >"$ROOT/pyftpdlib.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -s -u demo:demo "ftp://127.0.0.1:$PY_PORT/" >/dev/null && break; sleep 0.1; done

SMALL_FILES='
import ftplib, io, os, statistics, sys, time
port, runs = int(sys.argv[1]), int(sys.argv[2])
f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("demo", "demo")
data = os.urandom(4096)
def ms(action, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); action(); times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
rates, lists, mlsds, empties, noops, sizes = [], [], [], [], [], []
for run in range(runs):
    d = "small%d" % run
    f.mkd(d); f.mkd(d + "-empty")
    t0 = time.perf_counter()
    for i in range(200):
        f.storbinary("STOR %s/f%03d.bin" % (d, i), io.BytesIO(data))
    rates.append(200 / (time.perf_counter() - t0))
    lines = []
    lists.append(ms(lambda: f.retrlines("LIST " + d, lines.append), 10))
    assert len(lines) == 2000, len(lines)
    mlsds.append(ms(lambda: list(f.mlsd(d)), 10))
    empties.append(ms(lambda: f.retrlines("LIST %s-empty" % d, lambda l: None), 10))
    noops.append(ms(lambda: f.voidcmd("NOOP"), 50))
    f.voidcmd("TYPE I")  # retrlines left ASCII mode, where pyftpdlib refuses SIZE
    sizes.append(ms(lambda: f.size("%s/f000.bin" % d), 50))
m = statistics.median
print("%.0f %.2f %.2f %.2f %.2f %.2f" % (m(rates), m(lists), m(mlsds), m(empties), m(noops), m(sizes)))
'
small_suite() { # $1 = port; prints files/s, LIST ms, MLSD ms, empty LIST ms, NOOP ms, SIZE ms
  python3 -c "$SMALL_FILES" "$1" "$RUNS"
}
read -r GS_RATE GS_LIST GS_MLSD GS_EMPTY GS_NOOP GS_SIZE < <(small_suite "$GW_PORT")
read -r PS_RATE PS_LIST PS_MLSD PS_EMPTY PS_NOOP PS_SIZE < <(small_suite "$PY_PORT")
echo "FTP small files (ftplib, Python $(python3 -c 'import platform; print(platform.python_version())')): $RUNS rounds, medians; $(nproc) cores"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "200 x 4 KiB STOR, files/s" "$GS_RATE" "$PS_RATE"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "LIST of 200 entries, ms" "$GS_LIST" "$PS_LIST"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "MLSD of 200 entries, ms" "$GS_MLSD" "$PS_MLSD"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "LIST of an empty dir, ms" "$GS_EMPTY" "$PS_EMPTY"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "NOOP, ms" "$GS_NOOP" "$PS_NOOP"
printf "%-30s gateway %8s   pyftpdlib %8s\n" "SIZE, ms" "$GS_SIZE" "$PS_SIZE"
if [ "${BIG:-1}" = 0 ]; then exit 0; fi

head -c $((BIG_MB << 20)) /dev/urandom >"$ROOT/big.bin"

timed_curl() { # curl arguments; prints seconds
  local t0 t1
  drop_caches
  t0=$(now)
  curl -sS -u demo:demo "$@"
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

run_suite() { # $1 = label, $2 = port
  local label=$1 port=$2 up=() down=()
  for run in $(seq "$RUNS"); do
    up+=("$(timed_curl -T "$ROOT/big.bin" "ftp://127.0.0.1:$port/big$run.bin")")
    down+=("$(timed_curl -o "$ROOT/got.bin" "ftp://127.0.0.1:$port/big$run.bin")")
    cmp -s "$ROOT/big.bin" "$ROOT/got.bin" || { echo "$label: download differs" >&2; exit 1; }
    rm -f "$ROOT/got.bin"
  done
  echo "$label $(printf '%s\n' "${up[@]}" | median) $(printf '%s\n' "${down[@]}" | median) ${up[*]} / ${down[*]}"
}

# Interleaved suites would share the page cache's dirty pages; one after the other, each from a
# clean cache.
read -r _ GU GD GRAW < <(run_suite gateway "$GW_PORT")
rm -rf "$ROOT"/pyftpdlib/*
read -r _ PU PD PRAW < <(run_suite pyftpdlib "$PY_PORT")

# The gateway answers 226 only after every share is fsynced; pyftpdlib answers when its write()
# returns (page cache). Also time the reference until its file is on disk.
durable=()
for run in $(seq "$RUNS"); do
  drop_caches
  t0=$(now)
  curl -sS -u demo:demo -T "$ROOT/big.bin" "ftp://127.0.0.1:$PY_PORT/durable$run.bin"
  sync -f "$ROOT/pyftpdlib/durable$run.bin"
  t1=$(now)
  durable+=("$(echo "$t1 - $t0" | bc -l)")
done
PS=$(printf '%s\n' "${durable[@]}" | median)

rate() { echo "$BIG_MB * 1.048576 / $1" | bc -l; }
report() { # name gateway_seconds reference_seconds
  local g p
  g=$(rate "$2"); p=$(rate "$3")
  printf "%-22s gateway %8.1f MB/s   pyftpdlib %8.1f MB/s   ratio %.2f\n" "$1" "$g" "$p" "$(echo "$g / $p" | bc -l)"
}
echo "FTP benchmark (curl $(curl -V | head -1 | cut -d' ' -f2)): $RUNS runs each, medians; $(nproc) cores"
report "put ${BIG_MB} MiB" "$GU" "$PU"
report "get ${BIG_MB} MiB" "$GD" "$PD"
report "put, reference synced" "$GU" "$PS"
echo "seconds, gateway put.. / get..: $GRAW"
echo "seconds, pyftpdlib put.. / get..: $PRAW"

# Peak RSS of a fresh gateway while 1 GiB goes up.
rm -rf "$ROOT"/pyftpdlib/* "$ROOT/big.bin"
head -c $((1024 << 20)) /dev/urandom >"$ROOT/big.bin"
P2=$(start_gateway "$ROOT/node2")
t=$(timed_curl -T "$ROOT/big.bin" "ftp://127.0.0.1:$P2/g.bin")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$ROOT/node2.pid")/status")
printf "put 1 GiB: %.2f s (%.1f MB/s), gateway peak RSS %d MiB\n" "$t" "$(echo "1073.741824 / $t" | bc -l)" $((rss / 1024))
