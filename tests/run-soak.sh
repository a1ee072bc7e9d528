#!/usr/bin/env bash
# The chaos soak, in one command (see tests/soak/README.md).
#
#   tests/run-soak.sh                 # 20,000 requests at concurrency 256 (the issue's figures)
#   tests/run-soak.sh --ci            # 3,000 requests: the CI version, well under a minute
#   tests/run-soak.sh --release ...   # build optimised first (slow to build on 2 cores)
#   tests/run-soak.sh --requests 100000 --seed 7   # anything else goes to polyroute-soak
#
# Writes target/soak-report.json (unless --report is given) and prints a summary; exits
# non-zero if any invariant fails (lost or late requests, truncated successes, panics,
# unbounded attempts, memory growth).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
build=()
args=(--requests 20000 --concurrency 256 --report target/soak-report.json)
rest=()
for a in "$@"; do
  case "$a" in
    --ci) args=(--requests 3000 --concurrency 256 --report target/soak-report.json) ;;
    --release) profile=release; build=(--release) ;;
    *) rest+=("$a") ;;
  esac
done

cargo build -q -p polyroute-soak "${build[@]}"
exec "${CARGO_TARGET_DIR:-target}/$profile/polyroute-soak" "${args[@]}" "${rest[@]}"
