#!/usr/bin/env bash
# Instructions per Swift sync call on the Rust side (issue 18), counted by callgrind: the
# request's JSON parsed, the routed call, the answer written as JSON text
# (`polyroute_ffi::Router::chat_json_blocking`, bindings-swift/examples/ffi_calls.rs), and
# the part of it that writes the answer (`polyroute::bridge::to_json`). Deterministic where
# the VM's timings swing; the Swift half is timed by run.sh.
#
#   bash bench/swift/callgrind.sh [N]      # N calls (default 2000)
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
POLYROUTE_MOCK_URL=${line#LISTENING } valgrind --tool=callgrind --collect-atstart=no \
  --toggle-collect='polyroute_ffi::Router::chat_json_blocking' --callgrind-out-file="$out" \
  "$CARGO_TARGET_DIR/release/examples/ffi_calls" "$N" >/dev/null 2>&1
callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null | python3 -c '
import re, sys
n = int(sys.argv[1])
labels = {
    "PROGRAM TOTALS": "chat_json_blocking, whole",
    "polyroute::bridge::request_from_json": "  request parsed (request_from_json)",
    "polyroute::router::Router::chat::{{closure}}": "  Router::chat",
    "polyroute::bridge::to_json": "  answer written as JSON text (to_json)",
}
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:\?\?\?:)?(\S+(?: TOTALS)?)", line)
    if m and m.group(2) in labels:
        count = int(m.group(1).replace(",", "")) // n
        print(labels[m.group(2)] + ": " + str(count) + " instructions per call")
' "$N"
rm -f "$out"
