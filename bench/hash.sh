#!/usr/bin/env bash
# Hash latency (issue 21): the SHA-256 of a 100 MiB file over FTP `HASH`/`XSHA256`, SFTP
# `check-file` (paramiko) and SSH exec `sha256sum`, against the gateway (release build, default
# local grid), beside what re-reading costs: coreutils `sha256sum` of the same file on local disk
# (the least a server that hashes on demand, as SFTPGo does, must spend). Medians of RUNS asks.
# The digest was recorded while the file was uploaded, so the gateway answers without a read.
#
#   bench/hash.sh                 # RUNS=20, SIZE_MB=100, BENCH_DIR=/var/tmp
#   LAFS=target/debug/lafs ...    # that binary instead of a fresh release build
#   PYTHON=target/test-venv/bin/python  # a python with paramiko for the check-file figure
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
SIZE_MB=${SIZE_MB:-100}
PYTHON=${PYTHON:-target/test-venv/bin/python}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-hash-bench.XXXXXX")
GW=""
cleanup() { [ -n "$GW" ] && kill "$GW" 2>/dev/null; sleep 0.3; rm -rf "$ROOT"; }
trap cleanup EXIT
if [ -z "${LAFS:-}" ]; then
  cargo build --release -q
  LAFS=$PWD/target/release/lafs
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

SFTP_PORT=$(free_port); FTP_PORT=$(free_port)
"$LAFS" --node-dir "$ROOT/node" run --sftp-listen "127.0.0.1:$SFTP_PORT" --ftp-listen "127.0.0.1:$FTP_PORT" --web-listen 127.0.0.1:0 \
  >"$ROOT/node.log" 2>&1 &
GW=$!
for _ in $(seq 100); do grep -q "serving until" "$ROOT/node.log" 2>/dev/null && break; sleep 0.1; done
head -c $((SIZE_MB << 20)) /dev/urandom >"$ROOT/big.bin"
curl -sS -T "$ROOT/big.bin" -u demo:demo "ftp://127.0.0.1:$FTP_PORT/big.bin"
WANT=$(sha256sum "$ROOT/big.bin" | cut -d' ' -f1)

echo "== ${SIZE_MB} MiB file, medians of $RUNS"
python3 - "$FTP_PORT" "$RUNS" "$WANT" <<'PY'
import ftplib, statistics, sys, time
port, runs, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("demo", "demo")
for cmd in ("HASH big.bin", "XSHA256 big.bin"):
    times = []
    for _ in range(runs):
        t = time.perf_counter(); reply = f.sendcmd(cmd); times.append(time.perf_counter() - t)
        assert want in reply, reply
    print(f"FTP {cmd.split()[0]:8s} {statistics.median(times) * 1000:8.2f} ms")
PY
if "$PYTHON" -c 'import paramiko' 2>/dev/null; then
  "$PYTHON" - "$SFTP_PORT" "$RUNS" "$WANT" <<'PY'
import paramiko, statistics, sys, time
port, runs, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = paramiko.Transport(("127.0.0.1", port)); t.connect(username="demo", password="demo")
s = paramiko.SFTPClient.from_transport(t)
times = []
with s.open("big.bin") as f:
    for _ in range(runs):
        start = time.perf_counter(); digest = f.check("sha256"); times.append(time.perf_counter() - start)
        assert digest.hex() == want
print(f"SFTP check-file  {statistics.median(times) * 1000:8.2f} ms")
PY
else
  echo "SFTP check-file  (skipped: no paramiko in $PYTHON)"
fi
if command -v sshpass >/dev/null; then
  for _ in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    out=$(sshpass -p demo ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
      -o PubkeyAuthentication=no -p "$SFTP_PORT" demo@127.0.0.1 sha256sum big.bin)
    e=$(date +%s.%N)
    [ "${out%% *}" = "$WANT" ] || { echo "wrong digest: $out" >&2; exit 1; }
    echo "$e - $s" | bc
  done | median | awk '{printf "SSH exec sha256sum %8.2f ms (a whole ssh connection and login included)\n", $1 * 1000}'
fi
for _ in $(seq 5); do
  s=$(date +%s.%N); sha256sum "$ROOT/big.bin" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc
done | median | awk '{printf "reference: local sha256sum (page cache warm) %8.2f ms\n", $1 * 1000}'
