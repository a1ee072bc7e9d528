#!/usr/bin/env bash
# Instructions per Swift sync call on the Rust side (issue 18), counted by callgrind: the
# request's JSON parsed, the routed call, the answer written as JSON text and dropped
# (bindings-swift/examples/ffi_calls.rs), and the parts of it. Both sync methods:
# `chatJsonBlocking` (the whole answer as text) and `chatAnswerBlocking` (what the typed
# `chatBlocking` calls: the trace kept, unwritten). Deterministic where the VM's timings
# swing; the Swift half is timed by run.sh.
#
#   bash bench/swift/callgrind.sh [N]      # N calls of each (default 2000)
#
# Needs valgrind (Debian package `valgrind`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
N=${1:-2000}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
cd "$ROOT"
cargo build -q --release -p polyroute-mock-server -p polyroute-ffi --example ffi_calls
coproc MOCK { exec "$CARGO_TARGET_DIR/release/polyroute-mock-server" --port 0 --log-capacity 0; }
trap 'kill "$MOCK_PID" 2>/dev/null || true' EXIT
read -r -t 30 line <&"${MOCK[0]}" && [[ $line == LISTENING* ]] || { echo "mock server did not start: ${line:-}" >&2; exit 1; }
out=$(mktemp)
trap 'kill "$MOCK_PID" 2>/dev/null || true; rm -f "$out"' EXIT
for call in json answer; do
  FFI_CALL=$call POLYROUTE_MOCK_URL=${line#LISTENING } valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect='ffi_calls::calls' --callgrind-out-file="$out" \
    "$CARGO_TARGET_DIR/release/examples/ffi_calls" "$N" >/dev/null 2>&1
  echo "-- FFI_CALL=$call"
  callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | python3 -c '
import re, sys
n = int(sys.argv[1])
labels = {
    "PROGRAM TOTALS": "a call, whole (answer dropped included)",
    "polyroute::bridge::request_from_json": "  request parsed (request_from_json)",
    "polyroute::router::Router::chat::{{closure}}": "  Router::chat",
    "polyroute::bridge::to_json": "  answer written as JSON text (to_json)",
    "polyroute::types::trace::_::<impl serde_core::ser::Serialize for polyroute::types::trace::RouteTrace>::serialize": "    of which the trace",
}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:\?\?\?:)?(.+?)(?: \[|$)", line)
    if m and m.group(2).strip() in labels:
        count = int(m.group(1).replace(",", "")) // n
        print(labels[m.group(2).strip()] + ": " + str(count) + " instructions per call")
' "$N"
done
