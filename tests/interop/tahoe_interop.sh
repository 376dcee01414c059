#!/usr/bin/env bash
# Interop check between real Tahoe-LAFS 1.20 and our `lafs` binary over the HTTP storage protocol
# ("Great Black Swamp").
#
# Usage: tahoe_interop.sh LAFS_BINARY WORKDIR
#
#   (a) our gateway (servers.yaml = real Tahoe storage nodes) puts; real `tahoe get` reads
#   (b) real `tahoe put`; our `lafs get` reads
#   (c) a real Tahoe client whose servers.yaml lists only OUR storage nodes puts/gets; our gateway
#       reads the same caps from our storage nodes
#   (d) directories both ways
#   (e) our gateway given only the real introducer's fURL (a copy of the real client's
#       private/introducers.yaml) finds the servers: lafs put -> tahoe get, tahoe put -> lafs get;
#       with the introducer stopped, lafs put still works from the announcement cache
#   (f) our storage node publishes through the real introducer; a real client puts shares on it
#   (g) real storage nodes and a real client use OUR introducer (`[introducer] enabled`)
#
# Everything runs on 127.0.0.1 with ports picked at run time. Real nodes and ours are stopped on exit.
# Logs and node directories stay under WORKDIR (wiped at the next run, except the venv).
#
# Environment knobs (defaults below):
#   TAHOE_VENV        venv holding tahoe-lafs 1.20.0 (installed when missing)
#   SCENARIOS         "a b c d"; e.g. SCENARIOS=c runs only our storage nodes + a real client
#   REAL_SERVERS REAL_K REAL_HAPPY REAL_N    the real grid (3, 2, 3, 3)
#   OURS_SERVERS OURS_K OURS_HAPPY OURS_N    our storage nodes and the encoding used on them (3, 2, 3, 3)
#   EXTRA_MUTABLE=0   skip tahoe put --mutable (SDMF, MDMF) -> lafs get
#   SAME_CONVERGENCE=1  our gateway gets the real client's convergence secret, and (a) also checks that
#                     tahoe put of the same file gives the same cap
#   KEEP_RUNNING=1    leave the nodes running on exit (PIDs are printed)
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 LAFS_BINARY WORKDIR" >&2
  exit 2
fi
mkdir -p "$2"
WORKDIR=$(cd "$2" && pwd)
LAFS=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$LAFS" ] || { echo "not executable: $LAFS" >&2; exit 2; }

# ---------------------------------------------------------------------------------------------
# Knobs
# ---------------------------------------------------------------------------------------------
TAHOE_VERSION=1.20.0
VENV=${TAHOE_VENV:-$WORKDIR/venv}
SCENARIOS=${SCENARIOS:-"a b c d e f g"}
REAL_SERVERS=${REAL_SERVERS:-3}
REAL_K=${REAL_K:-2}
REAL_HAPPY=${REAL_HAPPY:-3}
REAL_N=${REAL_N:-3}
OURS_SERVERS=${OURS_SERVERS:-3}
OURS_K=${OURS_K:-2}
OURS_HAPPY=${OURS_HAPPY:-3}
OURS_N=${OURS_N:-3}
EXTRA_MUTABLE=${EXTRA_MUTABLE:-1}
SAME_CONVERGENCE=${SAME_CONVERGENCE:-1}
KEEP_RUNNING=${KEEP_RUNNING:-0}
SIZE_ONE_SEGMENT=300000    # fits in one 1 MiB segment
SIZE_MULTI_SEGMENT=2500000 # 3 segments; shares > 1 MB, so Tahoe PATCHes in several requests
SIZE_LIT=40                # stored inside the cap (URI:LIT), no storage traffic
READY_TIMEOUT=${READY_TIMEOUT:-60} # seconds to wait for a node to come up
CMD_TIMEOUT=${CMD_TIMEOUT:-120}    # seconds for any single CLI command

# ---------------------------------------------------------------------------------------------
# OUR SIDE'S INTERFACE: how the script drives lafs.
# ---------------------------------------------------------------------------------------------
# Written by `lafs run` on a storage node once it listens:
OUR_NURL_FILE=private/storage.nurl
OUR_ANN_FILE=private/storage-announcement.yaml # storage: {<v0-id>: {ann: {...}}}
# Tahoe-style alias file (`name: cap` per line) that `lafs alias create/add` writes:
OUR_ALIASES_FILE=private/aliases

# lafs.toml of one of our storage nodes. $1 = node dir, $2 = port.
lafs_write_storage_config() {
  cat >"$1/lafs.toml" <<EOF
[storage]
path = "storage"
servers = 1

[frontends]
sftp = false
ftp = false

[storage_server]
enabled = true
listen = "127.0.0.1:$2"
EOF
}

# lafs.toml of a gateway using a static server list. $1 = node dir, $2 = k, $3 = happy, $4 = N.
lafs_write_gateway_config() {
  cat >"$1/lafs.toml" <<EOF
[grid]
needed = $2
happy = $3
total = $4
servers_yaml = "private/servers.yaml"

[frontends]
sftp = false
ftp = false
EOF
}

lafs_init() { "$LAFS" init "$1"; }
lafs_cmd() { local node=$1; shift; "$LAFS" --node-dir "$node" "$@"; }
# `lafs put` prints the cap on stdout; the last URI: token is taken.
lafs_put() { lafs_cmd "$1" put "${@:2}"; }
lafs_get() { lafs_cmd "$1" get "$2" "$3"; }
lafs_ls() { lafs_cmd "$1" ls "$2"; }
lafs_mkdir() { lafs_cmd "$1" mkdir "$2"; }
lafs_alias_add() { lafs_cmd "$1" alias add "$2" "$3"; }
lafs_alias_create() { lafs_cmd "$1" alias create "$2"; }
# Starts a storage node in the foreground (the script backgrounds it).
lafs_run() { exec "$LAFS" --node-dir "$1" run --web-listen 127.0.0.1:0; }

