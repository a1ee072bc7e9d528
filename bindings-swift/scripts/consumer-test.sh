#!/usr/bin/env bash
# consumer-test.sh: prove a separate package can depend on Polyroute by URL on Linux.
#
# What a user does, end to end, inside the Swift chroot:
# 1. scripts/install-linux.sh PREFIX (PROFILE=debug here: test.sh has that build already)
#    installs libpolyroute_ffi.a and writes PREFIX/lib/pkgconfig/polyroute-ffi.pc.
# 2. The working tree (tracked and untracked-but-not-ignored files, so uncommitted changes
#    are tested too) is committed into a fresh git repository, tagged with the workspace
#    version and served over http://127.0.0.1 by the host: a remote source-control
#    dependency for SwiftPM, with its dependency rules (manifest at the repository root, no
#    unsafeFlags in a package resolved by version).
# 3. bindings-swift/consumer (its own Package.swift: `.package(url:, from: "0.1.0")`, the URL
#    from POLYROUTE_PACKAGE_URL) is resolved, checked to have resolved Polyroute as a
#    remoteSourceControl package at that URL, tag and commit, built with `swift build`, and
#    run: a failover through the built-in mock provider whose output is asserted.
# 4. Control: a next patch release of the snapshot with one unsafeFlags setting is refused.
# Everything lives in bindings-swift/build/consumer/ (ignored by git), recreated on each run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$HERE/build/consumer
# The same directories as the chroot sees them (swift-env.sh mounts the repo at /work/repo).
CWORK=/work/repo/bindings-swift/build/consumer
start=$SECONDS
fail() { echo "consumer-test: FAIL: $*" >&2; exit 1; }

if grep -v "^ *//" "$ROOT/Package.swift" | grep -n unsafeFlags; then fail "the root Package.swift uses unsafeFlags"; fi

rm -rf "$WORK"
mkdir -p "$WORK/remote/polyroute"
PROFILE=${PROFILE:-debug} "$HERE/scripts/install-linux.sh" "$WORK/prefix"

