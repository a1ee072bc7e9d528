#!/usr/bin/env bash
# Release artifacts into dist/, everything up to publishing:
#
#   dist/python/  abi3 wheels (CPython 3.9+, manylinux_2_28) and the sdist
#   dist/npm/     `polyroute` (loader, wrapper, typings; no binary, no install script) and one
#                 package per platform binary, wired through the main one's optionalDependencies
#   dist/SHA256SUMS
#
#   bash scripts/release.sh           # every target this machine can build (Linux x86_64 and
#                                     # aarch64, glibc and musl; ~20 min on 2 cores)
#   bash scripts/release.sh --host    # Linux x86_64 glibc only (what scripts/test.sh installs)
#
# Linux binaries are linked by zig (PyPI `ziglang`, through maturin --zig and cargo-zigbuild)
# against glibc 2.28, so they load on any distribution from 2018 on (RHEL 8, Debian 10,
# Ubuntu 18.10) whatever glibc this machine has; maturin then checks the manylinux tag.
# macOS and Windows binaries need their own SDKs: their npm packages' metadata is ready in
# bindings-node/npm/ and a CI runner of that OS builds them with the same commands. The Swift
# package is built from source by SwiftPM (root Package.swift); nothing to stage here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
HOST_ONLY=0
[ "${1:-}" = "--host" ] && HOST_ONLY=1
step() { printf '\n==> %s\n' "$*"; }

python3 scripts/version.py --check
VERSION="$(python3 scripts/version.py)"
DIST="$ROOT/dist"
rm -rf "$DIST"
mkdir -p "$DIST/python" "$DIST/npm"

# glibc 2.28: the manylinux_2_28 floor; the same for the npm gnu packages.
GLIBC=2.28
PY_TARGETS=(x86_64-unknown-linux-gnu)
# npm platform folder → Rust target
NODE_TARGETS=("linux-x64-gnu x86_64-unknown-linux-gnu")
if [ "$HOST_ONLY" = 0 ]; then
    PY_TARGETS+=(aarch64-unknown-linux-gnu)
    NODE_TARGETS+=("linux-arm64-gnu aarch64-unknown-linux-gnu" "linux-x64-musl x86_64-unknown-linux-musl" "linux-arm64-musl aarch64-unknown-linux-musl")
fi

step "release tools (maturin, ziglang, cargo-zigbuild from PyPI)"
TOOLS="$CARGO_TARGET_DIR/release-tools"
PKGS=(maturin==1.16.0 ziglang==0.15.2 cargo-zigbuild==0.24.0)
if [ ! -f "$TOOLS/.pkgs" ] || [ "$(cat "$TOOLS/.pkgs")" != "${PKGS[*]}" ]; then
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q "${PKGS[@]}"
    echo "${PKGS[*]}" >"$TOOLS/.pkgs"
fi
export PATH="$TOOLS/bin:$PATH"
for t in "${PY_TARGETS[@]}"; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
for nt in "${NODE_TARGETS[@]}"; do
    t="${nt#* }"
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

step "Python: sdist and abi3 wheels (${PY_TARGETS[*]})"
maturin sdist -m bindings-python/Cargo.toml -o "$DIST/python"
for t in "${PY_TARGETS[@]}"; do
    maturin build --release --strip --zig --compatibility manylinux_2_28 --target "$t" \
        -m bindings-python/Cargo.toml -o "$DIST/python"
done

step "npm: platform packages (${NODE_TARGETS[*]})"
for nt in "${NODE_TARGETS[@]}"; do
    platform="${nt%% *}"
    target="${nt#* }"
    zig_target="$target"
    rustflags="${RUSTFLAGS:-}"
    case "$target" in
        *-gnu) zig_target="$target.$GLIBC" ;;
        # musl defaults to static CRT, which a shared library (the addon) cannot use.
        *-musl) rustflags="$rustflags -C target-feature=-crt-static" ;;
    esac
    RUSTFLAGS="$rustflags" CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo zigbuild -q --release -p polyroute-node --target "$zig_target"
    stage="$DIST/npm/stage/$platform"
    mkdir -p "$stage"
    cp -r "bindings-node/npm/$platform/." "$stage/"
    cp LICENSE "$stage/"
    cp "$CARGO_TARGET_DIR/$target/release/libpolyroute_node.so" "$stage/polyroute.$platform.node"
    (cd "$stage" && npm pack -q --pack-destination "$DIST/npm" >/dev/null)
done

step "npm: the main package"
(cd bindings-node && npm pack -q --pack-destination "$DIST/npm" >/dev/null)
rm -rf "$DIST/npm/stage"

step "checks: wheel tags and contents, npm tarballs, sizes"
python3 scripts/check-artifacts.py "$DIST" "$VERSION"
(cd "$DIST" && find . -type f ! -name SHA256SUMS | sort | xargs sha256sum >SHA256SUMS)
echo "artifacts in $DIST (version $VERSION)"
