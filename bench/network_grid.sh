#!/usr/bin/env bash
# Put/get over a loopback network grid: our gateway on 5 of our storage nodes, beside real
# Tahoe-LAFS 1.20 (`tahoe put`/`tahoe get` through its client node) on 5 real storage nodes,
# both 3-of-5 (happy 4), plus the two crossings (our gateway on the real nodes, the real client
# on ours). Prints each run's seconds, the medians as MB/s (10^6 bytes of file per second) and
# peak RSS: of the `lafs` process, of the Tahoe client node, and the largest storage node.
#
#   bench/network_grid.sh [SIZE_MIB]       default 256
#   RUNS=3 bench/network_grid.sh           timed rounds (default 3); each put is a fresh random file
#   BENCH_DIR=/var/tmp bench/network_grid.sh   where the nodes live (default /var/tmp: on disk)
#
# The grids are started by tests/interop/tahoe_interop.sh (KEEP_RUNNING=1), which also checks
# that they work; the page cache is dropped before every timed step when we can (root).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-256}
runs=${RUNS:-3}

cargo build --release --quiet
lafs=$PWD/target/release/lafs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/lafs-netbench.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT

echo "starting the grids (real Tahoe 1.20 and ours, 5 storage nodes each) in $work"
KEEP_RUNNING=1 SCENARIOS="a c" SAME_CONVERGENCE=0 TAHOE_VENV=${TAHOE_VENV:-$PWD/target/tahoe-venv} \
  REAL_SERVERS=5 REAL_K=3 REAL_HAPPY=4 REAL_N=5 OURS_SERVERS=5 OURS_K=3 OURS_HAPPY=4 OURS_N=5 \
  bash tests/interop/tahoe_interop.sh "$lafs" "$work/grids" >"$work/setup.log" 2>&1 || {
  cat "$work/setup.log"
  echo "the grids did not come up" >&2
  exit 1
}
read -r -a pids <<<"$(sed -n 's/.*leaving PIDs running: //p' "$work/setup.log")"
grep -c '^PASS' "$work/setup.log" | xargs printf '  setup and interop checks passed: %s\n'
nodes=$work/grids/nodes
tahoe=${TAHOE_VENV:-$PWD/target/tahoe-venv}/bin/tahoe

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
bytes=$((size_mib * 1024 * 1024))
results=$work/results
: >"$results"

# timed LABEL COMMAND...: records seconds and the command's peak RSS (KiB).
timed() {
  local label=$1 start end
  shift
  drop_caches
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$@" >"$work/out" 2>"$work/err" || {
    cat "$work/err" >&2
    exit 1
  }
  end=$(date +%s.%N)
  echo "$label $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }') $(cat "$work/rss")" >>"$results"
}
cap_of() { grep -Eo 'URI:[A-Za-z0-9:_-]+' "$work/out" | tail -n 1; }

for run in $(seq 1 "$runs"); do
  echo "run $run of $runs"
  for who in lafs-ours tahoe-real lafs-real tahoe-ours; do
    file=$work/file-$who-$run
    head -c "$bytes" /dev/urandom >"$file"
    case $who in
      lafs-ours) put=("$lafs" --node-dir "$nodes/gw-ours" put "$file"); get=("$lafs" --node-dir "$nodes/gw-ours" get) ;;
      lafs-real) put=("$lafs" --node-dir "$nodes/gw-real" put "$file"); get=("$lafs" --node-dir "$nodes/gw-real" get) ;;
      tahoe-real) put=("$tahoe" -d "$nodes/tc" put "$file"); get=("$tahoe" -d "$nodes/tc" get) ;;
      tahoe-ours) put=("$tahoe" -d "$nodes/tc2" put "$file"); get=("$tahoe" -d "$nodes/tc2" get) ;;
    esac
    timed "$who-put" "${put[@]}"
    cap=$(cap_of)
    timed "$who-get" "${get[@]}" "$cap" "$file.out"
    cmp -s "$file" "$file.out" || { echo "$who: the file read back differs" >&2; exit 1; }
    rm -f "$file" "$file.out"
  done
done

hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
max_hwm() { local m=0 h; for pid in "$@"; do h=$(hwm "$pid"); [ "$h" -gt "$m" ] && m=$h; done; echo "$m"; }
pid_of_node() { cut -d' ' -f1 "$1/running.process" 2>/dev/null || echo 0; }
real_storage=()
for d in "$nodes"/real[0-9]*; do [ -d "$d" ] && real_storage+=("$(pid_of_node "$d")"); done
read -r -a our_storage <<<"$(pgrep -f "$nodes/ours[0-9]+ run" | tr '\n' ' ')"

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "file: $size_mib MiB of random bytes (fresh per put), 3-of-5, happy 4, 5 storage nodes on 127.0.0.1, disk under ${BENCH_DIR:-/var/tmp}"
printf '%-16s %-28s %9s %9s %14s\n' workload "seconds per run" median MB/s "peak RSS MiB"
for label in lafs-ours-put lafs-ours-get tahoe-real-put tahoe-real-get lafs-real-put lafs-real-get tahoe-ours-put tahoe-ours-get; do
  awk -v l="$label" -v b="$bytes" '
    $1 == l { t[n++] = $2; if ($3 > r) r = $3 }
    END {
      if (n == 0) exit
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (t[j] < t[i]) { x = t[i]; t[i] = t[j]; t[j] = x }
      m = (n % 2) ? t[int(n / 2)] : (t[n / 2 - 1] + t[n / 2]) / 2
      s = ""; for (i = 0; i < n; i++) s = s t[i] " "
      printf "%-16s %-28s %9.2f %9.1f %14.1f\n", l, s, m, b / m / 1e6, r / 1024
    }' "$results"
done
echo "(peak RSS: of the lafs or tahoe CLI process; tahoe's work happens in its client node:)"
echo "tahoe client node tc (real grid) peak RSS: $(( $(hwm "$(pid_of_node "$nodes/tc")") / 1024 )) MiB; tc2 (our nodes): $(( $(hwm "$(pid_of_node "$nodes/tc2")") / 1024 )) MiB"
echo "largest storage node peak RSS: ours $(( $(max_hwm "${our_storage[@]}") / 1024 )) MiB, real Tahoe $(( $(max_hwm "${real_storage[@]}") / 1024 )) MiB"
