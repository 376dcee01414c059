#!/usr/bin/env bash
# SFTP benchmark: the same OpenSSH `sftp -b` workloads against the gateway (release build, default
# local grid 3-of-10 on disk) and, in the same run, against OpenSSH's own sftp-server (a private
# sshd on a loopback port serving a temporary directory on the same disk). Prints both and the ratio.
#
#   bench/sftp.sh              # RUNS=3 by default; BENCH_DIR=/var/tmp by default (a real disk)
#   LAFS=/path/to/lafs bench/sftp.sh   # that binary instead of a fresh release build
#
# Each timed step starts with `sync` and an empty page cache (as root), but for the listings.
# Workloads: 256 MiB up, and down three times: with the client's default request sizes (which it
# takes from the server's limits@openssh.com reply: 255 KiB from both servers here), with
# `-B 261120 -R 64` (the same, asked for) and with `-B 32768 -R 64` (the 32 KiB requests of clients
# that do not ask for limits); 200 files of 4 KiB put in one batch; `ls -l` of a 200-entry
# directory (15 sessions of 10 listings with the page cache as it is; the median set-up of an
# empty batch, measured the same way, taken off; per listing);
# bench/small_files.sh has the 1,000-file workloads;
# peak RSS of each server while 256 MiB comes down with `-B 261120 -R 64` (the gateway's VmHWM,
# reset first; for OpenSSH the largest RSS of its sshd processes, sampled every 20 ms); gateway
# peak RSS while a 1 GiB file goes up (a fresh gateway process, VmHWM); then the 200-file batch
# again with `-F /dev/null` and a pty request, which must end when the client sends EOF
# (EscapeChar=none: with a tty the ssh client would otherwise take "\n~." in the file data as an
# escape).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BIG_MB=${BIG_MB:-256}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-sftp-bench.XXXXXX")
PIDS=()
cleanup() {
  # start_gateway runs in a command substitution, so its gateways are known by their pid files.
  for pid in "${PIDS[@]}" $(cat "$ROOT"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$ROOT"
}
trap cleanup EXIT

if [ -z "${LAFS:-}" ]; then # LAFS=/path/to/lafs benches that binary instead
  cargo build --release -q
  LAFS=$PWD/target/release/lafs
fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || { echo "needs openssh-server (apt-get install -y openssh-server)" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
O=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$ROOT/key")

# --- the gateway ---
start_gateway() { # $1 = node dir; prints the port
  local node=$1 port
  port=$(free_port)
  "$LAFS" --node-dir "$node" run --sftp-listen "127.0.0.1:$port" --ftp-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 >"$node.log" 2>&1 &
  PIDS+=($!)
  echo "$!" >"$node.pid"
  for _ in $(seq 100); do grep -q "serving until" "$node.log" 2>/dev/null && break; sleep 0.1; done
  echo "$port"
}
"$LAFS" --node-dir "$ROOT/node" init >/dev/null
"$LAFS" --node-dir "$ROOT/node" account add bench --key "$ROOT/key.pub" >/dev/null
GW_PORT=$(start_gateway "$ROOT/node")
GW=(-P "$GW_PORT" bench@127.0.0.1)
GW_DIR=.

# --- OpenSSH's sftp-server behind a private sshd ---
mkdir -p /run/sshd "$ROOT/openssh"
ssh-keygen -q -t ed25519 -N '' -f "$ROOT/host_key"
cp "$ROOT/key.pub" "$ROOT/authorized_keys"
chmod 600 "$ROOT/authorized_keys"
SSH_PORT=$(free_port)
cat >"$ROOT/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $ROOT/host_key
PidFile $ROOT/sshd.pid
AuthorizedKeysFile $ROOT/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
UsePAM no
Subsystem sftp internal-sftp -d $ROOT/openssh
EOF
"$SSHD" -D -f "$ROOT/sshd_config" -E "$ROOT/sshd.log" &
PIDS+=($!)
sleep 0.5
SSH=(-P "$SSH_PORT" "$(id -un)@127.0.0.1")

sftp_batch() { # $1 = batch file; rest = target; runs from $ROOT
  (cd "$ROOT" && sftp "${O[@]}" -b "$1" "${@:2}" >/dev/null)
}
# Every timed transfer starts from an empty page cache (dirty pages written back first), so
# neither server pays for the other's writeback or profits from a warm cache.
drop_caches() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
timed() { local t0 t1; drop_caches; t0=$(now); sftp_batch "$@"; t1=$(now); echo "$t1 - $t0" | bc -l; }
# Listings and their set-up are a few ms each: timed with the page cache as it is, since loading
# the ssh client's own files again from disk for every session varied by more than the listing.
timed_warm() { local t0 t1; t0=$(now); sftp_batch "$@"; t1=$(now); echo "$t1 - $t0" | bc -l; }

# --- inputs ---
head -c $((BIG_MB << 20)) /dev/urandom >"$ROOT/big.bin"
mkdir -p "$ROOT/small"
for i in $(seq -w 1 200); do head -c 4096 /dev/urandom >"$ROOT/small/f$i"; done
echo "pwd" >"$ROOT/empty.batch"

report() { # name unit gateway openssh higher_is_better
  local ratio
  ratio=$(echo "$3 / $4" | bc -l)
  printf "%-34s gateway %10.2f %-6s openssh %10.2f %-6s ratio %.2f\n" "$1" "$3" "$2" "$4" "$2" "$ratio"
}

run_suite() { # $1 = label, $2 = remote dir prefix, rest = target
  local label=$1 dir=$2; shift 2
  local up=() down=() down_big=() down_32k=() files=() ls=() setup=() warm_setup=()
  for run in $(seq "$RUNS"); do
    setup+=("$(timed empty.batch "$@")")
    echo "put big.bin $dir/big$run.bin" >"$ROOT/up.batch"
    up+=("$(timed up.batch "$@")")
    echo "get $dir/big$run.bin got.bin" >"$ROOT/down.batch"
    down+=("$(timed down.batch "$@")")
    cmp -s "$ROOT/big.bin" "$ROOT/got.bin" || { echo "$label: download differs" >&2; exit 1; }
    rm -f "$ROOT/got.bin"
    down_big+=("$(timed down.batch -B 261120 -R 64 "$@")")
    cmp -s "$ROOT/big.bin" "$ROOT/got.bin" || { echo "$label: download (-B 261120) differs" >&2; exit 1; }
    rm -f "$ROOT/got.bin"
    down_32k+=("$(timed down.batch -B 32768 -R 64 "$@")")
    cmp -s "$ROOT/big.bin" "$ROOT/got.bin" || { echo "$label: download (-B 32768) differs" >&2; exit 1; }
    rm -f "$ROOT/got.bin"
    { echo "mkdir $dir/s$run"; for f in "$ROOT"/small/*; do echo "put small/$(basename "$f") $dir/s$run/$(basename "$f")"; done; } >"$ROOT/files.batch"
    files+=("$(timed files.batch "$@")")
  done
  # Listing and set-up are short: many more runs, so the difference of medians is not noise.
  # Ten listings a session: one is shorter than the spread of a session's set-up.
  for _ in $(seq 10); do echo "ls -l $dir/s1"; done >"$ROOT/ls.batch"
  for _ in $(seq 15); do
    warm_setup+=("$(timed_warm empty.batch "$@")")
    ls+=("$(timed_warm ls.batch "$@")")
  done
  local s w u d b k f l
  s=$(printf '%s\n' "${setup[@]}" | median)
  w=$(printf '%s\n' "${warm_setup[@]}" | median)
  u=$(printf '%s\n' "${up[@]}" | median)
  d=$(printf '%s\n' "${down[@]}" | median)
  b=$(printf '%s\n' "${down_big[@]}" | median)
  k=$(printf '%s\n' "${down_32k[@]}" | median)
  f=$(printf '%s\n' "${files[@]}" | median)
  l=$(printf '%s\n' "${ls[@]}" | median)
  # Connection set-up is in every timing; take it off.
  echo "$label $(echo "$BIG_MB * 1.048576 / ($u - $s)" | bc -l) $(echo "$BIG_MB * 1.048576 / ($d - $s)" | bc -l)" \
    "$(echo "$BIG_MB * 1.048576 / ($b - $s)" | bc -l) $(echo "$BIG_MB * 1.048576 / ($k - $s)" | bc -l)" \
    "$(echo "200 / ($f - $s)" | bc -l)" \
    "$(echo "($l - $w) * 100" | bc -l)" \
    "$(echo "$s * 1000" | bc -l)"
}

# Peak RSS (KiB) of a server while a file comes down with 255 KiB requests: $1 = gateway pid, or
# "openssh"; $2 = the remote file; rest = target.
peak_rss_during_get() {
  local who=$1 peak=0 rss pid
  echo "get $2 got.bin" >"$ROOT/down.batch"
  shift 2
  if [ "$who" != openssh ]; then
    echo 5 >"/proc/$who/clear_refs" # resets VmHWM
    sftp_batch down.batch -B 261120 -R 64 "$@"
    awk '/VmHWM/ {print $2}' "/proc/$who/status"
  else
    sftp_batch down.batch -B 261120 -R 64 "$@" &
    local client=$!
    while kill -0 "$client" 2>/dev/null; do
      for pid in $(pgrep -f "^sshd: $(id -un)" || true); do
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && peak=$rss
      done
      sleep 0.02
    done
    wait "$client"
    echo "$peak"
  fi
  rm -f "$ROOT/got.bin"
}

read -r _ GU GD GB GK GF GL GS < <(run_suite gateway "$GW_DIR" "${GW[@]}")
read -r _ OU OD OB OK OF OL OS < <(run_suite openssh "$ROOT/openssh" "${SSH[@]}")
GR=$(peak_rss_during_get "$(cat "$ROOT/node.pid")" big1.bin "${GW[@]}")
OR=$(peak_rss_during_get openssh "$ROOT/openssh/big1.bin" "${SSH[@]}")

echo "SFTP benchmark: $RUNS runs each, medians; $(nproc) cores; OpenSSH $(ssh -V 2>&1 | cut -d, -f1)"
report "put ${BIG_MB} MiB (MB/s)" MB/s "$GU" "$OU"
report "get ${BIG_MB} MiB (MB/s)" MB/s "$GD" "$OD"
report "get ${BIG_MB} MiB -B 261120 -R 64" MB/s "$GB" "$OB"
report "get ${BIG_MB} MiB -B 32768 -R 64" MB/s "$GK" "$OK"
report "put 200 x 4 KiB (files/s)" files/s "$GF" "$OF"
report "ls -l of 200 (ms each, no setup)" ms "$GL" "$OL"
printf "%-34s gateway %10.2f ms     openssh %10.2f ms\n" "connection set-up" "$GS" "$OS"
printf "%-34s gateway %10d MiB    openssh %10d MiB\n" "peak RSS, get -B 261120 -R 64" $((GR / 1024)) $((OR / 1024))

# --- peak RSS of a fresh gateway while 1 GiB goes up ---
"$LAFS" --node-dir "$ROOT/node2" init >/dev/null
"$LAFS" --node-dir "$ROOT/node2" account add bench --key "$ROOT/key.pub" >/dev/null
rm -f "$ROOT"/small/*
head -c $((1024 << 20)) /dev/urandom >"$ROOT/big.bin"
P2=$(start_gateway "$ROOT/node2")
echo "put big.bin g.bin" >"$ROOT/gib.batch"
t=$(timed gib.batch -P "$P2" bench@127.0.0.1)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$ROOT/node2.pid")/status")
printf "put 1 GiB: %.2f s (%.1f MB/s), gateway peak RSS %d MiB\n" "$t" "$(echo "1073.741824 / $t" | bc -l)" $((rss / 1024))

# --- -F /dev/null (no SendEnv) with a pty request: the session must end at the client's EOF ---
for f in $(seq -w 1 20); do head -c 4096 /dev/urandom >"$ROOT/small/f$f"; done
{ echo "mkdir nullcfg"; for f in "$ROOT"/small/*; do echo "put small/$(basename "$f") nullcfg/"; done; echo "ls -l nullcfg"; } >"$ROOT/null.batch"
t0=$(now)
(cd "$ROOT" && timeout 60 sftp -F /dev/null "${O[@]}" -o RequestTTY=force -o EscapeChar=none -o SendEnv=LANG -b null.batch -P "$P2" bench@127.0.0.1 >/dev/null)
printf "sftp -F /dev/null: 20 puts + ls, exited cleanly after EOF in %.2f s\n" "$(echo "$(now) - $t0" | bc -l)"
