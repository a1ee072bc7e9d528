#!/usr/bin/env bash
# The gateway as users' clients see it: the official openai Python SDK (from PyPI, pinned)
# against `polyroute serve` in front of the loopback mock server. The Rust-side tests
# (`cargo test -p polyroute-server`) cover the HTTP behaviour with plain requests.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OPENAI_VERSION=3.22.1

cargo build -q -p polyroute-server -p polyroute-mock-server
VENV="$CARGO_TARGET_DIR/sdk-venv"
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "openai==$OPENAI_VERSION"
fi
POLYROUTE_MOCK_BIN="$CARGO_TARGET_DIR/debug/polyroute-mock-server" \
POLYROUTE_GATEWAY_BIN="$CARGO_TARGET_DIR/debug/polyroute" \
    "$VENV/bin/python" "$HERE/tests/sdk/openai_python.py"
