#!/usr/bin/env bash
# Soak (issue 16): CLIENTS clients, half over SFTP (paramiko, key login) and half over FTP
# (ftplib), against one `lafs run` (release build, default local grid 3-of-10 on disk) for MINUTES
# minutes of puts (4 KiB to 3 MiB), SHA-256-checked gets, listings, renames, uploads cut mid-way
# (the connection dropped with half the file sent) and wrong logins (each client from its own
# loopback address, at most 3 a minute, under the throttle's 10). One line a minute per
# protocol: the gateway's RSS and peak, operations, errors and MB/s; the RSS must stay flat
# after warm-up.
#
#   bench/soak.sh                         # MINUTES=30 CLIENTS=50 THINK=0.5 (mean pause, s)
#   MINUTES=5 bench/soak.sh               # a short one
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
CLIENTS=${CLIENTS:-50}
THINK=${THINK:-0.5}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-soak.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

python3 -c 'import paramiko' 2>/dev/null || { echo "needs paramiko" >&2; exit 1; }
# LAFS=/path/to/lafs runs another build (e.g. an older one, for comparison) instead.
if [ -z "${LAFS:-}" ]; then cargo build --release -q; LAFS=$PWD/target/release/lafs; fi
CLIENT=$PWD/bench/memory_clients.py
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
"$LAFS" --node-dir "$ROOT/node" init >/dev/null
"$LAFS" --node-dir "$ROOT/node" account add bench --key "$ROOT/key.pub" >/dev/null
echo demo | "$LAFS" --node-dir "$ROOT/node" account add demo --password >/dev/null
SFTP_PORT=$(free_port)
FTP_PORT=$(free_port)
if [ -n "${MEMORY_BUDGET_MIB:-}" ]; then
  sed -i "s/^memory_budget_mib = .*/memory_budget_mib = $MEMORY_BUDGET_MIB/" "$ROOT/node/lafs.toml"
fi
LAFS_LOG=${LAFS_LOG:-warn} "$LAFS" --node-dir "$ROOT/node" run --sftp-listen "127.0.0.1:$SFTP_PORT" \
  --ftp-listen "127.0.0.1:$FTP_PORT" --web-listen 127.0.0.1:0 >"$ROOT/node.log" 2>&1 &
GW=$!
PIDS+=("$GW")
for _ in $(seq 100); do grep -q "serving until" "$ROOT/node.log" 2>/dev/null && break; sleep 0.1; done
# The grid never collects the shares of replaced files: delete big shares older than three
# minutes (the clients read back only files from the last minute), or the disk fills up.
( while kill -0 "$GW" 2>/dev/null; do
    find "$ROOT/node/storage" -type f -size +256k -mmin +3 -delete 2>/dev/null
    sleep 30
  done ) &
PIDS+=($!)
sleep 1
echo "soak: $CLIENTS clients ($((CLIENTS / 2)) SFTP, $((CLIENTS - CLIENTS / 2)) FTP), $MINUTES min; idle RSS $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$GW/status") MiB"
python3 "$CLIENT" soak sftp "$GW" "$SFTP_PORT" --key "$ROOT/key" --clients $((CLIENTS / 2)) --minutes "$MINUTES" \
  --think "$THINK" --subnet 1 &
SFTP_CLIENTS=$!
PIDS+=("$SFTP_CLIENTS")
python3 "$CLIENT" soak ftp "$GW" "$FTP_PORT" --clients $((CLIENTS - CLIENTS / 2)) --minutes "$MINUTES" \
  --think "$THINK" --subnet 2 &
FTP_CLIENTS=$!
PIDS+=("$FTP_CLIENTS")
status=0
wait "$SFTP_CLIENTS" || status=1
wait "$FTP_CLIENTS" || status=1
echo "soak: gateway RSS at the end $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$GW/status") MiB, peak (VmHWM) $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$GW/status") MiB"
echo "soak: gateway log lines at WARN or above: $(grep -c -E 'WARN|ERROR' "$ROOT/node.log" || true); the last few:"
grep -E 'WARN|ERROR' "$ROOT/node.log" | tail -5 || true
exit $status
