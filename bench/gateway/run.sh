#!/usr/bin/env bash
# Gateway benchmark, one command: `polyroute serve` vs the LiteLLM proxy vs Portkey's gateway,
# all in front of the same loopback mock server. Sets up (or reuses) the pinned competitors,
# builds the release binaries, then bench.py measures and writes the Gateway section of
# BENCHMARKS.md. Not part of any test suite. A full run takes ~7–9 minutes after the first
# setup and build; run it on a quiet machine.
#
#   bash bench/gateway/run.sh           # full run, rewrites the Gateway section of BENCHMARKS.md
#   bash bench/gateway/run.sh --quick   # short runs to check the harness (BENCHMARKS.md untouched)
#
# Options after that: --litellm-workers 1,2 (default; LiteLLM's --num_workers values to run).
# Set CARGO_TARGET_DIR to reuse an existing target directory (default: the repo's target/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
VENV="$HERE/.venv"
LOCK="$HERE/litellm-requirements.lock"

QUICK=()
EXTRA=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=(--quick) ;;
        --litellm-workers) EXTRA+=(--litellm-workers "$2"); shift ;;
        *) echo "usage: bash bench/gateway/run.sh [--quick] [--litellm-workers 1,2]" >&2; exit 2 ;;
    esac
    shift
done

# LiteLLM: a venv with exactly the locked set (litellm 1.109.1 and its proxy extra; see
# litellm-requirements.in for why litellm-proxy-extras is not in it). Reinstalled only when
# the lock file changes.
if [[ ! -x "$VENV/bin/python" ]]; then
    "${PYTHON:-python3.11}" -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
if ! cmp -s "$LOCK" "$VENV/.installed-lock"; then
    "$VENV/bin/python" -m pip install -q -r "$LOCK"
    cp "$LOCK" "$VENV/.installed-lock"
fi
"$VENV/bin/python" -c "import importlib.metadata as m, sys; v = m.version('litellm'); sys.exit(0 if v == '1.109.1' else 'litellm ' + v + ' installed, 1.109.1 expected')"

# Portkey: the committed package-lock.json, installed as is (npm ci) when it changed.
if ! cmp -s "$HERE/portkey/package-lock.json" "$HERE/portkey/node_modules/.package-lock.json.installed" 2>/dev/null; then
    (cd "$HERE/portkey" && npm ci --silent --no-audit --no-fund)
    cp "$HERE/portkey/package-lock.json" "$HERE/portkey/node_modules/.package-lock.json.installed"
fi

(cd "$REPO" && cargo build -q --release -p polyroute-server -p polyroute-mock-server \
    --bin polyroute --bin polyroute-mock-server --example gateway_load)

RUN="$(mktemp -d)"
DRIVER=""
# bench.py stops what it started; if it was killed outright, stop its process groups here.
stop() {
    if [[ -n "$DRIVER" ]] && kill -0 "$DRIVER" 2>/dev/null; then
        kill "$DRIVER" 2>/dev/null || true
        wait "$DRIVER" 2>/dev/null || true
    fi
    if [[ -f "$RUN/pids" ]]; then
        while read -r pgid; do
            kill -TERM -- "-$pgid" 2>/dev/null || true
        done <"$RUN/pids"
        sleep 0.5
        while read -r pgid; do
            kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$RUN/pids"
    fi
    rm -rf "$RUN"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Copies taken right after the build: a shared target directory's release/ may be rebuilt
# from another checkout while this runs.
BIN="$RUN/bin"
mkdir -p "$BIN"
cp "$CARGO_TARGET_DIR/release/polyroute" "$CARGO_TARGET_DIR/release/polyroute-mock-server" \
    "$CARGO_TARGET_DIR/release/examples/gateway_load" "$BIN/"

cmd="bash bench/gateway/run.sh${QUICK:+ --quick}${EXTRA:+ ${EXTRA[*]}}"
python3 "$HERE/bench.py" "${QUICK[@]}" "${EXTRA[@]}" \
    --mock "$BIN/polyroute-mock-server" --polyroute "$BIN/polyroute" --load "$BIN/gateway_load" \
    --venv "$VENV" --portkey "$HERE/portkey" --run "$RUN" --pids-file "$RUN/pids" \
    --markdown "$REPO/BENCHMARKS.md" --command "$cmd" &
DRIVER=$!
wait "$DRIVER"
