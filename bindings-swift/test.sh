#!/usr/bin/env bash
# bindings-swift/test.sh: the Swift binding's one-command test entry point.
#
# 1. Rust: build polyroute-ffi (static lib) and the mock server, run the crate's unit tests.
# 2. Prove the committed generated bindings match the library (scripts/generate.sh --check),
#    stage lib/libpolyroute_ffi.a for SwiftPM.
# 3. Swift toolchain: Debian trixie's swiftlang in a chroot (scripts/swift-env.sh, idempotent;
#    the first run downloads it, later runs reuse it).
# 4. Start the mock server and a throwaway redis-server (random port, no persistence) on the
#    host (the chroot shares the network namespace), pass their URLs in POLYROUTE_MOCK_URL and
#    POLYROUTE_TEST_REDIS_URL, run `swift test` inside the chroot.
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

step "redis-server (FleetTests)"
# On the host like the mock server: random loopback port, no persistence, killed on exit.
REDIS_BIN=$(command -v redis-server || echo /usr/bin/redis-server)
if [ ! -x "$REDIS_BIN" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  REDIS_BIN=/usr/bin/redis-server
fi
REDIS_PID=
REDIS_OUT=$(mktemp)
trap 'kill "$MOCK_PID" 2>/dev/null || true; [ -z "$REDIS_PID" ] || kill "$REDIS_PID" 2>/dev/null || true; rm -f "$MOCK_OUT" "$REDIS_OUT"' EXIT
redis_ping() { # PING over bash's /dev/tcp, so no redis-cli is needed
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3
  local reply=
  read -r -t 1 reply <&3 || true
  exec 3<&- 3>&-
  [[ $reply == +PONG* ]]
}
for attempt in 1 2 3 4 5; do
  REDIS_PORT=$((20000 + RANDOM % 40000)) # a taken port makes redis exit: the next attempt picks another
  "$REDIS_BIN" --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >"$REDIS_OUT" 2>&1 </dev/null &
  REDIS_PID=$!
  disown "$REDIS_PID" # no "Killed" job notice when the trap stops it
  for _ in $(seq 100); do
    redis_ping "$REDIS_PORT" && break
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.1
  done
  if redis_ping "$REDIS_PORT"; then break; fi
  kill -9 "$REDIS_PID" 2>/dev/null || true
  REDIS_PID=
done
if [ -z "$REDIS_PID" ]; then
  echo "redis-server did not start:" >&2
  tail -5 "$REDIS_OUT" >&2
  exit 1
fi
export POLYROUTE_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
echo "redis-server at $POLYROUTE_TEST_REDIS_URL"

step "swift test"
# Swift Testing is off: the suite is XCTest, and its empty "0 tests passed" line would only confuse.
"$HERE/scripts/swift-env.sh" run bindings-swift swift test --disable-swift-testing "$@"

if [ $# = 0 ]; then
  step "Consumer package: Polyroute as a URL dependency (root Package.swift, pkg-config)"
  "$HERE/scripts/consumer-test.sh"
fi