# Snapshot of the working tree as a git repository with a version tag, served over HTTP (git's
# "dumb" protocol: static files after `git update-server-info`) from the host, which the chroot
# shares its network with. An http:// URL is what makes SwiftPM record the package as
# remoteSourceControl; a file:// URL or a path would be localSourceControl.
VERSION=$(cargo pkgid -p polyroute-ffi)
VERSION=${VERSION##*[@#]}
SNAP=$WORK/remote/polyroute
(cd "$ROOT" && git ls-files -z -co --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -C "$SNAP" -xf -
snap_git() { git -C "$SNAP" -c user.name=consumer-test -c user.email=consumer-test@localhost "$@"; }
snap_git init -q -b main
snap_git add -A
snap_git commit -q -m "snapshot of the working tree for consumer-test.sh"
snap_git tag "$VERSION"
REV=$(snap_git rev-parse HEAD)
git clone -q --bare "$SNAP" "$WORK/served/polyroute.git"
git -C "$WORK/served/polyroute.git" update-server-info

coproc HTTP { exec python3 -u -c '
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
print(server.server_address[1], flush=True)
server.serve_forever()
' "$WORK/served"; }
trap 'kill "$HTTP_PID" 2>/dev/null || true' EXIT
read -r -t 10 PORT <&"${HTTP[0]}" || fail "git HTTP server did not start"
export POLYROUTE_PACKAGE_URL=http://127.0.0.1:$PORT/polyroute.git

# Runs in the chroot, in bindings-swift/consumer, with the .pc file on PKG_CONFIG_PATH. SwiftPM's
# per-user state is kept in this run's directory: each run's snapshot is a new commit under the
# same tag, which SwiftPM's shared fingerprint store (trust on first use) would rightly refuse,
# and the shared repository cache could serve an older clone.
in_consumer() {
  "$HERE/scripts/swift-env.sh" run bindings-swift/consumer \
    env PKG_CONFIG_PATH="$CWORK/prefix/lib/pkgconfig" /bin/bash -c "set -euo pipefail; $1" _ \
    --scratch-path "$CWORK/scratch" --cache-path "$CWORK/swiftpm/cache" \
    --config-path "$CWORK/swiftpm/config" --security-path "$CWORK/swiftpm/security"
}
rm -f "$HERE/consumer/Package.resolved"
echo "consumer: resolving, building and running (package $POLYROUTE_PACKAGE_URL, tag $VERSION)"
in_consumer '
  swift package "$@" resolve
  swift package "$@" show-dependencies --format json > ../build/consumer/dependencies.json
  cp Package.resolved ../build/consumer/Package.resolved
  swift build "$@" 2>&1 | tail -3
  "$(swift build "$@" --show-bin-path)/PolyrouteConsumer" > ../build/consumer/output.txt
'

# The dependency is a remote source-control package at the served URL, tag and commit.
python3 - "$WORK/Package.resolved" "$WORK/dependencies.json" "$POLYROUTE_PACKAGE_URL" "$VERSION" "$REV" <<'PY'
import json, sys
resolved, deps, url, version, rev = sys.argv[1:]
pins = json.load(open(resolved))["pins"]
pin = next((p for p in pins if p["identity"] == "polyroute"), None)
assert pin, f"polyroute not pinned in Package.resolved: {pins}"
assert pin["kind"] == "remoteSourceControl", pin
assert pin["location"] == url, pin
assert pin["state"].get("version") == version and pin["state"]["revision"] == rev, pin
shown = json.load(open(deps))["dependencies"]
dep = next((d for d in shown if d["identity"] == "polyroute"), None)
assert dep and dep["url"] == url and dep["version"] == version, shown
print(f"resolved: polyroute {version} ({rev[:12]}) as remoteSourceControl from {url}")
PY

cat "$WORK/output.txt"
grep -qx "answer: Paris is the capital of France." "$WORK/output.txt" || fail "wrong answer"
grep -qx "served by: backup" "$WORK/output.txt" || fail "not served by the backup"
grep -q "^attempts: primary=overloaded .*secondary=ok$" "$WORK/output.txt" || fail "no failover in the trace"

# Control: the same setup refuses a release whose manifest has unsafeFlags, so the build above
# really ran under SwiftPM's dependency rules. A patch release with one linker flag added;
# `swift package update` moves the consumer to it and the build must stop at graph loading.
UNSAFE_VERSION=${VERSION%.*}.$((${VERSION##*.} + 1))
sed -i 's|path: "bindings-swift/Sources/Polyroute"|&, linkerSettings: [.unsafeFlags(["-L/nonexistent"])]|' "$SNAP/Package.swift"
grep -q 'unsafeFlags(\["-L/nonexistent"\])' "$SNAP/Package.swift" || fail "could not make the unsafeFlags variant"
snap_git commit -q -am "control: unsafeFlags in the root manifest"
snap_git tag "$UNSAFE_VERSION"
git -C "$WORK/served/polyroute.git" fetch -q "$SNAP" "refs/tags/*:refs/tags/*"
git -C "$WORK/served/polyroute.git" update-server-info
if in_consumer 'swift package "$@" update && swift build "$@"' > "$WORK/unsafe.txt" 2>&1; then
  fail "a release with unsafeFlags was accepted as a dependency (see $WORK/unsafe.txt)"
fi
grep -q "\"version\" : \"$UNSAFE_VERSION\"" "$HERE/consumer/Package.resolved" \
  || fail "swift package update did not move to $UNSAFE_VERSION (see $WORK/unsafe.txt)"
grep -m1 "contains unsafe build flags" "$WORK/unsafe.txt" \
  || { tail -20 "$WORK/unsafe.txt" >&2; fail "the unsafeFlags release failed for another reason"; }
rm -f "$HERE/consumer/Package.resolved"
echo "consumer-test: ok ($((SECONDS - start)) s)"
