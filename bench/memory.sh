#!/usr/bin/env bash
# Memory benchmark (issue 16): the gateway's RSS under many sessions and many big uploads, each
# workload on a fresh `lafs run` (release build, default local grid 3-of-10 on disk).
#
#   bench/memory.sh                 # all of it; BENCH_DIR=/var/tmp by default (a real disk)
#   bench/memory.sh concurrent      # (a) only     bench/memory.sh sequential   # (b) only
#   REFERENCE=0 bench/memory.sh concurrent          # without the reference servers
#   MEMORY_BUDGET_MIB=64 bench/memory.sh            # another [grid] memory_budget_mib
#
# (a) SESSIONS (100) concurrent SFTP sessions (paramiko; SFTP_LOGIN=password, the default, logs
#     in as demo/demo, each login an argon2 check; SFTP_LOGIN=key with an ed25519 key) and, separately, SESSIONS
#     concurrent FTP sessions (ftplib), each putting SIZE (1 MiB) random bytes and getting them
#     back, SHA-256-checked: RSS idle, peak while they run, and once they end; the same load
#     against OpenSSH's sftp-server (a private sshd: RSS summed over its per-session processes)
#     and pyftpdlib, for throughput and memory.
# (b) UPLOADS (50) sequential 64 MiB uploads over SFTP (OpenSSH sftp) and over FTP (curl): RSS
#     after the 5th and after the last. The big shares are deleted after each upload so the run
#     needs ~250 MB of disk, not 10 GB (the directory's shares are small and stay).
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
SESSIONS=${SESSIONS:-100}
SIZE=${SIZE:-1048576}
SFTP_LOGIN=${SFTP_LOGIN:-password}
UPLOADS=${UPLOADS:-50}
BIG_MB=${BIG_MB:-64}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-memory-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$ROOT"
}
trap cleanup EXIT

python3 -c 'import paramiko, pyftpdlib' 2>/dev/null || { echo "needs paramiko and pyftpdlib" >&2; exit 1; }
# LAFS=/path/to/lafs runs another build (e.g. an older one, for comparison) instead.
if [ -z "${LAFS:-}" ]; then cargo build --release -q; LAFS=$PWD/target/release/lafs; fi
CLIENTS=$PWD/bench/memory_clients.py
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
now() { date +%s.%N; }

ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
O=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$ROOT/key")

# A fresh node serving SFTP and FTP; sets GW_PID, SFTP_PORT, FTP_PORT. $1 = node dir.
start_gateway() {
  local node=$1
  "$LAFS" --node-dir "$node" init >/dev/null
  if [ -n "${MEMORY_BUDGET_MIB:-}" ]; then
    sed -i "s/^memory_budget_mib = .*/memory_budget_mib = $MEMORY_BUDGET_MIB/" "$node/lafs.toml"
  fi
  "$LAFS" --node-dir "$node" account add bench --key "$ROOT/key.pub" >/dev/null
  echo demo | "$LAFS" --node-dir "$node" account add demo --password >/dev/null
  SFTP_PORT=$(free_port)
  FTP_PORT=$(free_port)
  "$LAFS" --node-dir "$node" run --sftp-listen "127.0.0.1:$SFTP_PORT" --ftp-listen "127.0.0.1:$FTP_PORT" --web-listen 127.0.0.1:0 \
    >"$node.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  for _ in $(seq 100); do grep -q "serving until" "$node.log" 2>/dev/null && break; sleep 0.1; done
}
stop_gateway() { kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; }

concurrent() {
  echo "== (a) $SESSIONS concurrent sessions, $((SIZE >> 10)) KiB up and down each"
  start_gateway "$ROOT/a-sftp"
  local login=()
  [ "$SFTP_LOGIN" = key ] && login=(--key "$ROOT/key")
  echo -n "   (SFTP login: $SFTP_LOGIN) "
  python3 "$CLIENTS" concurrent sftp "$GW_PID" "$SFTP_PORT" "${login[@]}" --sessions "$SESSIONS" --size "$SIZE" || true
  echo "   gateway VmHWM $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$GW_PID/status") MiB"
  stop_gateway
  start_gateway "$ROOT/a-ftp"
  python3 "$CLIENTS" concurrent ftp "$GW_PID" "$FTP_PORT" --sessions "$SESSIONS" --size "$SIZE" || true
  echo "   gateway VmHWM $(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$GW_PID/status") MiB"
  stop_gateway

  # The references: OpenSSH's sftp-server in a private sshd, pyftpdlib (REFERENCE=0 skips them).
  [ "${REFERENCE:-1}" = 0 ] && return
  local sshd ssh_port py_port
  sshd=$(command -v sshd || echo /usr/sbin/sshd)
  if [ -x "$sshd" ]; then
    mkdir -p /run/sshd "$ROOT/openssh"
    ssh-keygen -q -t ed25519 -N '' -f "$ROOT/host_key"
    cp "$ROOT/key.pub" "$ROOT/authorized_keys"
    chmod 600 "$ROOT/authorized_keys"
    ssh_port=$(free_port)
    cat >"$ROOT/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $ROOT/host_key
