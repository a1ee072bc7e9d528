#!/usr/bin/env bash
# Issue 18's targets in one run (bench/targets.py has what it runs and how it judges):
#
#   bash bench/targets.sh            # ~4 minutes on a 2-core machine, after the builds
#   bash bench/targets.sh --runs 3   # each figure the median of three runs (~12 minutes): the record
#   bash bench/targets.sh --quick    # short runs, to check the harness
#   bash bench/targets.sh --skip swift   # e.g. where the Swift chroot is not set up
#
# Builds what the benches run (release: the Rust examples and the mock server; the Python
# bench venv with polyroute built into it; the Node addon; the Swift bench in its chroot, on
# its first step), then runs them one after the other and prints the targets table. Run it on
# an otherwise idle machine: the report states the load average before and after each bench.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cd "$ROOT"
cargo build -q --release -p polyroute-mock-server -p polyroute --example bench_overhead --example bench_stream
bash "$HERE/python/run.sh" --setup
exec "$HERE/python/.venv/bin/python" "$HERE/targets.py" "$@"
