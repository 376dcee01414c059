#!/usr/bin/env bash
# Small files (issue 18): the gateway beside OpenSSH's sftp-server and pyftpdlib, one run, same disk.
#
#   bench/small_files.sh               # default local grid (3-of-10, ten disk servers in the node)
#   GRID=network bench/small_files.sh  # the gateway on five `lafs run` storage nodes, 3-of-5, happy 4
#   RUNS=3 FILES=1000 BENCH_DIR=/var/tmp bench/small_files.sh
#
# Workloads, each timed from an empty page cache (as root), the gateway's side then the reference's:
#   - 200 x 4 KiB put in one `sftp -b` batch, and STOR'd in one ftplib session (files/s);
#   - `rclone copy` of FILES files of 1-64 KiB over SFTP (files/s);
#   - `ls -l` of that FILES-entry directory over SFTP (15 sessions of 10 listings each, the median
#     set-up taken off, per listing) and a LIST of it over FTP (ftplib, 10 runs), in ms;
#   - a `sftp -b` get of every one of those files (files/s);
#   - over sshfs (fresh mounts): `cp -r` of the tree in, then `diff -r` against it (seconds), at once
#     and again once the gateway has published what it acknowledged (see published_after).
# The gateway's files are checked after every transfer (rclone check, cmp, diff -r). What the
# gateway has acknowledged but not yet published is its own business (see README "What a put
# guarantees"); the script reports the files/s clients see and, from the gateway's
# `/statistics?t=json` (lafs.journal.pending_links), the time until nothing is pending.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
FILES=${FILES:-1000}
GRID=${GRID:-local}
ROOT=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-small-bench.XXXXXX")
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do fusermount -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$ROOT"
}
trap cleanup EXIT

for tool in sshd sshfs rclone sshpass bc; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "needs $tool" >&2; exit 1; }
done
python3 -c 'import pyftpdlib' 2>/dev/null || { echo "needs pyftpdlib (python3 -m pip install pyftpdlib)" >&2; exit 1; }
if [ -z "${LAFS:-}" ]; then
  cargo build --release -q
  LAFS=$PWD/target/release/lafs
fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
drop_caches() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi; }
seconds_since() { echo "$(now) - $1" | bc -l; }

ssh-keygen -q -t ed25519 -N '' -f "$ROOT/key"
O=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$ROOT/key")
PASSWORD=bench-$RANDOM-$RANDOM

# --- the grid and the gateway ---
GW=$ROOT/gateway
"$LAFS" --node-dir "$GW" init >/dev/null
if [ "$GRID" = network ]; then
  yaml=$ROOT/servers.yaml
  echo "storage:" >"$yaml"
  for i in 1 2 3 4 5; do
    node=$ROOT/storage$i
    "$LAFS" --node-dir "$node" init >/dev/null
    port=$(free_port)
    printf '[storage]\nservers = 1\n[frontends]\nsftp = false\nftp = false\n[storage_server]\nenabled = true\nlisten = "127.0.0.1:%s"\nnickname = "s%s"\n' \
      "$port" "$i" >"$node/lafs.toml"
    "$LAFS" --node-dir "$node" run --web-listen 127.0.0.1:0 >"$node.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do [ -s "$node/private/storage-announcement.yaml" ] && break; sleep 0.1; done
    sed -n '2,$p' "$node/private/storage-announcement.yaml" >>"$yaml"
  done
  cp "$yaml" "$GW/private/servers.yaml"
  printf '[grid]\nneeded = 3\nhappy = 4\ntotal = 5\nservers_yaml = "private/servers.yaml"\n' >"$GW/lafs.toml"
fi
"$LAFS" --node-dir "$GW" account add bench --key "$ROOT/key.pub" >/dev/null
echo "$PASSWORD" | "$LAFS" --node-dir "$GW" account add bench --password >/dev/null
GW_SFTP=$(free_port)
GW_FTP=$(free_port)
GW_WEB=$(free_port)
"$LAFS" --node-dir "$GW" run --sftp-listen "127.0.0.1:$GW_SFTP" --ftp-listen "127.0.0.1:$GW_FTP" --web-listen "127.0.0.1:$GW_WEB" >"$ROOT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
for _ in $(seq 100); do grep -q "serving until" "$ROOT/gateway.log" 2>/dev/null && break; sleep 0.1; done

# --- the references: OpenSSH's sftp-server behind a private sshd, pyftpdlib, one directory ---
REF=$ROOT/reference
mkdir -p /run/sshd "$REF"
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
Subsystem sftp internal-sftp -d $REF
EOF
"$SSHD" -D -f "$ROOT/sshd_config" -E "$ROOT/sshd.log" &
PIDS+=($!)
PY_FTP=$(free_port)
python3 -m pyftpdlib -i 127.0.0.1 -p "$PY_FTP" -w -u bench -P "$PASSWORD" -d "$REF" -r 30000-30100 \
  >"$ROOT/pyftpdlib.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -s -u "bench:$PASSWORD" "ftp://127.0.0.1:$PY_FTP/" >/dev/null && break; sleep 0.1; done
