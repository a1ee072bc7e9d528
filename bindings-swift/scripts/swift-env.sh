#!/usr/bin/env bash
# swift-env.sh: the Swift toolchain for the Swift binding's tests on Linux.
#
# Swift comes from Debian trixie's `swiftlang` inside a debootstrap chroot (the host is bookworm,
# which has no Swift package). This script owns that chroot and nothing else:
#   swift-env.sh setup              create/repair the chroot (idempotent; reuses a healthy one)
#   swift-env.sh run DIR CMD...     run CMD inside the chroot with the repo mounted at /work/repo,
#                                   working directory /work/repo/DIR (DIR relative to the repo root)
# Shaped so because CI machines are fresh (everything must be installable from Debian's
# registry) while developer machines are kept (re-runs must cost ~nothing): the chroot is
# built in a temporary directory and moved into place only when debootstrap succeeded, and a
# marker file records which packages were installed and that swift ran once. A lock
# serialises concurrent runs. Mounts are added when missing and never removed, because another
# run may be using them.
set -euo pipefail

SWIFT_ROOT=${SWIFT_ROOT:-/opt/swift-root}
MARKER=$SWIFT_ROOT/.polyroute-swift-ready
LOCK=${SWIFT_ROOT}.lock
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SWIFT_LIBS=/usr/libexec/swift/lib/swift/linux
APT_ENV=(env DEBIAN_FRONTEND=noninteractive)
# What the chroot needs: the toolchain, and git for SwiftPM to clone URL dependencies (the
# consumer test). The marker holds this list: a chroot made with a shorter list is topped up.
PACKAGES="swiftlang libc6-dev libstdc++-14-dev ca-certificates git"

log() { printf '[swift-env] %s\n' "$*" >&2; }

mount_system() {
  for d in proc dev sys; do
    mkdir -p "$SWIFT_ROOT/$d"
    mountpoint -q "$SWIFT_ROOT/$d" || mount --bind "/$d" "$SWIFT_ROOT/$d"
  done
  # Fresh resolver config each time: the host's may change between sessions.
  cp -L /etc/resolv.conf "$SWIFT_ROOT/etc/resolv.conf" 2>/dev/null || true
}

healthy() {
  [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$PACKAGES" ] \
    && chroot "$SWIFT_ROOT" /usr/bin/env LD_LIBRARY_PATH=$SWIFT_LIBS swift --version >/dev/null 2>&1
}

setup() {
  exec 9>"$LOCK"
  flock 9
  if [ -d "$SWIFT_ROOT" ]; then mount_system; fi
  if healthy; then
    log "reusing healthy chroot at $SWIFT_ROOT"
    return 0
  fi
  if [ ! -x "$SWIFT_ROOT/usr/bin/apt-get" ]; then
    if ! command -v debootstrap >/dev/null; then
      log "installing debootstrap on the host"
      apt-get update -qq
      "${APT_ENV[@]}" apt-get install -y -qq debootstrap >/dev/null
    fi
    local tmp=${SWIFT_ROOT}.partial
    # A partial tree from an interrupted run: only remove it if nothing is mounted inside.
    if [ -d "$tmp" ]; then
      if grep -q " $tmp/" /proc/mounts; then
        log "refusing to delete $tmp: something is mounted inside it"; exit 1
      fi
      rm -rf "$tmp"
    fi
    log "debootstrap trixie into $SWIFT_ROOT (several minutes of downloads)"
    debootstrap --variant=minbase trixie "$tmp" http://deb.debian.org/debian >/dev/null
    if [ -d "$SWIFT_ROOT" ]; then
      # An empty or broken earlier directory: keep whatever is mounted there untouched.
      if grep -q " $SWIFT_ROOT/" /proc/mounts; then
        for d in proc dev sys; do mountpoint -q "$SWIFT_ROOT/$d" && umount "$SWIFT_ROOT/$d" || true; done
      fi
      if grep -q " $SWIFT_ROOT/" /proc/mounts; then
        log "cannot replace $SWIFT_ROOT: it still has mounts"; exit 1
      fi
      rm -rf "$SWIFT_ROOT"
    fi
    mv "$tmp" "$SWIFT_ROOT"
    mount_system
  fi
  log "installing $PACKAGES in the chroot"
  chroot "$SWIFT_ROOT" apt-get update -qq
  # shellcheck disable=SC2086 # a word list on purpose
  chroot "$SWIFT_ROOT" "${APT_ENV[@]}" apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  chroot "$SWIFT_ROOT" /usr/bin/env LD_LIBRARY_PATH=$SWIFT_LIBS swift --version >&2
  echo "$PACKAGES" > "$MARKER"
  log "chroot ready"
}

run() {
  local dir=$1; shift
  setup
  mkdir -p "$SWIFT_ROOT/work/repo"
  # Mount the repo this script belongs to; an older mount of another checkout is replaced
  # only if it is not ours (a second clone under test must see its own files).
  if mountpoint -q "$SWIFT_ROOT/work/repo"; then
    if [ "$(stat -c %d:%i "$SWIFT_ROOT/work/repo")" != "$(stat -c %d:%i "$REPO")" ]; then
      umount "$SWIFT_ROOT/work/repo"
      mount --bind "$REPO" "$SWIFT_ROOT/work/repo"
    fi
  else
    mount --bind "$REPO" "$SWIFT_ROOT/work/repo"
  fi
  # The chroot shares the host's network namespace, so 127.0.0.1 services started on the host
  # (the mock server) are reachable from the tests. Pass through only the variables tests use.
  local envs=(LD_LIBRARY_PATH=$SWIFT_LIBS HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  while IFS='=' read -r k v; do envs+=("$k=$v"); done < <(env | grep -E '^POLYROUTE_' || true)
  chroot "$SWIFT_ROOT" /usr/bin/env -i "${envs[@]}" /bin/bash -c 'cd "$1" && shift && exec "$@"' \
    _ "/work/repo/$dir" "$@"
}

case "${1:-}" in
  setup) setup ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 setup | run DIR CMD..." >&2; exit 2 ;;
esac
