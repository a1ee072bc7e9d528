#!/usr/bin/env bash
# generate.sh: build the Rust side of the Swift binding and (re)generate its uniffi bindings.
#
#   scripts/generate.sh           build, regenerate Sources/ from the library, stage lib/*.a
#   scripts/generate.sh --check   same, but fail (exit 1) if the committed generated files are stale
#
# The generated Swift and header are committed (a SwiftPM consumer of the XCFramework package
# needs them in the repository) and produced only by uniffi-bindgen in library mode, never
# edited by hand; `--check` is how test.sh proves they match the Rust code.
#
# Two cargo invocations on purpose: building the bindgen together with the library would unify
# uniffi's `cli` feature into the library (5x bigger .a, different artifact).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=debug
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

cd "$ROOT"
cargo build -q -p polyroute-ffi
cargo build -q -p uniffi-bindgen
LIB=$CARGO_TARGET_DIR/$PROFILE/libpolyroute_ffi.a

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --no-format --language swift --out-dir "$OUT" "$LIB" >/dev/null

GEN_SWIFT=$HERE/Sources/Polyroute/Generated/polyroute.swift
GEN_HEADER=$HERE/Sources/polyrouteFFI/polyrouteFFI.h
stale=0
for pair in "$OUT/polyroute.swift:$GEN_SWIFT" "$OUT/polyrouteFFI.h:$GEN_HEADER"; do
  src=${pair%%:*} dst=${pair#*:}
  if ! cmp -s "$src" "$dst"; then
    if [ $CHECK = 1 ]; then
      echo "generate.sh: ${dst#$ROOT/} is stale; run bindings-swift/scripts/generate.sh and commit it" >&2
      diff -u "$dst" "$src" | head -40 >&2 || true
      stale=1
    else
      mkdir -p "$(dirname "$dst")"
      cp "$src" "$dst"
    fi
  fi
done
[ $stale = 0 ] || exit 1

# Stage only the static library (ld would silently prefer a .so found in the same directory).
# SwiftPM does not track this file, and a touched source is not enough (it skips a source
# whose content is unchanged, so nothing relinks): when the library changes, remove the linked
# test bundles so they are linked again against it.
mkdir -p "$HERE/lib"
if ! cmp -s "$LIB" "$HERE/lib/libpolyroute_ffi.a"; then
  cp "$LIB" "$HERE/lib/libpolyroute_ffi.a"
  touch "$HERE/Sources/Polyroute/Router+Swift.swift"
  rm -rf "$HERE"/.build/*/debug/*.xctest "$HERE"/.build/debug/*.xctest
fi
