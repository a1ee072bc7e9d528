#!/usr/bin/env bash
# build-xcframework.sh: package the Rust core for iOS (device + simulator) and macOS.
#
# Runs on macOS with Xcode and rustup only (it cannot run on the Linux CI machine). Produces
# build/apple/Polyroute/, a self-contained Swift package:
#   Package.swift                  from apple/Package.swift (binary target)
#   polyrouteFFI.xcframework/      ios-arm64, ios-arm64_x86_64-simulator, macos-arm64_x86_64
#   Sources/Polyroute/*.swift      bindings generated from the built library + the Swift layer
# and build/apple/polyrouteFFI.xcframework.zip with its SwiftPM checksum, for publishing.
#
# Shape follows the known-good uniffi pipelines of bitwarden/sdk (languages/swift/build.sh)
# and matrix-rust-sdk (xtask swift build-framework): one cargo build per target, lipo the
# architectures of one platform together, headers + module map in a per-module subfolder
# (so two uniffi frameworks in one app do not collide on Headers/module.modulemap), then
# `xcodebuild -create-xcframework` with one -library/-headers pair per platform.
#
# PROFILE=release (default) or debug. IPHONEOS_DEPLOYMENT_TARGET / MACOSX_DEPLOYMENT_TARGET
# default to the package's minimums (iOS 15, macOS 12).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PROFILE=${PROFILE:-release}
export IPHONEOS_DEPLOYMENT_TARGET=${IPHONEOS_DEPLOYMENT_TARGET:-15.0}
export MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-12.0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LIB=libpolyroute_ffi.a
MODULE=polyrouteFFI

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh needs macOS with Xcode" >&2; exit 1; }
command -v xcodebuild >/dev/null || { echo "xcodebuild not found (install Xcode)" >&2; exit 1; }

TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${TARGETS[@]}"

cd "$ROOT"
# A plain string, not an array: macOS's bash 3.2 treats an empty "${a[@]}" as unbound under -u.
PROFILE_FLAG=""
[ "$PROFILE" = release ] && PROFILE_FLAG=--release
for t in "${TARGETS[@]}"; do
  echo "-- cargo build $t ($PROFILE)"
  cargo build -p polyroute-ffi --target "$t" $PROFILE_FLAG
done
lib() { echo "$CARGO_TARGET_DIR/$1/$PROFILE/$LIB"; }

OUT=$HERE/build/apple
PKG=$OUT/Polyroute
rm -rf "$OUT"
mkdir -p "$OUT/libs/ios" "$OUT/libs/ios-simulator" "$OUT/libs/macos" "$OUT/headers/$MODULE" "$PKG/Sources/Polyroute/Generated"

echo "-- lipo: one library per platform"
cp "$(lib aarch64-apple-ios)" "$OUT/libs/ios/$LIB"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$OUT/libs/ios-simulator/$LIB"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$OUT/libs/macos/$LIB"

echo "-- uniffi-bindgen (library mode, from the iOS library)"
cargo build -q -p uniffi-bindgen
GEN=$OUT/generated
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --no-format --language swift --out-dir "$GEN" "$(lib aarch64-apple-ios)"
cp "$GEN/$MODULE.h" "$OUT/headers/$MODULE/"
# The binary target links the library itself, so the module map has no `link` line.
cat > "$OUT/headers/$MODULE/module.modulemap" <<MM
module $MODULE {
    header "$MODULE.h"
    export *
}
MM

echo "-- xcodebuild -create-xcframework"
xcodebuild -create-xcframework \
  -library "$OUT/libs/ios/$LIB" -headers "$OUT/headers" \
  -library "$OUT/libs/ios-simulator/$LIB" -headers "$OUT/headers" \
  -library "$OUT/libs/macos/$LIB" -headers "$OUT/headers" \
  -output "$PKG/$MODULE.xcframework"

echo "-- Swift package"
cp "$HERE/apple/Package.swift" "$PKG/Package.swift"
cp "$GEN/polyroute.swift" "$PKG/Sources/Polyroute/Generated/"
find "$HERE/Sources/Polyroute" -maxdepth 1 -name '*.swift' -exec cp {} "$PKG/Sources/Polyroute/" \;
if ! cmp -s "$GEN/polyroute.swift" "$HERE/Sources/Polyroute/Generated/polyroute.swift"; then
  echo "warning: the committed Sources/Polyroute/Generated/polyroute.swift is stale (run scripts/generate.sh)" >&2
fi

(cd "$PKG" && zip -qr "$OUT/$MODULE.xcframework.zip" "$MODULE.xcframework")
(cd "$PKG" && swift package compute-checksum "$OUT/$MODULE.xcframework.zip") > "$OUT/$MODULE.xcframework.zip.checksum"
rm -rf "$OUT/libs" "$OUT/headers" "$GEN"
echo "-- done: $PKG (checksum $(cat "$OUT/$MODULE.xcframework.zip.checksum"))"