ME=$(id -un)

# target NAME: sets SFTP_PORT, SFTP_USER, FTP_PORT for the gateway (gw) or the references (ref).
target() {
  case $1 in
    gw) SFTP_PORT=$GW_SFTP SFTP_USER=bench FTP_PORT=$GW_FTP ;;
    ref) SFTP_PORT=$SSH_PORT SFTP_USER=$ME FTP_PORT=$PY_FTP ;;
  esac
}
sftp_batch() { (cd "$ROOT" && sftp "${O[@]}" -b "$1" -P "$SFTP_PORT" "$SFTP_USER@127.0.0.1" >/dev/null); }
timed_batch() { local t0; drop_caches; t0=$(now); sftp_batch "$1"; seconds_since "$t0"; }
# The gateway may acknowledge before it publishes: wait until its statistics count no pending
# link and print how long that took after $1 (at most 60 s; "unknown" if it cannot be asked).
pending_links() {
  curl -fsS "http://127.0.0.1:$GW_WEB/statistics?t=json" |
    python3 -c 'import json, sys; print(int(json.load(sys.stdin)["stats"]["lafs.journal.pending_links"]))'
}
published_after() {
  local t0=$1 n
  for _ in $(seq 600); do
    n=$(pending_links) || { printf 'unknown'; return; }
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  printf '%.2f' "$(seconds_since "$t0")"
}

# --- inputs ---
mkdir -p "$ROOT/small" "$ROOT/tree"
for i in $(seq -w 1 200); do head -c 4096 /dev/urandom >"$ROOT/small/f$i"; done
python3 - "$ROOT/tree" "$FILES" <<'EOF'
import os, random, sys
rng = random.Random(18)
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "f%04d.bin" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 64 * 1024)))
EOF
TREE_BYTES=$(du -sb "$ROOT/tree" | cut -f1)
echo "pwd" >"$ROOT/empty.batch"

FTP_SMALL='
import ftplib, io, os, sys, time
port, password, d = int(sys.argv[1]), sys.argv[2], sys.argv[3]
f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("bench", password)
f.mkd(d)
data = os.urandom(4096)
t0 = time.perf_counter()
for i in range(200):
    f.storbinary("STOR %s/f%03d.bin" % (d, i), io.BytesIO(data))
print("%.1f" % (200 / (time.perf_counter() - t0)))
'
FTP_LIST='
import ftplib, statistics, sys, time
port, password, d, want = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
f = ftplib.FTP(); f.connect("127.0.0.1", port); f.login("bench", password)
times = []
for _ in range(10):
    lines = []
    t0 = time.perf_counter(); f.retrlines("LIST " + d, lines.append); times.append((time.perf_counter() - t0) * 1000)
    assert len(lines) == want, (len(lines), want)
print("%.2f" % statistics.median(times))
'

