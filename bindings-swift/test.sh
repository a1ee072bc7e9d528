#!/usr/bin/env bash
# bindings-swift/test.sh: the Swift binding's one-command test entry point.
#
# 1. Rust: build polyroute-ffi (static lib) and the mock server, run the crate's unit tests.
# 2. Prove the committed generated bindings match the library (scripts/generate.sh --check),
#    stage lib/libpolyroute_ffi.a for SwiftPM.
# 3. Swift toolchain: Debian trixie's swiftlang in a chroot (scripts/swift-env.sh, idempotent;
#    the first run downloads it, later runs reuse it).
# 4. Start the mock server on the host (the chroot shares the network namespace), pass its URL
#    in POLYROUTE_MOCK_URL, run `swift test` inside the chroot.
# 5. The consumer test (scripts/consumer-test.sh): a separate package depends on the root
#    Package.swift by URL, as a remote source-control package, builds with `swift build` and
#    runs a failover (20-30 s).
# Extra arguments go to `swift test` (e.g. `--filter ErrorTests`); with any, step 5 is skipped.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=never
step() { printf '\n==> [swift] %s\n' "$*"; }

cd "$ROOT"
step "Rust: polyroute-ffi unit tests, mock server build"
cargo test -q -p polyroute-ffi --lib
cargo build -q -p polyroute-mock-server

step "Generated bindings are current; staging the static library"
"$HERE/scripts/generate.sh" --check

step "Swift toolchain (chroot)"
"$HERE/scripts/swift-env.sh" setup

step "Mock server"
MOCK_OUT=$(mktemp)
# Its stdin is a pipe held by this script: when we exit for any reason, it sees EOF and exits.
coproc MOCK { exec "$CARGO_TARGET_DIR/debug/polyroute-mock-server" --port 0 2>"$MOCK_OUT"; }
trap 'kill "$MOCK_PID" 2>/dev/null || true; rm -f "$MOCK_OUT"' EXIT
if ! read -r -t 30 line <&"${MOCK[0]}" || [[ $line != LISTENING* ]]; then
  echo "mock server did not start: ${line:-no output}" >&2
  cat "$MOCK_OUT" >&2
  exit 1
fi
export POLYROUTE_MOCK_URL=${line#LISTENING }
echo "mock server at $POLYROUTE_MOCK_URL"

step "swift test"
# Swift Testing is off: the suite is XCTest, and its empty "0 tests passed" line would only confuse.
"$HERE/scripts/swift-env.sh" run bindings-swift swift test --disable-swift-testing "$@"

if [ $# = 0 ]; then
  step "Consumer package: Polyroute as a URL dependency (root Package.swift, pkg-config)"
  "$HERE/scripts/consumer-test.sh"
fi