# ---------------------------------------------------------------------------------------------
# Plumbing
# ---------------------------------------------------------------------------------------------
NODES=$WORKDIR/nodes
LOGS=$WORKDIR/logs
FILES=$WORKDIR/files
HELPER=$WORKDIR/interop_helper.py
PIDS=()
PASSED=0
FAILED=0
STEP=0

say() { printf '%s\n' "$*"; }
note() { printf '  .. %s\n' "$*"; }

cleanup() {
  local rc=$?
  if [ "$KEEP_RUNNING" = 1 ]; then
    say "KEEP_RUNNING=1: leaving PIDs running: ${PIDS[*]:-}"
    exit $rc
  fi
  local pid alive
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start "$@" in the background with output to log $1 (relative to $LOGS); remember its PID.
start_bg() {
  local log=$LOGS/$1
  shift
  "$@" </dev/null >"$log" 2>&1 &
  PIDS+=($!)
}

# run LABEL CMD... : run with a timeout, stdout to $OUT (a file), stderr to $ERR; returns the status.
# On failure the tail of both is printed.
OUT=
ERR=
run() {
  local label=$1
  shift
  STEP=$((STEP + 1))
  OUT=$LOGS/$(printf '%03d' $STEP)-$label.out
  ERR=$LOGS/$(printf '%03d' $STEP)-$label.err
  local rc=0
  # Through bash -c so that exported shell functions (tahoe, lafs_*, helper) work under timeout.
  timeout "$CMD_TIMEOUT" bash -c '"$@"' run "$@" >"$OUT" 2>"$ERR" || rc=$?
  if [ $rc -ne 0 ]; then
    note "command failed (exit $rc): $*"
    [ $rc -eq 124 ] && note "(timed out after ${CMD_TIMEOUT}s)"
    tail -n 15 "$OUT" | sed 's/^/     out| /'
    tail -n 25 "$ERR" | sed 's/^/     err| /'
  fi
  return $rc
}

# The last URI:... token of the last command's stdout.
cap_from_out() { grep -Eo 'URI:[A-Za-z0-9:_-]+' "$OUT" | tail -n 1; }

pass() { PASSED=$((PASSED + 1)); say "PASS $*"; }
fail() { FAILED=$((FAILED + 1)); say "FAIL $*"; }
# check NAME FUNCTION: run a check function (which returns non-zero with a note on failure).
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

same_file() {
  if cmp -s "$1" "$2"; then return 0; fi
  note "content differs: $1 ($(stat -c %s "$1") B) vs $2 ($(stat -c %s "$2" 2>/dev/null || echo missing) B)"
  return 1
}

wants() { case " $SCENARIOS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ---------------------------------------------------------------------------------------------
# Tahoe venv
# ---------------------------------------------------------------------------------------------
if ! "$VENV/bin/tahoe" --version 2>/dev/null | grep -q "tahoe-lafs/$TAHOE_VERSION"; then
  say "installing tahoe-lafs==$TAHOE_VERSION into $VENV"
  python3 -m venv "$VENV"
  # Every dependency pinned (constraints.txt is the pip freeze of a venv these tests passed
  # with): a new Twisted or cryptography release must not change what "real Tahoe 1.20" is.
  timeout 600 "$VENV/bin/pip" install -q --no-cache-dir --retries 3 -c "$(dirname "${BASH_SOURCE[0]}")/constraints.txt" \
    "tahoe-lafs==$TAHOE_VERSION"
fi
TAHOE=$VENV/bin/tahoe
PY=$VENV/bin/python
tahoe() { "$TAHOE" "$@"; }
export LAFS TAHOE PY HELPER
export -f tahoe lafs_init lafs_cmd lafs_put lafs_get lafs_ls lafs_mkdir lafs_alias_add lafs_alias_create

rm -rf "$NODES" "$LOGS" "$FILES"
mkdir -p "$NODES" "$LOGS" "$FILES"

cat >"$HELPER" <<'PYEOF'
"""Helpers for tahoe_interop.sh (run with the Tahoe venv's python)."""
import base64, hashlib, json, os, re, socket, ssl, sys, time, urllib.request
import yaml


def ports(n):
    socks = []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))


def wait_connected(url, want, timeout):
    """Wait until the Tahoe node at url sees `want` connected storage servers."""
    want, deadline, servers = int(want), time.time() + float(timeout), []
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/?t=json", timeout=5) as r:
                servers = json.load(r).get("servers", [])
            if sum(1 for s in servers if s.get("connection_status") == "connected") >= want:
                return 0
        except Exception as e:  # node still starting
            servers = [{"nodeid": "-", "connection_status": "web API not up: %s" % e}]
        time.sleep(0.5)
    print("timed out waiting for %d connected servers at %s; status:" % (want, url), file=sys.stderr)
    for s in servers:
        print("  %s %s: %s" % (s.get("nodeid"), s.get("nickname"), s.get("connection_status")), file=sys.stderr)
    return 1


def cache2servers(cache, out, want, timeout):
    """A Tahoe client's introducer cache (list of {ann, key_s}) -> servers.yaml {storage: {key_s: {ann}}}."""
    want, deadline, entries = int(want), time.time() + float(timeout), []
    while time.time() < deadline:
        try:
            with open(cache) as f:
                entries = yaml.safe_load(f) or []
        except FileNotFoundError:
            entries = []
        storage = [e for e in entries if e["ann"].get("service-name") == "storage"]
        if len(storage) >= want:
            doc = {"storage": {e["key_s"]: {"ann": e["ann"]} for e in storage}}
            with open(out, "w") as f:
                yaml.safe_dump(doc, f, default_flow_style=False)
            return 0
        time.sleep(0.5)
    print("only %d storage announcements in %s" % (len(entries), cache), file=sys.stderr)
    return 1


