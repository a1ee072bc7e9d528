#!/usr/bin/env bash
# The gateway as users' clients see it: the official openai SDKs for Python (PyPI), Node (npm)
# and Go (github.com/openai/openai-go, through examples/go), each pinned, and curl, against
# `polyroute serve` in front of the loopback mock server. The Rust-side tests
# (`cargo test -p polyroute-server`) cover the HTTP behaviour with plain requests.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
OPENAI_VERSION=3.22.1
# 6.x is the newest major that runs on the machines' Node.js 20 (7.x declares node >= 22).
OPENAI_NODE_VERSION=6.49.0
# openai-go's version is pinned in examples/go/go.mod.

cargo build -q -p polyroute-server -p polyroute-mock-server
BIN="$CARGO_TARGET_DIR/debug"

# Python: the script starts its own mock server and gateway.
VENV="$CARGO_TARGET_DIR/sdk-venv"
if ! "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "openai==$OPENAI_VERSION"
fi
POLYROUTE_MOCK_BIN="$BIN/polyroute-mock-server" \
POLYROUTE_GATEWAY_BIN="$BIN/polyroute" \
    "$VENV/bin/python" "$HERE/tests/sdk/openai_python.py"

# Node and Go share one mock server and gateway, started here and stopped on any exit.
NODE_SDK="$CARGO_TARGET_DIR/sdk-node"
installed_node_sdk() {
    node -p "JSON.parse(require('fs').readFileSync('$NODE_SDK/node_modules/openai/package.json')).version" 2>/dev/null || true
}
if [ "$(installed_node_sdk)" != "$OPENAI_NODE_VERSION" ]; then
    rm -rf "$NODE_SDK"
    mkdir -p "$NODE_SDK"
    echo '{"private": true, "type": "module"}' >"$NODE_SDK/package.json"
    (cd "$NODE_SDK" && npm install --silent --no-audit --no-fund --save-exact "openai@$OPENAI_NODE_VERSION")
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
fi

RUN="$(mktemp -d)"
MOCK_PID=""
GATEWAY_PID=""
stop() {
    for pid in $GATEWAY_PID $MOCK_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$RUN"
}
trap stop EXIT

# Waits for a process's start line in a file and prints the address after http://.
address() { # file pattern pid what
    for _ in $(seq 300); do
        if grep -q "$2" "$1"; then
            grep -m1 "$2" "$1" | sed 's|.*http://\([^ ]*\).*|\1|'
            return 0
        fi
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "$4 did not start:" >&2
    cat "$1" >&2
    return 1
}

"$BIN/polyroute-mock-server" --port 0 >"$RUN/mock.log" 2>&1 &
MOCK_PID=$!
MOCK="$(address "$RUN/mock.log" LISTENING "$MOCK_PID" "the mock server")"
# The same scripted models as openai_python.py.
# (python3 rather than curl: a clean machine has the base toolchains, not necessarily curl)
script() {
    python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(), method="PUT")).read()' \
        "http://$MOCK/_mock/scripts/$1" "$2"
}
script primary '{"then": {"status": 503}}'
script cut_before '{"then": {"fault": {"cut_after": {"chunks": 0}}}}'
script cutter '{"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 2}}}}'
script busy '{"then": {"status": 429, "retry_after": "3"}}'
cat >"$RUN/policy.yaml" <<EOF
providers: {mock: {kind: openai, base_url: "http://$MOCK/v1", api_key: "sk-test-not-a-real-key"}}
deployments:
  a: {provider: mock, model: primary}
  b: {provider: mock, model: fallback}
  c: {provider: mock, model: cut_before}
  cut: {provider: mock, model: cutter}
  busy: {provider: mock, model: busy}
routes:
  - {name: main, deployments: [a, b], retry: {attempts_per_deployment: 1}}
  - {name: streaming, deployments: [c, b], retry: {attempts_per_deployment: 1}}
  - {name: cutting, deployments: [cut], retry: {attempts_per_deployment: 1}}
  - {name: busy, deployments: [busy], retry: {attempts_per_deployment: 1, max_retry_after: 1s}}
default_route: main
EOF
"$BIN/polyroute" serve "$RUN/policy.yaml" --listen 127.0.0.1:0 >"$RUN/gateway.log" 2>&1 &
GATEWAY_PID=$!
GATEWAY="http://$(address "$RUN/gateway.log" serving "$GATEWAY_PID" "the gateway")/v1"

# Node: run from the SDK's directory so `import 'openai'` resolves as in a user's project.
cp "$HERE/tests/sdk/openai_node.mjs" "$NODE_SDK/"
POLYROUTE_BASE_URL="$GATEWAY" node "$NODE_SDK/openai_node.mjs"

# curl: what a shell script or an operator gets. Failover (the primary's 503 is never seen),
# a stream with usage ending in [DONE], and a typed error with its status and headers.
curl_fail() { echo "FAILED: curl against polyroute serve: $*" >&2; cat "$RUN/gateway.log" >&2; exit 1; }
out="$(curl -sS -D "$RUN/h1" "$GATEWAY/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "main", "messages": [{"role": "user", "content": "hello mock"}]}')"
grep -qi '^x-polyroute-deployment: b' "$RUN/h1" || curl_fail "no failover to b: $(cat "$RUN/h1")"
echo "$out" | grep -q '"object":"chat.completion"' || curl_fail "not a chat.completion: $out"
out="$(curl -sS -N "$GATEWAY/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "streaming", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hello mock"}]}')"
[ "$(echo "$out" | grep '^data: ' | tail -1)" = "data: [DONE]" ] || curl_fail "stream did not end with [DONE]: $out"
echo "$out" | grep -q '"usage":{' || curl_fail "no usage chunk: $out"
echo "$out" | grep -q '"object":"chat.completion.chunk"' || curl_fail "no chunks: $out"
code="$(curl -sS -o "$RUN/busy.json" -D "$RUN/h2" -w '%{http_code}' "$GATEWAY/chat/completions" -H 'content-type: application/json' \
    -d '{"model": "busy", "messages": [{"role": "user", "content": "hello mock"}]}')"
[ "$code" = 429 ] || curl_fail "busy route answered $code"
grep -qi '^retry-after: ' "$RUN/h2" && grep -qi '^x-polyroute-error-kind: rate_limited' "$RUN/h2" || curl_fail "429 headers: $(cat "$RUN/h2")"
grep -q '"code":"rate_limited"' "$RUN/busy.json" || curl_fail "429 body: $(cat "$RUN/busy.json")"
echo "curl against polyroute serve: all checks passed"

# Go: examples/go's tests (the example's own functions) against the same gateway.
unformatted="$(cd "$REPO/examples/go" && gofmt -l .)"
[ -z "$unformatted" ] || { echo "FAILED: gofmt would change in examples/go: $unformatted" >&2; exit 1; }
(cd "$REPO/examples/go" && POLYROUTE_TEST_URL="$GATEWAY" go test -count=1 -v ./...) || {
    echo "FAILED: examples/go against polyroute serve; the gateway's log:" >&2
    cat "$RUN/gateway.log" >&2
    exit 1
}
