#!/bin/sh
# Runs one fuzz target for SECONDS (niced), then prints its executions, time and findings.
#   fuzz/run.sh TARGET SECONDS        e.g. fuzz/run.sh sftp_packets 600
#   FUZZ_REPLAY=<hex> fuzz/run.sh TARGET 0   runs one saved input alone
# Targets: sftp_packets ftp_commands http_cbor http_headers accounts caps servers_yaml shares banana negotiation
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 TARGET SECONDS" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
FUZZ_SECONDS="$2" exec nice -n 19 cargo test --quiet --test fuzz -- --exact "$1" --nocapture
