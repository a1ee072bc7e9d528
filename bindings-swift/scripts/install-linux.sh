#!/usr/bin/env bash
# install-linux.sh: build the Rust core for the root Package.swift on Linux and install it
# where SwiftPM finds it through pkg-config.
#
#   bindings-swift/scripts/install-linux.sh PREFIX      e.g. ~/.local or /usr/local
#
# Installs
#   PREFIX/lib/libpolyroute_ffi.a                  the static library (only the .a: ld would
#                                                  silently prefer a .so found next to it)
#   PREFIX/include/polyroute/polyrouteFFI.h        the uniffi C header (for C users; SwiftPM
#                                                  uses the module map in the repository)
#   PREFIX/lib/pkgconfig/polyroute-ffi.pc          -L/-l flags for the `polyrouteFFI` target
# then the user sets PKG_CONFIG_PATH=PREFIX/lib/pkgconfig and adds the package URL.
#
# The .pc file is relocatable (paths from ${pcfiledir}, which pkg-config, pkgconf and SwiftPM's
# own .pc reader all define), so the prefix may be moved or seen under another path (a chroot,
# a container mount). Its Libs are only -L and -l flags: SwiftPM drops anything else from a
# .pc file (its allowlist: -L, -l, -F, -framework, -w). The system libraries are what
# `rustc --print native-static-libs` lists for the static library on linux-gnu; with glibc
# >= 2.34 most of them are inside libc, and naming them again is harmless.
#
# PROFILE=release (default) or debug (test.sh uses the debug build it already has).
set -euo pipefail

[ $# = 1 ] || { echo "usage: $0 PREFIX" >&2; exit 2; }
[ "$(uname -s)" = Linux ] || { echo "install-linux.sh is for Linux; Apple platforms use scripts/build-xcframework.sh" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PREFIX=$1
PROFILE=${PROFILE:-release}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

cd "$ROOT"
case $PROFILE in
  release) cargo build -q --release -p polyroute-ffi ;;
  debug) cargo build -q -p polyroute-ffi ;;
  *) echo "PROFILE must be release or debug" >&2; exit 2 ;;
esac
VERSION=$(cargo pkgid -p polyroute-ffi)   # path+file:///...#polyroute-ffi@0.1.0
VERSION=${VERSION##*[@#]}

mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include/polyroute"
PREFIX=$(cd "$PREFIX" && pwd)
install -m 644 "$CARGO_TARGET_DIR/$PROFILE/libpolyroute_ffi.a" "$PREFIX/lib/libpolyroute_ffi.a"
install -m 644 "$HERE/Sources/polyrouteFFI/polyrouteFFI.h" "$PREFIX/include/polyroute/polyrouteFFI.h"
cat > "$PREFIX/lib/pkgconfig/polyroute-ffi.pc" <<PC
# Written by polyroute's bindings-swift/scripts/install-linux.sh ($PROFILE build).
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include/polyroute

Name: polyroute-ffi
Description: Polyroute LLM router core (Rust, static) for the Swift package
Version: $VERSION
Libs: -L\${libdir} -lpolyroute_ffi -lgcc_s -lutil -lrt -lpthread -lm -ldl
Cflags: -I\${includedir}
PC
echo "installed polyroute-ffi $VERSION ($PROFILE) in $PREFIX"
echo "now: export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}"
