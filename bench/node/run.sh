#!/usr/bin/env bash
# Node benchmark (BENCHMARKS.md): release builds of the addon and of the mock server, then
# bench.mjs (polyroute vs openai-node vs raw fetch on 127.0.0.1). Extra args go to bench.mjs,
# e.g. `--duration-ms 5000 --concurrency 1,64,512 --clients openai,polyroute`.
# `--stream`: what a stream adds per chunk (stream.mjs) instead.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build -q --release -p polyroute-node -p polyroute-mock-server
npm install --no-save --no-audit --no-fund --loglevel=error
# napi-rs's loader honours this override, so the release addon is used without replacing the
# debug one the tests load (Node loads native addons only from `.node` files).
mkdir -p results
cp "$CARGO_TARGET_DIR/release/libpolyroute_node.so" results/polyroute.release.node
export NAPI_RS_NATIVE_LIBRARY_PATH="$PWD/results/polyroute.release.node"
if [[ "${1:-}" == "--stream" ]]; then
    exec node stream.mjs --server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "${@:2}"
fi
node bench.mjs --server "$CARGO_TARGET_DIR/release/polyroute-mock-server" "$@"