# suite NAME RUN: one round of every workload against NAME; prints "key value" lines.
suite() {
  local who=$1 run=$2 t0 setup=() ls=()
  target "$who"
  # 200 x 4 KiB over SFTP, then over FTP.
  echo "-mkdir put$run" >"$ROOT/put.batch"
  for f in "$ROOT"/small/f*; do echo "put $f put$run/"; done >>"$ROOT/put.batch"
  local secs
  secs=$(timed_batch "$ROOT/put.batch")
  echo "sftp_put_200 $(echo "200 / $secs" | bc -l)"
  drop_caches
  echo "ftp_stor_200 $(python3 -c "$FTP_SMALL" "$FTP_PORT" "$PASSWORD" "stor$run")"
  # rclone copy over SFTP.
  drop_caches
  t0=$(now)
  rclone copy "$ROOT/tree" ":sftp:rc$run" --sftp-host 127.0.0.1 --sftp-port "$SFTP_PORT" --sftp-user "$SFTP_USER" \
    --sftp-key-file "$ROOT/key" --sftp-shell-type none --sftp-set-modtime=false \
    --sftp-disable-hashcheck 2>"$ROOT/rclone.err" || { cat "$ROOT/rclone.err" >&2; exit 1; }
  secs=$(seconds_since "$t0")
  echo "rclone_copy $(echo "$FILES / $secs" | bc -l)"
  [ "$who" = gw ] && echo "rclone_published_after $(published_after "$t0")"
  rclone check "$ROOT/tree" ":sftp:rc$run" --sftp-host 127.0.0.1 --sftp-port "$SFTP_PORT" --sftp-user "$SFTP_USER" \
    --sftp-key-file "$ROOT/key" --sftp-shell-type none --sftp-disable-hashcheck \
    --download -q 2>"$ROOT/rclone.err" || { cat "$ROOT/rclone.err" >&2; echo "$who: rclone check failed" >&2; exit 1; }
  # Listing the FILES-entry directory.
  # LISTINGS listings in one session, so that the set-up's variance (tens of ms) is shared out.
  local listings=10
  for _ in $(seq $listings); do echo "ls -l rc$run"; done >"$ROOT/ls.batch"
  for _ in $(seq 15); do
    t0=$(now); sftp_batch "$ROOT/empty.batch"; setup+=("$(seconds_since "$t0")")
    t0=$(now); sftp_batch "$ROOT/ls.batch"; ls+=("$(seconds_since "$t0")")
  done
  echo "sftp_ls_ms $(echo "($(printf '%s\n' "${ls[@]}" | median) - $(printf '%s\n' "${setup[@]}" | median)) * 1000 / $listings" | bc -l)"
  echo "ftp_list_ms $(python3 -c "$FTP_LIST" "$FTP_PORT" "$PASSWORD" "rc$run" "$FILES")"
  # Reading every file back with one sftp batch.
  rm -rf "$ROOT/got" && mkdir -p "$ROOT/got"
  (cd "$ROOT/tree" && ls) | sed "s|.*|get rc$run/& got/|" >"$ROOT/get.batch"
  secs=$(timed_batch "$ROOT/get.batch")
  echo "sftp_get_each $(echo "$FILES / $secs" | bc -l)"
  diff -r "$ROOT/tree" "$ROOT/got" >/dev/null || { echo "$who: files read back differ" >&2; exit 1; }
  # sshfs: cp -r in, then (on a fresh mount, cold cache) diff -r.
  local mnt=$ROOT/mnt-$who-$run
  mkdir -p "$mnt"
  mount_sshfs() {
    sshfs -p "$SFTP_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
      -o IdentitiesOnly=yes -o IdentityFile="$ROOT/key" "$SFTP_USER@127.0.0.1:" "$mnt"
    MOUNTS+=("$mnt")
  }
  mount_sshfs
  drop_caches
  local t_cp
  t_cp=$(now)
  cp -r "$ROOT/tree" "$mnt/fs$run"
  echo "sshfs_cp_r $(seconds_since "$t_cp")"
  fusermount -u "$mnt"
  # diff -r on a fresh mount, cold cache: $1 = the result's key.
  timed_diff_r() {
    mount_sshfs
    drop_caches
    t0=$(now)
    diff -r "$ROOT/tree" "$mnt/fs$run" >/dev/null || { echo "$who: sshfs diff -r found differences" >&2; exit 1; }
    echo "$1 $(seconds_since "$t0")"
    fusermount -u "$mnt"
  }
  timed_diff_r sshfs_diff_r
  # Again once the gateway has published what cp -r left pending: the first diff -r shares the
  # CPU with that publishing (on the network grid with five storage processes at normal priority).
  [ "$who" = gw ] && echo "sshfs_published_after $(published_after "$t_cp")"
  timed_diff_r sshfs_diff_r_published
}

results=$ROOT/results
: >"$results"
for run in $(seq "$RUNS"); do
  for who in gw ref; do
    suite "$who" "$run" | sed "s/^/$who /" >>"$results"
  done
done

echo "Small files, $GRID grid, $RUNS rounds (medians; each round's figures after the slash), $(nproc) cores,"
echo "$FILES files of 1-64 KiB ($TREE_BYTES bytes) for rclone, listing, get and sshfs. Gateway peak RSS: $(grep VmHWM /proc/$GW_PID/status | awk '{print $2, $3}')"
row() { # key label unit higher_is_better(1|0)
  local g r gall rall
  g=$(awk -v k="$1" '$1=="gw" && $2==k {print $3}' "$results" | median)
  r=$(awk -v k="$1" '$1=="ref" && $2==k {print $3}' "$results" | median)
  gall=$(awk -v k="$1" '$1=="gw" && $2==k {printf "%.1f ", $3}' "$results")
  rall=$(awk -v k="$1" '$1=="ref" && $2==k {printf "%.1f ", $3}' "$results")
  local ratio
  if [ "$4" = 1 ]; then ratio=$(echo "$g / $r" | bc -l); else ratio=$(echo "$r / $g" | bc -l); fi
  printf "%-34s gateway %9.2f  reference %9.2f %-8s (of reference's speed: %.2f)   [%s/ %s]\n" "$2" "$g" "$r" "$3" "$ratio" "$gall" "$rall"
}
row sftp_put_200 "sftp -b put 200 x 4 KiB" files/s 1
row ftp_stor_200 "ftplib STOR 200 x 4 KiB" files/s 1
row rclone_copy "rclone copy over SFTP" files/s 1
row sftp_ls_ms "sftp ls -l, beyond set-up" ms 0
row ftp_list_ms "FTP LIST" ms 0
row sftp_get_each "sftp -b get of each file" files/s 1
row sshfs_cp_r "sshfs cp -r" s 0
row sshfs_diff_r "sshfs diff -r" s 0
row sshfs_diff_r_published "sshfs diff -r, once published" s 0
awk '$1=="gw" && $2=="rclone_published_after" {n++; printf "gateway: everything published %s s after rclone started (round %d)\n", $3, n}' "$results"
awk '$1=="gw" && $2=="sshfs_published_after" {n++; printf "gateway: everything published %s s after sshfs cp -r started (round %d)\n", $3, n}' "$results"
