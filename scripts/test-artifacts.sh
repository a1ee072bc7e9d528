#!/usr/bin/env bash
# Installs the release artifacts in dist/ (scripts/release.sh) the way users will, on a PATH
# with no cargo or rustc, and runs the examples from them:
#
# - Python: a fresh venv, `pip install --no-index --find-links dist/python polyroute`, then
#   examples/python/quickstart.py (failover to the backup, breaker opened) and
#   error_handling.py.
# - Node: a fresh npm project installs the packed tarballs offline (the main package finds
#   its binary in the platform package), then examples/node/quickstart.mjs and typed.ts
#   (type-checked and compiled with the examples' own TypeScript, then run).
#
#   bash scripts/release.sh --host && bash scripts/test-artifacts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST="$ROOT/dist"
VERSION="$(python3 scripts/version.py)"
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# The toolchain leaves PATH: a directory holding cargo or rustc is dropped.
clean_path=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
    [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || clean_path="${clean_path:+$clean_path:}$d"
done
export PATH="$clean_path"
! command -v cargo >/dev/null && ! command -v rustc >/dev/null || fail "cargo or rustc still on PATH"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# The examples find their policy at ../policies/demo.yaml.
mkdir -p "$WORK/policies"
cp examples/policies/demo.yaml "$WORK/policies/"

step "Python: pip install --no-index from dist/python, then the examples"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --no-index --find-links "$DIST/python" "polyroute==$VERSION"
mkdir -p "$WORK/python"
cp examples/python/quickstart.py examples/python/error_handling.py "$WORK/python/"
where="$(cd "$WORK" && "$WORK/venv/bin/python" -c 'import polyroute, os; print(os.path.dirname(polyroute.__file__))')"
case "$where" in "$WORK/venv/"*) ;; *) fail "polyroute imported from $where, not the venv" ;; esac
out="$(cd "$WORK/python" && "$WORK/venv/bin/python" quickstart.py)"
echo "$out"
echo "$out" | grep -q "from claude-sonnet" || fail "the Python quickstart did not fail over to claude-sonnet"
echo "$out" | grep -q "breaker gpt-4o: open" || fail "the Python quickstart's breaker did not open"
(cd "$WORK/python" && "$WORK/venv/bin/python" error_handling.py >/dev/null) || fail "error_handling.py"

step "Node: npm install --offline of the tarballs, then the examples"
mkdir -p "$WORK/node"
cp examples/node/quickstart.mjs examples/node/typed.ts examples/node/tsconfig.json "$WORK/node/"
echo '{"name": "polyroute-artifact-check", "private": true}' >"$WORK/node/package.json"
(cd "$WORK/node" && npm install -q --offline --no-audit --no-fund \
    "$DIST/npm/polyroute-$VERSION.tgz" "$DIST/npm/polyroute-linux-x64-gnu-$VERSION.tgz")
[ ! -e "$WORK/node/node_modules/polyroute/polyroute.linux-x64-gnu.node" ] || fail "the main package carries a binary"
out="$(cd "$WORK/node" && node quickstart.mjs)"
echo "$out"
echo "$out" | grep -q "claude-sonnet" || fail "the Node quickstart did not fail over to claude-sonnet"
# TypeScript and Node's typings from the examples' own (registry) install; polyroute's
# types from the tarball.
TSC="$ROOT/examples/node/node_modules/.bin/tsc"
[ -x "$TSC" ] || (cd "$ROOT/examples/node" && npm install -q --no-audit --no-fund)
ln -s "$ROOT/examples/node/node_modules/@types" "$WORK/node/node_modules/@types"
(cd "$WORK/node" && node "$TSC" -p . --noEmit false --outDir .build) || fail "typed.ts does not type-check against the packed typings"
(cd "$WORK/node" && node .build/typed.js >/dev/null) || fail "typed.ts"
echo "artifacts install and run without a Rust toolchain"
