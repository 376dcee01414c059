#!/usr/bin/env bash
# Makes one of the Python venvs the tests drive, under target/, unless it is already there:
#   tahoe     target/tahoe-venv: tahoe-lafs 1.20.0, every dependency pinned by tests/interop/constraints.txt
#   paramiko  target/test-venv: the pins of tests/python-requirements.txt (a marker file records them)
# The test helpers (tests/integration/common/{tahoe,python}.rs) call it on first use; .ci/run calls it
# early, in the background, so the downloads overlap the compile. A lock file beside each venv
# lets one caller build it while the others wait.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
case "${1:-}" in
  tahoe)
    venv=target/tahoe-venv
    exec 9>target/tahoe-venv.lock
    flock 9
    if "$venv/bin/tahoe" --version 2>/dev/null | grep -q "tahoe-lafs/1.20.0"; then exit 0; fi
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check --retries 3 \
      -c tests/interop/constraints.txt tahoe-lafs==1.20.0
    ;;
  paramiko)
    venv=target/test-venv
    exec 9>target/test-venv.lock
    flock 9
    if cmp -s tests/python-requirements.txt "$venv/lafs-requirements.txt"; then exit 0; fi
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check --retries 3 \
      -r tests/python-requirements.txt
    cp tests/python-requirements.txt "$venv/lafs-requirements.txt"
    ;;
  *)
    echo "usage: $0 tahoe|paramiko" >&2
    exit 2
    ;;
esac