PidFile $ROOT/sshd.pid
AuthorizedKeysFile $ROOT/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
MaxStartups $((SESSIONS + 10))
MaxSessions $((SESSIONS + 10))
Subsystem sftp internal-sftp -d $ROOT/openssh
EOF
    "$sshd" -D -f "$ROOT/sshd_config" -E "$ROOT/sshd.log" &
    local sshd_pid=$!
    PIDS+=("$sshd_pid")
    sleep 0.5
    echo -n "   reference OpenSSH sftp-server (RSS of sshd and its children): "
    python3 "$CLIENTS" concurrent sftp "$sshd_pid" "$ssh_port" --key "$ROOT/key" --user "$(id -un)" \
      --sessions "$SESSIONS" --size "$SIZE" --tree || true
    kill "$sshd_pid"
  fi
  mkdir -p "$ROOT/pyftpdlib"
  py_port=$(free_port)
  python3 -m pyftpdlib -i 127.0.0.1 -p "$py_port" -w -u demo -P demo -d "$ROOT/pyftpdlib" -r 30000-30400 \
    >"$ROOT/pyftpdlib.log" 2>&1 &
  local py_pid=$!
  PIDS+=("$py_pid")
  for _ in $(seq 50); do curl -s -u demo:demo "ftp://127.0.0.1:$py_port/" >/dev/null && break; sleep 0.1; done
  echo -n "   reference pyftpdlib: "
  python3 "$CLIENTS" concurrent ftp "$py_pid" "$py_port" --sessions "$SESSIONS" --size "$SIZE" || true
  kill "$py_pid"
}

sequential() {
  echo "== (b) $UPLOADS sequential ${BIG_MB} MiB uploads"
  head -c $((BIG_MB << 20)) /dev/urandom >"$ROOT/big.bin"
  local proto node t0 t1 r5 rn
  for proto in sftp ftp; do
    node=$ROOT/b-$proto
    start_gateway "$node"
    local idle
    idle=$(rss_mib "$GW_PID")
    t0=$(now)
    for i in $(seq "$UPLOADS"); do
      if [ "$proto" = sftp ]; then
        echo "put $ROOT/big.bin big.bin" | sftp "${O[@]}" -b - -P "$SFTP_PORT" bench@127.0.0.1 >/dev/null
      else
        curl -sS -u demo:demo -T "$ROOT/big.bin" "ftp://127.0.0.1:$FTP_PORT/big.bin"
      fi
      # Only this upload's shares are big: drop them so 50 uploads fit on a small disk.
      find "$node/storage" -type f -size +8M -delete
      [ "$i" = 5 ] && { sleep 1; r5=$(rss_mib "$GW_PID"); }
    done
    t1=$(now)
    sleep 1
    rn=$(rss_mib "$GW_PID")
    printf "%s: %d x %d MiB in %.1f s (%.1f MB/s); RSS idle %d MiB, after the 5th %d MiB, after the %dth %d MiB (%+d)\n" \
      "$proto" "$UPLOADS" "$BIG_MB" "$(echo "$t1 - $t0" | bc -l)" \
      "$(echo "$UPLOADS * $BIG_MB * 1.048576 / ($t1 - $t0)" | bc -l)" "$idle" "$r5" "$UPLOADS" "$rn" $((rn - r5))
    stop_gateway
  done
}

case $WHAT in
  concurrent) concurrent ;;
  sequential) sequential ;;
  all) concurrent; sequential ;;
  *) echo "usage: $0 [concurrent|sequential|all]" >&2; exit 2 ;;
esac