def merge(out, *files):
    """Merge servers.yaml-shaped documents into one."""
    storage = {}
    for fn in files:
        with open(fn) as f:
            doc = yaml.safe_load(f)
        storage.update(doc["storage"])
    with open(out, "w") as f:
        yaml.safe_dump({"storage": storage}, f, default_flow_style=False)
    return 0


def check_ann(fn):
    """Check our storage-announcement.yaml the way a 1.20 client will use it."""
    from allmydata.storage_client import _parse_announcement
    with open(fn) as f:
        doc = yaml.safe_load(f)
    problems = []
    storage = (doc or {}).get("storage")
    if not isinstance(storage, dict) or len(storage) != 1:
        print("want storage: {<server id>: {ann: {...}}} with one entry, got %r" % (doc,), file=sys.stderr)
        return 1
    (sid, entry), = storage.items()
    ann = entry.get("ann", {})
    if not re.match(r"^v0-[a-z2-7]{52}$", sid):
        problems.append("server id %r is not v0-<52 base32>" % sid)
    for k in ("anonymous-storage-FURL", "anonymous-storage-NURLs", "permutation-seed-base32"):
        if k not in ann:
            problems.append("ann has no %s" % k)
    if ann.get("service-name", "storage") != "storage":
        problems.append("service-name %r" % ann.get("service-name"))
    nurls = ann.get("anonymous-storage-NURLs") or []
    if not isinstance(nurls, list) or not nurls:
        problems.append("anonymous-storage-NURLs must be a non-empty list")
    for n in nurls if isinstance(nurls, list) else []:
        if not re.match(r"^pb://[A-Za-z0-9_-]{43}@[^/]+:\d+/[^/#]+#v=1$", str(n)):
            problems.append("odd NURL %r" % n)
    try:
        nick, seed, tubid, _, _ = _parse_announcement(sid.encode(), ann["anonymous-storage-FURL"].encode(), ann)
        if len(tubid) != 20:
            problems.append("fURL tubid decodes to %d bytes, want 20" % len(tubid))
    except Exception as e:
        problems.append("Tahoe's _parse_announcement rejects it: %r" % e)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def check_nurl(nurl):
    """Fetch /storage/v1/version like a 1.20 client: pinned TLS, headers, strict client CDDL schema."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from allmydata.storage.http_client import _SCHEMAS
    m = re.match(r"^pb://([A-Za-z0-9_-]+)@([^/:]+):(\d+)/([^#]+)#v=1$", nurl.strip())
    if not m:
        print("not a v=1 NURL: %r" % nurl, file=sys.stderr)
        return 1
    pin, host, port, swissnum = m.group(1), m.group(2), int(m.group(3)), m.group(4)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:  # no SNI, no ALPN: like Twisted's Agent
            der = s.getpeercert(binary_form=True)
            cert = x509.load_der_x509_certificate(der)
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            got = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode()
            if got != pin:
                print("certificate SPKI hash %s != NURL pin %s" % (got, pin), file=sys.stderr)
                return 1
            auth = base64.b64encode(swissnum.encode()).decode()
            s.sendall(("GET /storage/v1/version HTTP/1.1\r\nAuthorization: Tahoe-LAFS %s\r\n"
                       "Accept: application/cbor\r\nAccept-Encoding: gzip\r\nHost: %s:%d\r\n"
                       "Connection: close\r\n\r\n" % (auth, host, port)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0]
    headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    print("status: %s; content-type: %s" % (status, headers.get("content-type")))
    if " 200 " not in status + " ":
        print("want 200, got %r" % status, file=sys.stderr)
        return 1
    if headers.get("content-type", "").split(";")[0].strip() != "application/cbor":
        print("Content-Type must be application/cbor, got %r" % headers.get("content-type"), file=sys.stderr)
        return 1
    try:
        decoded = _SCHEMAS["get_version"].validate_cbor(body, True)
    except Exception as e:
        print("the 1.20 client's CDDL rejects the body %s: %s" % (body.hex(), e), file=sys.stderr)
        return 1
    print("version: %r" % (decoded,))
    return 0


def alias_cap(fn, name):
    with open(fn) as f:
        for line in f:
            if ":" in line and line.split(":", 1)[0].strip() == name:
                print(line.split(":", 1)[1].strip())
                return 0
    print("no alias %r in %s" % (name, fn), file=sys.stderr)
    return 1


def set_cfg(fn, section, key, value):
    """Set key = value in [section] of a tahoe.cfg (INI), keeping the rest."""
    import configparser
    cp = configparser.RawConfigParser()
    cp.read(fn)
    if not cp.has_section(section):
        cp.add_section(section)
    cp.set(section, key, value)
    with open(fn, "w") as f:
        cp.write(f)
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit(globals()[cmd.replace("-", "_")](*args) or 0)
PYEOF
helper() { "$PY" "$HELPER" "$@"; }
export -f helper


say "tahoe: $("$TAHOE" --version 2>&1 | head -n 1); lafs: $("$LAFS" --version 2>&1 | head -n 1)"
say "workdir: $WORKDIR (logs in $LOGS)"

NEED_REAL=0
NEED_OURS=0
for s in a b d e f g; do wants $s && NEED_REAL=1; done
wants c && NEED_OURS=1

# ---------------------------------------------------------------------------------------------
# Start nodes: the real grid and our storage nodes in parallel
# ---------------------------------------------------------------------------------------------
# tahoe_storage_node NAME  -> creates and starts a real storage node (needs $INTRO_FURL)
tahoe_storage_node() {
  local name=$1 p w
  read -r p w <<<"$(helper ports 2)"
  run "create-$name" tahoe create-node --nickname="$name" \
    --port="tcp:$p:interface=127.0.0.1" --location="tcp:127.0.0.1:$p" \
    --webport="tcp:$w:interface=127.0.0.1" --introducer="$INTRO_FURL" \
    --shares-needed="$REAL_K" --shares-happy="$REAL_HAPPY" --shares-total="$REAL_N" "$NODES/$name" || return 1
  # The default reserved_space (1G) makes a node on a nearly full disk refuse shares.
  helper set-cfg "$NODES/$name/tahoe.cfg" storage reserved_space 10M
  start_bg "$name.log" "$TAHOE" run --allow-stdin-close "$NODES/$name"
}

# tahoe_client_node NAME K HAPPY N [INTRODUCER_FURL] -> creates (not starts) a client-only node.
# Sets WEB_<NAME>.
tahoe_client_node() {
  local name=$1 k=$2 h=$3 n=$4 furl=${5:-} w
  read -r w <<<"$(helper ports 1)"
  local intro=()
  [ -n "$furl" ] && intro=(--introducer="$furl")
  run "create-$name" tahoe create-node --nickname="$name" --no-storage --listen=none \
    --webport="tcp:$w:interface=127.0.0.1" "${intro[@]}" \
    --shares-needed="$k" --shares-happy="$h" --shares-total="$n" "$NODES/$name" || return 1
  printf -v "WEB_$name" '%s' "http://127.0.0.1:$w"
}

REAL_OK=0
# set by tahoe_client_node:
WEB_tc=''
WEB_tc2=''
if [ $NEED_REAL = 1 ]; then
  read -r IP <<<"$(helper ports 1)"
  if run create-intro tahoe create-introducer --port="tcp:$IP:interface=127.0.0.1" \
    --location="tcp:127.0.0.1:$IP" "$NODES/intro"; then
    start_bg intro.log "$TAHOE" run --allow-stdin-close "$NODES/intro"
    INTRO_PID=$!
  fi
fi

OURS_STARTED=0
OUR_PIDS=()
if [ $NEED_OURS = 1 ]; then
  read -r -a OUR_PORTS <<<"$(helper ports "$OURS_SERVERS")"
  OURS_STARTED=1
  for i in $(seq 1 "$OURS_SERVERS"); do
    d=$NODES/ours$i
    if run "init-ours$i" lafs_init "$d"; then
      lafs_write_storage_config "$d" "${OUR_PORTS[$((i - 1))]}"
      start_bg "ours$i.log" lafs_run "$d"
      OUR_PIDS+=($!)
    else
      OURS_STARTED=0
    fi
  done
fi

if [ $NEED_REAL = 1 ]; then
  for _ in $(seq $((READY_TIMEOUT * 5))); do
    [ -s "$NODES/intro/private/introducer.furl" ] && break
    sleep 0.2
  done
  if [ -s "$NODES/intro/private/introducer.furl" ]; then
    INTRO_FURL=$(cat "$NODES/intro/private/introducer.furl")
    ok=1
    for i in $(seq 1 "$REAL_SERVERS"); do tahoe_storage_node "real$i" || ok=0; done
    tahoe_client_node tc "$REAL_K" "$REAL_HAPPY" "$REAL_N" "$INTRO_FURL" || ok=0
    if [ $ok = 1 ]; then
      start_bg tc.log "$TAHOE" run --allow-stdin-close "$NODES/tc"
      if run wait-tc helper wait-connected "$WEB_tc" "$REAL_SERVERS" "$READY_TIMEOUT"; then
        REAL_OK=1
      fi
    fi
  else
    note "introducer did not write its fURL; see $LOGS/intro.log"
  fi
  if [ $REAL_OK = 1 ]; then
    pass "(setup) real grid: introducer, $REAL_SERVERS storage nodes, client tc ($REAL_K-of-$REAL_N, happy $REAL_HAPPY)"
  else
    fail "(setup) real grid did not come up"
  fi
fi

# Our gateway on the real grid: servers.yaml from the real client's introducer cache.
GW_REAL=$NODES/gw-real
GW_REAL_OK=0
if [ $REAL_OK = 1 ] && { wants a || wants b || wants d; }; then
  if run init-gw-real lafs_init "$GW_REAL"; then
    lafs_write_gateway_config "$GW_REAL" "$REAL_K" "$REAL_HAPPY" "$REAL_N"
    if run servers-yaml-real helper cache2servers "$NODES/tc/private/introducer_default_cache.yaml" \
      "$GW_REAL/private/servers.yaml" "$REAL_SERVERS" "$READY_TIMEOUT"; then
      [ "$SAME_CONVERGENCE" = 1 ] && cp "$NODES/tc/private/convergence" "$GW_REAL/private/convergence"
      GW_REAL_OK=1
    fi
  fi
  if [ $GW_REAL_OK = 1 ]; then
    pass "(setup) our gateway gw-real configured with the real servers' announcements"
  else
    fail "(setup) our gateway gw-real"
  fi
fi

# Our storage nodes: wait for their announcements, then a real client and our gateway on them.
OURS_OK=0
TC2_OK=0
GW_OURS=$NODES/gw-ours
GW_OURS_OK=0
if [ $NEED_OURS = 1 ]; then
  if [ $OURS_STARTED = 1 ]; then
    missing=()
    for _ in $(seq $((READY_TIMEOUT * 5))); do
      missing=()
      for i in $(seq 1 "$OURS_SERVERS"); do
        [ -s "$NODES/ours$i/$OUR_ANN_FILE" ] || missing+=("ours$i")
      done
      [ ${#missing[@]} = 0 ] && break
      # Stop waiting early if one of them exited.
      dead=()
      for i in "${!OUR_PIDS[@]}"; do kill -0 "${OUR_PIDS[$i]}" 2>/dev/null || dead+=("ours$((i + 1))"); done
      if [ ${#dead[@]} -gt 0 ]; then
        note "exited early: ${dead[*]}"
        break
      fi
      sleep 0.2
    done
    if [ ${#missing[@]} = 0 ]; then
      OURS_OK=1
      pass "(setup) our $OURS_SERVERS storage nodes wrote $OUR_ANN_FILE"
    else
      fail "(setup) our storage nodes: no $OUR_ANN_FILE from ${missing[*]} after ${READY_TIMEOUT}s"
      for m in "${missing[@]}"; do tail -n 20 "$LOGS/$m.log" | sed "s/^/     $m| /"; done
    fi
  else
    fail "(setup) our storage nodes: lafs init failed"
  fi

  if [ $OURS_OK = 1 ]; then
    for i in $(seq 1 "$OURS_SERVERS"); do
      d=$NODES/ours$i
      check "(c0) ours$i: announcement is what a 1.20 client can use" \
        run "check-ann-ours$i" helper check-ann "$d/$OUR_ANN_FILE"
      if [ -s "$d/$OUR_NURL_FILE" ]; then
        check "(c0) ours$i: /storage/v1/version over pinned TLS passes the 1.20 client's schema" \
          run "check-nurl-ours$i" helper check-nurl "$(head -n 1 "$d/$OUR_NURL_FILE")"
      else
        fail "(c0) ours$i: no $OUR_NURL_FILE"
      fi
    done
    ANNS=()
    for i in $(seq 1 "$OURS_SERVERS"); do ANNS+=("$NODES/ours$i/$OUR_ANN_FILE"); done

    # Real client tc2: no introducer, servers.yaml = our announcements.
    if tahoe_client_node tc2 "$OURS_K" "$OURS_HAPPY" "$OURS_N" &&
      run servers-yaml-tc2 helper merge "$NODES/tc2/private/servers.yaml" "${ANNS[@]}"; then
      start_bg tc2.log "$TAHOE" run --allow-stdin-close "$NODES/tc2"
      if run wait-tc2 helper wait-connected "$WEB_tc2" "$OURS_SERVERS" "$READY_TIMEOUT"; then
        TC2_OK=1
        pass "(setup) real client tc2 connected to our $OURS_SERVERS storage nodes over HTTPS"
      else
        fail "(setup) real client tc2 did not see our storage nodes as connected (status above)"
      fi
    else
      fail "(setup) real client tc2"
    fi

    # Our gateway gw-ours: servers.yaml = our announcements.
    if run init-gw-ours lafs_init "$GW_OURS"; then
      lafs_write_gateway_config "$GW_OURS" "$OURS_K" "$OURS_HAPPY" "$OURS_N"
      run servers-yaml-gw-ours helper merge "$GW_OURS/private/servers.yaml" "${ANNS[@]}" && GW_OURS_OK=1
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------
# put with $1 (lafs node or tahoe node dir) ... each returns the cap in $CAP.
CAP=
our_put() { run "$3" lafs_put "$1" "$2" || return 1; CAP=$(cap_from_out); [ -n "$CAP" ] || { note "no cap in lafs put output"; return 1; }; }
tahoe_put() { run "$3" tahoe -d "$1" put "${@:4}" "$2" || return 1; CAP=$(cap_from_out); [ -n "$CAP" ] || { note "no cap in tahoe put output"; return 1; }; }

# (a) our gateway puts to the real servers; tahoe gets.
a_one() { # $1 = size, $2 = name
  head -c "$1" /dev/urandom >"$FILES/$2"
  A_CAP=
  our_put "$GW_REAL" "$FILES/$2" "a-put-$2" || return 1
  note "lafs put $2 -> $CAP"
  A_CAP=$CAP
  run "a-get-$2" tahoe -d "$NODES/tc" get "$CAP" "$FILES/$2.tahoe" || return 1
  same_file "$FILES/$2" "$FILES/$2.tahoe"
}
a_same_cap() { # tahoe put of the file we already put must give the same cap (same convergence)
  tahoe_put "$NODES/tc" "$FILES/a.bin" a-same-cap || return 1
  [ "$CAP" = "$A_CAP_ONE" ] && return 0
  note "tahoe: $CAP"
  note "lafs:  $A_CAP_ONE"
  return 1
}
A_CAP=
A_CAP_ONE=
if wants a; then
  if [ $GW_REAL_OK = 1 ]; then
    check "(a) lafs put (gateway on real Tahoe storage) of $SIZE_ONE_SEGMENT B -> tahoe get identical" a_one $SIZE_ONE_SEGMENT a.bin
    A_CAP_ONE=$A_CAP
    check "(a) lafs put of $SIZE_MULTI_SEGMENT B (multi-segment) -> tahoe get identical" a_one $SIZE_MULTI_SEGMENT a-multi.bin
    check "(a) lafs put of $SIZE_LIT B (LIT) -> tahoe get identical" a_one $SIZE_LIT a-lit.bin
    if [ "$SAME_CONVERGENCE" = 1 ] && [ -n "$A_CAP_ONE" ]; then
      check "(a) with the same convergence secret, tahoe put gives the same cap as lafs put" a_same_cap
    fi
  else
    fail "(a) skipped: no real grid / gateway"
  fi
fi

# (b) tahoe puts to the real grid; our gateway gets.
b_one() { # $1 = size, $2 = name, rest = extra tahoe put options
  head -c "$1" /dev/urandom >"$FILES/$2"
  tahoe_put "$NODES/tc" "$FILES/$2" "b-put-$2" "${@:3}" || return 1
  note "tahoe put $2${3:+ ${*:3}} -> $CAP"
  run "b-get-$2" lafs_get "$GW_REAL" "$CAP" "$FILES/$2.lafs" || return 1
  same_file "$FILES/$2" "$FILES/$2.lafs"
}
if wants b; then
  if [ $REAL_OK = 1 ]; then
    check "(b) tahoe put of $SIZE_ONE_SEGMENT B -> lafs get identical" b_one $SIZE_ONE_SEGMENT b.bin
    check "(b) tahoe put of $SIZE_MULTI_SEGMENT B (multi-segment) -> lafs get identical" b_one $SIZE_MULTI_SEGMENT b-multi.bin
    check "(b) tahoe put of $SIZE_LIT B (LIT) -> lafs get identical" b_one $SIZE_LIT b-lit.bin
    if [ "$EXTRA_MUTABLE" = 1 ]; then
      check "(b) tahoe put --mutable (SDMF) -> lafs get identical" b_one 5000 b-sdmf.bin --mutable
      check "(b) tahoe put --mutable --format=MDMF -> lafs get identical" b_one $SIZE_ONE_SEGMENT b-mdmf.bin --mutable --format=MDMF
    fi
  else
    fail "(b) skipped: no real grid"
  fi
fi

# (c) real client tc2 on our storage nodes; our gateway gw-ours on the same nodes.
C_CAPS=()
c_one() { # $1 = size, $2 = name, rest = extra tahoe put options
  head -c "$1" /dev/urandom >"$FILES/$2"
  tahoe_put "$NODES/tc2" "$FILES/$2" "c-put-$2" "${@:3}" || return 1
  note "tahoe put $2 (to our storage) -> $CAP"
  C_CAPS+=("$CAP:$2")
  run "c-get-$2" tahoe -d "$NODES/tc2" get "$CAP" "$FILES/$2.tahoe" || return 1
  same_file "$FILES/$2" "$FILES/$2.tahoe"
}
c_ours_read() {
  local entry cap name
  [ ${#C_CAPS[@]} -gt 0 ] || { note "no caps from the steps before"; return 1; }
  for entry in "${C_CAPS[@]}"; do
    cap=${entry%:*}
    name=${entry##*:}
    run "c-lafs-get-$name" lafs_get "$GW_OURS" "$cap" "$FILES/$name.lafs" || return 1
    same_file "$FILES/$name" "$FILES/$name.lafs" || return 1
  done
}
c_check() { # verify every block and add a lease through our servers (PUT /lease)
  local entry=${C_CAPS[0]:-}
  [ -n "$entry" ] || return 1
  run c-check tahoe -d "$NODES/tc2" check --verify --add-lease "${entry%:*}" || return 1
  # "Summary: Not Healthy" contains "Healthy" too, and tahoe check exits 0 either way.
  grep -qx " *Summary: Healthy" "$OUT" && grep -q "good-shares: $OURS_N " "$OUT" \
    || { note "not healthy:"; sed 's/^/     | /' "$OUT"; return 1; }
}
c_mdmf_update() { # a new version, longer than the first: shares grow past their old end
  local entry cap
  for entry in "${C_CAPS[@]}"; do [ "${entry##*:}" = c-mdmf.bin ] && cap=${entry%:*}; done
  [ -n "${cap:-}" ] || { note "no MDMF cap from the step before"; return 1; }
  head -c $((SIZE_MULTI_SEGMENT + 700000)) /dev/urandom >"$FILES/c-mdmf2.bin"
  run c-put-mdmf2 tahoe -d "$NODES/tc2" put "$FILES/c-mdmf2.bin" "$cap" || return 1
  run c-get-mdmf2 tahoe -d "$NODES/tc2" get "$cap" "$FILES/c-mdmf2.bin.tahoe" || return 1
  same_file "$FILES/c-mdmf2.bin" "$FILES/c-mdmf2.bin.tahoe" || return 1
  # Later steps read every cap in C_CAPS with lafs get: they must find the new contents.
  cp "$FILES/c-mdmf2.bin" "$FILES/c-mdmf.bin"
}
c_dirs() { # mutable: dirnode create + update + list, all against our storage
  run c-mkdir tahoe -d "$NODES/tc2" mkdir || return 1
  local dir
  dir=$(cap_from_out)
  head -c 1000 /dev/urandom >"$FILES/c-in-dir.bin"
  run c-put-in-dir tahoe -d "$NODES/tc2" put "$FILES/c-in-dir.bin" "$dir/c-in-dir.bin" || return 1
  run c-put-in-dir2 tahoe -d "$NODES/tc2" put "$FILES/c.bin" "$dir/second.bin" || return 1
  run c-ls tahoe -d "$NODES/tc2" ls "$dir" || return 1
  grep -qx "c-in-dir.bin" "$OUT" && grep -qx "second.bin" "$OUT" || { note "tahoe ls lacks the names"; return 1; }
  C_DIR=$dir
}
c_dirs_ours() {
  [ -n "${C_DIR:-}" ] || return 1
  run c-alias-add lafs_alias_add "$GW_OURS" cdir "$C_DIR" || return 1
  run c-lafs-ls lafs_ls "$GW_OURS" "cdir:" || return 1
  grep -q "second.bin" "$OUT" && grep -q "c-in-dir.bin" "$OUT" || { note "lafs ls lacks the names"; return 1; }
}
c_our_put() { # our gateway writes to our storage; the real client reads it
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/c-ours.bin"
  our_put "$GW_OURS" "$FILES/c-ours.bin" c-ours-put || return 1
  run c-ours-get tahoe -d "$NODES/tc2" get "$CAP" "$FILES/c-ours.bin.tahoe" || return 1
  same_file "$FILES/c-ours.bin" "$FILES/c-ours.bin.tahoe"
}
if wants c; then
  if [ $TC2_OK = 1 ]; then
    check "(c) tahoe put/get of $SIZE_ONE_SEGMENT B through our storage nodes identical" c_one $SIZE_ONE_SEGMENT c.bin
    check "(c) tahoe put/get of $SIZE_MULTI_SEGMENT B (multi-PATCH shares) through our storage identical" c_one $SIZE_MULTI_SEGMENT c-multi.bin
    check "(c) tahoe check --verify --add-lease against our storage: Healthy" c_check
    check "(c) tahoe put --mutable (SDMF) / get through our storage identical" c_one 5000 c-sdmf.bin --mutable
    check "(c) tahoe put --mutable --format=MDMF of $SIZE_MULTI_SEGMENT B / get through our storage identical" \
      c_one $SIZE_MULTI_SEGMENT c-mdmf.bin --mutable --format=MDMF
    check "(c) tahoe put replacing the MDMF file's contents (longer) through our storage identical" c_mdmf_update
    check "(c) tahoe mkdir + 2 puts into it + ls against our storage (mutable RTW)" c_dirs
  else
    fail "(c) skipped: real client tc2 not connected to our storage nodes"
  fi
  if [ $GW_OURS_OK = 1 ] && [ $TC2_OK = 1 ]; then
    check "(c) lafs get (gateway on our storage) of tahoe's caps identical" c_ours_read
    check "(c) lafs ls of tahoe's directory on our storage" c_dirs_ours
    check "(c) lafs put to our storage -> tahoe get identical" c_our_put
  elif [ $GW_OURS_OK != 1 ]; then
    fail "(c) skipped: our gateway gw-ours not configured"
  fi
fi

# (d) directories both ways on the real grid.
d_tahoe_dir() {
  run d-mkdir tahoe -d "$NODES/tc" mkdir || return 1
  local dir
  dir=$(cap_from_out)
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/d-tahoe.bin"
  run d-put tahoe -d "$NODES/tc" put "$FILES/d-tahoe.bin" "$dir/from-tahoe.bin" || return 1
  run d-alias-add lafs_alias_add "$GW_REAL" tdir "$dir" || return 1
  run d-lafs-ls lafs_ls "$GW_REAL" "tdir:" || return 1
  grep -q "from-tahoe.bin" "$OUT" || { note "lafs ls lacks from-tahoe.bin:"; sed 's/^/     | /' "$OUT"; return 1; }
  run d-lafs-get lafs_get "$GW_REAL" "tdir:from-tahoe.bin" "$FILES/d-tahoe.bin.lafs" || return 1
  same_file "$FILES/d-tahoe.bin" "$FILES/d-tahoe.bin.lafs"
}
d_our_dir() {
  run d-alias-create lafs_alias_create "$GW_REAL" ours || return 1
  run d-alias-cap helper alias-cap "$GW_REAL/$OUR_ALIASES_FILE" ours || return 1
  local root
  root=$(head -n 1 "$OUT")
  note "our directory: $root"
  run d-lafs-mkdir lafs_mkdir "$GW_REAL" ours:sub || return 1
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/d-ours.bin"
  run d-lafs-put lafs_put "$GW_REAL" "$FILES/d-ours.bin" ours:sub/from-lafs.bin || return 1
  run d-tahoe-ls tahoe -d "$NODES/tc" ls "$root/sub" || return 1
  grep -qx "from-lafs.bin" "$OUT" || { note "tahoe ls lacks from-lafs.bin:"; sed 's/^/     | /' "$OUT"; return 1; }
  run d-tahoe-get tahoe -d "$NODES/tc" get "$root/sub/from-lafs.bin" "$FILES/d-ours.bin.tahoe" || return 1
  same_file "$FILES/d-ours.bin" "$FILES/d-ours.bin.tahoe" || return 1
  # Tahoe now updates the directory we made; we must see its entry next to ours.
  run d-tahoe-put-ours tahoe -d "$NODES/tc" put "$FILES/d-tahoe.bin" "$root/sub/from-tahoe.bin" || return 1
  run d-lafs-ls-after lafs_ls "$GW_REAL" ours:sub || return 1
  grep -q "from-tahoe.bin" "$OUT" && grep -q "from-lafs.bin" "$OUT" ||
    { note "lafs ls after tahoe's update lacks an entry:"; sed 's/^/     | /' "$OUT"; return 1; }
}
if wants d; then
  if [ $GW_REAL_OK = 1 ]; then
    check "(d) tahoe mkdir + put into it -> lafs ls lists it, lafs get identical" d_tahoe_dir
    check "(d) lafs alias create + mkdir + put -> tahoe ls/get; tahoe adds an entry -> lafs ls sees both" d_our_dir
  else
    fail "(d) skipped: no real grid / gateway"
  fi
fi

# (e) our gateway knows only the introducer's fURL; (f) our storage node publishes to it.
GW_INTRO=$NODES/gw-intro
e_setup() {
  run init-gw-intro lafs_init "$GW_INTRO" || return 1
  cat >"$GW_INTRO/lafs.toml" <<EOF
[grid]
needed = $REAL_K
happy = $REAL_HAPPY
total = $REAL_N

[frontends]
sftp = false
ftp = false
EOF
  cp "$NODES/tc/private/introducers.yaml" "$GW_INTRO/private/introducers.yaml"
}
e_put() {
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/e.bin"
  our_put "$GW_INTRO" "$FILES/e.bin" e-put || return 1
  run e-tahoe-get tahoe -d "$NODES/tc" get "$CAP" "$FILES/e.bin.tahoe" || return 1
  same_file "$FILES/e.bin" "$FILES/e.bin.tahoe" || return 1
  local cached
  cached=$(grep -c '^  key_s: v0-' "$GW_INTRO/private/introducer_default_cache.yaml" || true)
  [ "$cached" -ge "$REAL_SERVERS" ] || { note "the introducer cache holds $cached servers"; return 1; }
  run e-status lafs_cmd "$GW_INTRO" status || return 1
  [ "$(grep -c '; connected$' "$OUT")" -ge "$REAL_SERVERS" ] || { note "lafs status:"; sed 's/^/     | /' "$OUT"; return 1; }
}
e_get() {
  head -c 5000 /dev/urandom >"$FILES/e2.bin"
  tahoe_put "$NODES/tc" "$FILES/e2.bin" e-tahoe-put || return 1
  run e-lafs-get lafs_get "$GW_INTRO" "$CAP" "$FILES/e2.bin.lafs" || return 1
  same_file "$FILES/e2.bin" "$FILES/e2.bin.lafs"
}
shares_under() { find "$1" -path '*/shares/*/*/*' -type f 2>/dev/null | wc -l; }
f_publish() {
  local d=$NODES/ours-pub p before
  read -r p <<<"$(helper ports 1)"
  run init-ours-pub lafs_init "$d" || return 1
  lafs_write_storage_config "$d" "$p"
  cp "$NODES/tc/private/introducers.yaml" "$d/private/introducers.yaml"
  start_bg ours-pub.log lafs_run "$d"
  # Happy = every server: the real client must place a share on ours-pub too.
  tahoe_client_node tc3 "$REAL_K" $((REAL_SERVERS + 1)) $((REAL_SERVERS + 1)) "$INTRO_FURL" || return 1
  start_bg tc3.log "$TAHOE" run --allow-stdin-close "$NODES/tc3"
  run wait-tc3 helper wait-connected "$WEB_tc3" $((REAL_SERVERS + 1)) "$READY_TIMEOUT" || return 1
  run f-status lafs_cmd "$d" status || return 1
  grep -q "lafs run connected" "$OUT" || { note "lafs status:"; sed 's/^/     | /' "$OUT"; return 1; }
  before=$(shares_under "$d")
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/f.bin"
  tahoe_put "$NODES/tc3" "$FILES/f.bin" f-put || return 1
  [ "$(shares_under "$d")" -gt "$before" ] || { note "no share landed on ours-pub"; return 1; }
  run f-get tahoe -d "$NODES/tc3" get "$CAP" "$FILES/f.bin.tahoe" || return 1
  same_file "$FILES/f.bin" "$FILES/f.bin.tahoe"
}
e_introducer_down() {
  kill -TERM "$INTRO_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$INTRO_PID" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$INTRO_PID" 2>/dev/null && { note "the introducer did not stop"; return 1; }
  head -c 5000 /dev/urandom >"$FILES/e3.bin"
  our_put "$GW_INTRO" "$FILES/e3.bin" e3-put || return 1
  run e3-tahoe-get tahoe -d "$NODES/tc" get "$CAP" "$FILES/e3.bin.tahoe" || return 1
  same_file "$FILES/e3.bin" "$FILES/e3.bin.tahoe"
}
g_our_introducer() {
  local d=$NODES/our-intro p furl real_furl=$INTRO_FURL
  read -r p <<<"$(helper ports 1)"
  run init-our-intro lafs_init "$d" || return 1
  cat >"$d/lafs.toml" <<EOF
[frontends]
sftp = false
ftp = false

[introducer]
enabled = true
listen = "127.0.0.1:$p"
EOF
  start_bg our-intro.log lafs_run "$d"
  for _ in $(seq $((READY_TIMEOUT * 5))); do
    [ -s "$d/private/introducer.furl" ] && break
    sleep 0.2
  done
  [ -s "$d/private/introducer.furl" ] || { note "our introducer wrote no fURL"; tail -n 20 "$LOGS/our-intro.log"; return 1; }
  furl=$(cat "$d/private/introducer.furl")
  INTRO_FURL=$furl
  tahoe_storage_node gs1 && tahoe_storage_node gs2 || { INTRO_FURL=$real_furl; return 1; }
  INTRO_FURL=$real_furl
  tahoe_client_node tc4 1 2 2 "$furl" || return 1
  start_bg tc4.log "$TAHOE" run --allow-stdin-close "$NODES/tc4"
  run wait-tc4 helper wait-connected "$WEB_tc4" 2 "$READY_TIMEOUT" || return 1
  head -c $SIZE_ONE_SEGMENT /dev/urandom >"$FILES/g.bin"
  tahoe_put "$NODES/tc4" "$FILES/g.bin" g-put || return 1
  run g-get tahoe -d "$NODES/tc4" get "$CAP" "$FILES/g.bin.tahoe" || return 1
  same_file "$FILES/g.bin" "$FILES/g.bin.tahoe"
}
if wants e || wants f || wants g; then
  if [ $REAL_OK = 1 ]; then
    if wants e; then
      if e_setup; then
        check "(e) gateway with only the introducer's fURL: lafs put -> tahoe get identical, cache written, lafs status lists the servers connected" e_put
        check "(e) gateway with only the introducer's fURL: tahoe put -> lafs get identical" e_get
      else
        fail "(e) gateway gw-intro setup"
      fi
    fi
    wants f && check "(f) our storage node published through the real introducer holds a real client's share; tahoe get identical" f_publish
    wants g && check "(g) real storage nodes and a real client on OUR introducer find each other; tahoe put/get identical" g_our_introducer
    wants e && check "(e) introducer stopped: lafs put (servers from the cache) -> tahoe get identical" e_introducer_down
  else
    fail "(e)(f)(g) skipped: no real grid"
  fi
fi

say "$PASSED passed, $FAILED failed"
[ $FAILED = 0 ]
