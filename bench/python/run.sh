#!/usr/bin/env bash
# Python client benchmark, one command: bench venv with pinned competitors, release builds of
# the mock server and of polyroute, then bench.py, which writes the Python section of
# BENCHMARKS.md. Not part of any test suite. Takes ~10 minutes (plus the first release build).
#
#   bash bench/python/run.sh           # full run, updates BENCHMARKS.md
#   bash bench/python/run.sh --quick   # short runs, to check the harness (BENCHMARKS.md untouched)
#   bash bench/python/run.sh --transport  # the openai-SDK transport's cost (prints a section)
#   bash bench/python/run.sh --split      # where a call's time goes, layer by layer (issue 18)
#   bash bench/python/run.sh --stream     # what a stream adds per chunk (issue 18)
#   bash bench/python/run.sh --import     # each client's import time, from bytecode
#   bash bench/python/run.sh --callgrind sync|async|stream   # instructions per call (valgrind)
#   bash bench/python/run.sh --setup      # only the venv and the release build (bench/targets.sh)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
# litellm is pinned deliberately (never 1.82.7 or 1.82.8; the newest releases need a certifi
# the registry does not have); openai is the version it resolves with.
PKGS=(maturin==1.16.0 litellm==1.99.4 openai==2.54.0 httpx==0.28.1 aiohttp==3.14.5 uvloop==0.23.0)

if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3.11}" -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
if [[ ! -f "$VENV/.pkgs" ]] || [[ "$(cat "$VENV/.pkgs")" != "${PKGS[*]}" ]]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${PKGS[@]}"
    echo "${PKGS[*]}" >"$VENV/.pkgs"
fi

(cd "$REPO" && cargo build -q --release -p polyroute-mock-server)
(cd "$REPO/bindings-python" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop -q --release)

if [[ "${1:-}" == "--setup" ]]; then
    exit 0
fi
if [[ "${1:-}" == "--transport" ]]; then
    exec "$VENV/bin/python" "$HERE/transport.py" --mock-server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "${@:2}"
fi
if [[ "${1:-}" == "--stream" ]]; then
    cd "$HERE" && exec "$VENV/bin/python" "$HERE/stream.py" --mock-server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "${@:2}"
fi
if [[ "${1:-}" == "--callgrind" ]]; then
    cd "$HERE" && exec "$VENV/bin/python" "$HERE/callgrind.py" --mock-server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "${@:2}"
fi
if [[ "${1:-}" == "--import" ]]; then
    LITELLM_LOCAL_MODEL_COST_MAP=True exec "$VENV/bin/python" "$HERE/bench.py" --import-only
fi
if [[ "${1:-}" == "--split" ]]; then
    cd "$HERE" && exec "$VENV/bin/python" "$HERE/split.py" --mock-server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "${@:2}"
fi
args=(--mock-server "$CARGO_TARGET_DIR/release/polyroute-mock-server")
if [[ "${1:-}" == "--quick" ]]; then
    args+=(--quick)
else
    args+=(--markdown "$REPO/BENCHMARKS.md")
fi
# litellm must not fetch its model price map from the network at import.
LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" "$HERE/bench.py" "${args[@]}"
