#!/usr/bin/env bash
# Checks that the JSON Polyroute's OpenAI adapter sends is what OpenAI's own OpenAPI
# description accepts: builds the bodies with the Rust adapter (one cargo test that writes
# them out), then validates each against `createChatCompletion` with the Steady validating
# mock server, together with known-bad bodies that must be rejected. Exits non-zero on any
# failure. Needs cargo, node >= 18 and npm; touches only 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

cd "$here"
npm ci --no-audit --no-fund --loglevel=error

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

(cd "$root" && POLYROUTE_OPENAPI_BODIES="$out" \
  cargo test -p polyroute --test all -- --exact openai_fixtures::adapter_bodies_for_openapi_check)

node "$here/check.mjs" "$out" "$here/bad"
