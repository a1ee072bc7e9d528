"""The official openai Python SDK (from PyPI) as a client of `polyroute serve`.

Run by server/test.sh, which builds the binaries and installs the pinned SDK. Starts the
loopback mock server and the gateway itself, on free ports, and stops both. Checks what a
user switching `base_url` would rely on: failover is invisible (sync, async, streaming with
usage), a stream cut after content raises the SDK's own error instead of ending as a
truncated success, and each failure arrives as the SDK's typed exception.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

import openai

MOCK_BIN = os.environ["POLYROUTE_MOCK_BIN"]
GATEWAY_BIN = os.environ["POLYROUTE_GATEWAY_BIN"]

POLICY = """
providers: {{mock: {{kind: openai, base_url: "{v1}", api_key: "sk-test-not-a-real-key"}}}}
deployments:
  a: {{provider: mock, model: primary}}
  b: {{provider: mock, model: fallback}}
  c: {{provider: mock, model: cut_before}}
  cut: {{provider: mock, model: cutter}}
  busy: {{provider: mock, model: busy}}
routes:
  - {{name: main, deployments: [a, b], retry: {{attempts_per_deployment: 1}}}}
  - {{name: streaming, deployments: [c, b], retry: {{attempts_per_deployment: 1}}}}
  - {{name: cutting, deployments: [cut], retry: {{attempts_per_deployment: 1}}}}
  - {{name: busy, deployments: [busy], retry: {{attempts_per_deployment: 1, max_retry_after: 1s}}}}
default_route: main
"""

SCRIPTS = {
    "primary": {"then": {"status": 503}},
    "cut_before": {"then": {"fault": {"cut_after": {"chunks": 0}}}},
    "cutter": {"then": {"text": "one two three four", "fault": {"cut_after": {"chunks": 2}}}},
    "busy": {"then": {"status": 429, "retry_after": "3"}},
}


def start(cmd, marker):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stream = p.stdout if marker == "LISTENING" else p.stderr
    line = stream.readline()
    if marker not in line:
        p.kill()
        raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    return p, line.split("http://", 1)[1].split()[0]


def main():
    mock, mock_addr = start([MOCK_BIN, "--port", "0"], "LISTENING")
    gateway = None
    try:
        for name, script in SCRIPTS.items():
            req = urllib.request.Request(f"http://{mock_addr}/_mock/scripts/{name}", data=json.dumps(script).encode(), method="PUT")
            urllib.request.urlopen(req).read()
        policy = os.path.join(tempfile.mkdtemp(), "policy.yaml")
        with open(policy, "w") as f:
            f.write(POLICY.format(v1=f"http://{mock_addr}/v1"))
        gateway, addr = start([GATEWAY_BIN, "serve", policy, "--listen", "127.0.0.1:0"], "serving")
        base = f"http://{addr}/v1"
        # The router retries and fails over; the SDK must not retry on top.
        client = openai.OpenAI(base_url=base, api_key="unused-by-the-gateway", max_retries=0)
        checks(client)
        asyncio.run(async_checks(openai.AsyncOpenAI(base_url=base, api_key="unused-by-the-gateway", max_retries=0)))
        print("openai-python", openai.__version__, "against polyroute serve: all checks passed")
    finally:
        for p in (gateway, mock):
            if p is not None:
                p.kill()
                p.wait()


def checks(client):
    # create: the primary's 503 is invisible; Polyroute's deployment is in the headers
    raw = client.chat.completions.with_raw_response.create(model="main", messages=[{"role": "user", "content": "hello mock"}])
    assert raw.headers["x-polyroute-deployment"] == "b", raw.headers
    r = raw.parse()
    assert r.choices[0].message.content == "echo: hello mock", r

    # stream: a cut before content on the first deployment is invisible; usage at the end
    stream = client.chat.completions.create(
        model="streaming", messages=[{"role": "user", "content": "hello mock"}], stream=True, stream_options={"include_usage": True}
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == "echo: hello mock", text
    assert usage is not None and usage.completion_tokens == 3, usage

    # a cut after content: the SDK's own error, not a truncated success
    try:
        for _ in client.chat.completions.create(model="cutting", messages=[{"role": "user", "content": "x"}], stream=True):
            pass
        raise AssertionError("a stream cut after content ended as a success")
    except openai.APIError as e:
        assert "stream" in str(e).lower(), e

    # typed exceptions, with Polyroute's kind as the code
    try:
        client.chat.completions.create(model="busy", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected RateLimitError")
    except openai.RateLimitError as e:
        assert e.code == "rate_limited" and e.response.headers["retry-after"] == "3", (e.code, e.response.headers)
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_headers={"x-polyroute-route": "nowhere"})
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as e:
        assert e.code == "no_route", e.code
    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], extra_body={"polyroute": {"route": "busy"}})
        raise AssertionError("expected RateLimitError through extra_body routing")
    except openai.RateLimitError:
        pass


async def async_checks(client):
    r = await client.chat.completions.create(model="main", messages=[{"role": "user", "content": "hello mock"}])
    assert r.choices[0].message.content == "echo: hello mock"
    stream = await client.chat.completions.create(model="streaming", messages=[{"role": "user", "content": "hello mock"}], stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: hello mock", text


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAILED:", e, file=sys.stderr)
        raise
