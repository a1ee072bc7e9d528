#!/usr/bin/env bash
# Node binding: the one-command test entry point (scripts/test.sh calls it).
#
# On a clean machine with Rust and Node >= 20 it installs the npm tooling (lockfiles), builds
# the addon in debug with `napi build --platform` into the workspace's shared target/, fails
# if the committed generated loader/typings (index.js, index.d.ts) are stale, builds the mock
# server, and runs `node --test` (binding tests + examples). Re-runs skip `npm ci` while the
# lockfiles are unchanged and cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR=never
step() { printf '\n==> [node] %s\n' "$*"; }

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  { echo "Node >= 20 is required (found $(node --version))" >&2; exit 1; }

# Installs exactly what the lockfile pins. Not `npm ci`: it rejects lockfiles that lack the
# other platforms' optional binaries of @napi-rs/cli's dependencies, which the registry this
# project reaches does not serve. A stamp of the lockfile makes re-runs instant.
npm_ci() {
  local dir=$1 stamp=$1/node_modules/.polyroute-lock
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then return 0; fi
  (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$stamp"
}

step "npm tooling (bindings-node, examples/node)"
npm_ci "$HERE"
npm_ci "$ROOT/examples/node"

step "mock server"
cargo build -q -p polyroute-mock-server

step "redis-server (test/fleet.test.mjs starts its own on a random loopback port)"
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

step "native addon (napi build --platform, debug)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp index.js index.d.ts "$tmp/"
npx --no-install napi build --platform
stale=0
for f in index.js index.d.ts; do
  if ! cmp -s "$f" "$tmp/$f"; then
    echo "error: generated bindings-node/$f is stale; commit the regenerated file:" >&2
    diff -u "$tmp/$f" "$f" >&2 || true
    stale=1
  fi
done
[ "$stale" = 0 ]

step "node --test (binding tests against the mock server and redis-server, examples, README example)"
node --test test/*.test.mjs
