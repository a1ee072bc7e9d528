#!/usr/bin/env bash
# Every test in every language, as CI runs it (`.ci/run` calls exactly this).
# Installs what it needs on a clean machine; safe to re-run (each step is idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
# Free disk in GiB where the build output goes (printed with every step: a full run writes
# ~15 GB on a clean machine, the Swift chroot and tool caches included, and a CI machine
# once ran out of space in the last step).
free_gib() { df -Pk "$ROOT" | awk 'NR==2 {printf "%.1f", $4 / 1048576}'; }
step() { printf '\n==> %s (%s GiB free)\n' "$*" "$(free_gib)"; }
# Incremental compilation only pays when a crate is rebuilt after an edit, which one run
# never does; its caches were 2.1 GB of target/debug. Set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
# curl is one of the gateway's clients in server/test.sh
command -v curl >/dev/null || need_apt+=(curl)
# a real Redis for the shared-state tests (issue 14): they start and stop their own servers
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
# a C compiler for Windows, so the Python binding (and ring under it) type-checks for Windows
command -v x86_64-w64-mingw32-gcc >/dev/null || need_apt+=(gcc-mingw-w64-x86-64)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "Installing Debian packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Checks that need promtool must not skip silently here.
export POLYROUTE_REQUIRE_PROMTOOL=1

step "Python tools: the OTLP receiver (official opentelemetry-proto) and the JSON Schema validator"
if [ ! -x target/tools-venv/bin/python ] || ! target/tools-venv/bin/python -c "import opentelemetry.proto, jsonschema, yaml" 2>/dev/null; then
  python3 -m venv target/tools-venv
  target/tools-venv/bin/pip install -q "opentelemetry-proto==1.38.0" "jsonschema==4.26.0" "PyYAML==6.0.4"
fi
export POLYROUTE_OTLP_PYTHON="$ROOT/target/tools-venv/bin/python"
export POLYROUTE_REQUIRE_OTLP=1

step "Rust: formatting (rustfmt.toml) and lints (clippy, warnings are errors)"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo fmt --all --check
cargo clippy -q -p polyroute -p polyroute-mock-server -p polyroute-soak -p polyroute-server --all-targets -- -D warnings
# the phase probe (`core/src/probe.rs`) and the bench that prints it, so neither rots unbuilt
cargo clippy -q -p polyroute --features probe --example bench_overhead -- -D warnings
# the bindings' Rust halves too (no Node or Swift toolchain needed; pyo3 reads the system python3)
cargo clippy -q -p polyroute-python -p polyroute-node -p polyroute-ffi --all-targets -- -D warnings

step "Core shape: files within ~600 lines of code, functions within ~120"
python3 scripts/check-shape.py
# one version in every crate and package, licence copies identical, a CHANGELOG section
python3 scripts/version.py --check

step "Rust: core unit + integration tests, mock server tests, the gateway (polyroute serve/check/plan)"
cargo test -p polyroute -p polyroute-mock-server -p polyroute-server

step "Policy JSON Schema: every example and scenario policy validates (reference jsonschema)"
target/tools-venv/bin/python scripts/check-policy-schema.py

step "Core import graph: no cycle between modules or files"
python3 scripts/import-graph.py

step "Rust: examples run as tests"
cargo run -q -p polyroute --example demo > /tmp/polyroute-demo.out
grep -q "Served by \`claude-sonnet\`" /tmp/polyroute-demo.out
grep -q "breaker open" /tmp/polyroute-demo.out

if [ -x tools/openapi-check/run.sh ]; then
  step "OpenAI request bodies validated against the official OpenAPI description"
  tools/openapi-check/run.sh
fi

step "Gateway: the official openai Python, Node and Go SDKs against polyroute serve"
bash server/test.sh

for lang in python node swift; do
  step "Binding: $lang"
  bash "bindings-$lang/test.sh"
done

step "Release artifacts: wheels and npm packages built (scripts/release.sh --host), checked, installed without Rust"
bash scripts/release.sh --host
bash scripts/test-artifacts.sh

step "Portability: the Python binding checks for Windows (its asyncio bridge must not be Unix-only)"
rustup target list --installed | grep -q '^x86_64-pc-windows-gnu$' || rustup target add x86_64-pc-windows-gnu
cargo check -q -p polyroute-python --target x86_64-pc-windows-gnu

step "Chaos soak (CI size: 3,000 requests at concurrency 256)"
bash tests/run-soak.sh --ci

# The fuzz build (its own target dir, ~1.5 GB) is the last thing written. Where the disk is
# short, the build output no later step reads goes first: the debug and cross builds (the
# next run rebuilds them) and the release tools' venv.
if [ "$(df -Pk "$ROOT" | awk 'NR==2 {print $4}')" -lt $((6 * 1048576)) ]; then
  step "Low on disk: removing target/debug, target/x86_64-*, target/release-tools before fuzzing"
  rm -rf target/debug target/x86_64-* target/release-tools
fi

step "Fuzz targets (15 s each, after replaying regressions)"
bash fuzz/run.sh 15

step "All test suites passed"
