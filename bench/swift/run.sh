#!/usr/bin/env bash
# Swift per-call overhead (issue 18): `Router.chat` against the loopback mock, interleaved
# with a raw blocking socket, back to back and with a 1 ms idle gap. Prints Markdown tables.
#
#   bash bench/swift/run.sh [N]          # N calls per row back to back (default 3000), N/3 with the gap
#   bash bench/swift/run.sh N --json     # the Swift layer's JSON work alone, part by part, N times each
#                                        # (POLYROUTE_BENCH_ONLY=TEXT: only the parts whose name contains TEXT)
#
# Builds the Rust library and the mock server in release mode, stages the static library in
# bench/swift/lib (what the package links, through POLYROUTE_FFI_LIB_DIR), and runs
# `swift run -c release` inside the Swift chroot (bindings-swift/scripts/swift-env.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cd "$ROOT"
cargo build -q --release -p polyroute-ffi -p polyroute-mock-server
mkdir -p "$HERE/lib"
cmp -s "$CARGO_TARGET_DIR/release/libpolyroute_ffi.a" "$HERE/lib/libpolyroute_ffi.a" \
  || { cp "$CARGO_TARGET_DIR/release/libpolyroute_ffi.a" "$HERE/lib/"; rm -rf "$HERE"/.build/*/release/PolyrouteBench; }
"$ROOT/bindings-swift/scripts/swift-env.sh" setup

coproc MOCK { exec "$CARGO_TARGET_DIR/release/polyroute-mock-server" --port 0 --log-capacity 0; }
trap 'kill "$MOCK_PID" 2>/dev/null || true' EXIT
read -r -t 30 line <&"${MOCK[0]}" && [[ $line == LISTENING* ]] || { echo "mock server did not start: ${line:-}" >&2; exit 1; }
export POLYROUTE_MOCK_URL=${line#LISTENING }
export POLYROUTE_FFI_LIB_DIR=/work/repo/bench/swift/lib # the repo's path inside the chroot

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$ROOT/bindings-swift/scripts/swift-env.sh" run bench/swift swift build -q -c release
[ $# -gt 0 ] || set -- 3000
"$ROOT/bindings-swift/scripts/swift-env.sh" run bench/swift .build/release/PolyrouteBench "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
