#!/usr/bin/env bash
# One command for the Python binding: set up the tools, build the native module (debug, into
# the shared target/), check the types, run the tests. Idempotent; re-runs reuse the venv and
# cargo's incremental build.
#
#   bash bindings-python/test.sh            # everything
#   bash bindings-python/test.sh -k stream  # extra arguments go to pytest
#
# Needs only a Python >= 3.9 with venv (python3.11 is preferred) and Rust. Set PYTHON to pick
# the interpreter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

# Pinned so a re-run tests the same thing; bump deliberately.
TOOLS=(maturin==1.16.0 pytest==9.2.0 mypy==2.4.1)
# The real SDKs the openai transport is tested under (tests/test_openai_sdk.py), test-only
# (polyroute itself needs none of them), pinned to a set pip resolves together on Python 3.11:
# instructor 1.17.0 (the newest) allows openai only up to 3.3.0, and pydantic-ai-slim 2.38.0
# is the newest that accepts that openai. openai 3.x speaks httpx2; httpx comes along too.
SDKS=(openai==3.3.0 instructor==1.17.0 langchain-openai==1.8.1 "pydantic-ai-slim[openai]==2.38.0")
# The other event loop async services run on (tests/test_waiter.py runs its cases on both).
LOOPS=(uvloop==0.23.0)

log() { printf '\n== %s\n' "$*"; }

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    for p in python3.11 python3 python; do
        if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    echo "no python3 found (set PYTHON)" >&2
    exit 1
}

log "python tools ($VENV)"
if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(pick_python)"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian splits venv out of the interpreter package.
        if command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
    fi
fi
STAMP="$VENV/.tools-installed"
if [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "${TOOLS[*]} ${SDKS[*]} ${LOOPS[*]}" ]]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${TOOLS[@]}" "${SDKS[@]}" "${LOOPS[@]}"
    echo "${TOOLS[*]} ${SDKS[*]} ${LOOPS[*]}" >"$STAMP"
fi
"$VENV/bin/python" --version

log "redis-server (the fleet tests start their own on a random loopback port)"
if ! command -v redis-server >/dev/null 2>&1 && [[ ! -x /usr/bin/redis-server ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

log "build: mock server and native module (debug)"
(cd "$REPO" && cargo build -q -p polyroute-mock-server)
export POLYROUTE_MOCK_SERVER="$CARGO_TARGET_DIR/debug/polyroute-mock-server"
(cd "$HERE" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop -q)

log "types: stubtest of the native module, mypy --strict on the package and the examples"
(cd "$HERE" && "$VENV/bin/python" -m mypy.stubtest polyroute._native)
(cd "$HERE" && "$VENV/bin/python" -m mypy --strict python/polyroute "$REPO"/examples/python/*.py)

log "pytest (against tests/mock-server over loopback)"
cd "$HERE"
"$VENV/bin/python" -m pytest -q "$@"
if [ $# -eq 0 ]; then
    log "pytest, asyncio tests again on the wake-up path Windows' proactor loop takes (a task awaiting sock_recv, no add_reader)"
    # ... and the openai transport's async client (AsyncOpenAI, pydantic-ai, langchain's a*).
    POLYROUTE_ASYNC_WAKE=pump "$VENV/bin/python" -m pytest -q tests/test_async.py tests/test_streaming.py tests/test_stream_chunks.py tests/test_request_args.py \
        tests/test_panic.py tests/test_openai_transport.py tests/test_sdk_frameworks.py tests/test_waiter.py -k "not test_every_kind and not instructor"
fi
