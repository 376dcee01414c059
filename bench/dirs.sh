#!/usr/bin/env bash
# Directory benchmarks (issue 3): 10,000-entry listing, mkdir with a warm key pool, stat 5 levels deep.
#   bench/dirs.sh        BENCH_DIR=/path bench/dirs.sh (where the grid lives; default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --quiet --example dir_bench
