#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, built from the recorded provider traffic the tests
already use (core/tests/fixtures), the scenario policies and a few hand-written hints.

Generated, not committed (fuzz/corpus/ is git-ignored): libFuzzer adds its own finds to the
same folders, and regenerating from the fixtures keeps the seeds in step with them.

Provider seeds carry the 3-byte framing of `polyroute_fuzz::ProviderInput`:
[stream flag][status index][header bits] + body.

Usage: make_corpus.py [corpus_dir]   (default: fuzz/corpus next to this file)
"""

import glob
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FIX = os.path.join(ROOT, "core", "tests", "fixtures")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
MAX_SEED = 128 * 1024  # run.sh passes -max_len 131072

# Must match STATUSES in src/lib.rs.
STATUSES = [200, 200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 529]


def write(target, data):
    if len(data) > MAX_SEED:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def framed(stream, status, body):
    idx = STATUSES.index(status) if status in STATUSES else 0
    return bytes([1 if stream else 0, idx, 0]) + body


def cassette_responses(path):
    """(stream, status, body bytes) for every interaction of a VCR cassette."""
    try:
        import yaml  # PyYAML; without it, only the raw stream files seed the corpus
    except ImportError:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except Exception:
        return []
    out = []
    for it in (doc or {}).get("interactions", []) or []:
        req, resp = it.get("request", {}) or {}, it.get("response", {}) or {}
        status = (resp.get("status") or {}).get("code", 200)
        if "body" in resp and isinstance(resp["body"], dict) and "string" in resp["body"]:
            body = resp["body"]["string"]
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        elif "parsed_body" in resp:
            body = json.dumps(resp["parsed_body"]).encode("utf-8")
        else:
            continue
        headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
        ctype = " ".join(headers.get("content-type", []) if isinstance(headers.get("content-type"), list) else [str(headers.get("content-type", ""))])
        uri = str(req.get("uri", ""))
        stream = ("event-stream" in ctype) or bool((req.get("parsed_body") or {}).get("stream")) or "streamGenerateContent" in uri
        out.append((stream, status, body))
    return out


def seed_provider(target, cassette_globs, stream_globs):
    n = 0
    for g in cassette_globs:
        for p in sorted(glob.glob(os.path.join(FIX, g))):
            for stream, status, body in cassette_responses(p):
                write(target, framed(stream, status, body))
                if stream:
                    write("sse_decoder", body)
                n += 1
    for g in stream_globs:
        for p in sorted(glob.glob(os.path.join(FIX, g))):
            with open(p, "rb") as f:
                body = f.read()
            write(target, framed(True, 200, body))
            write("sse_decoder", body)
            n += 1
    return n


def main():
    counts = {}
    counts["provider_openai"] = seed_provider("provider_openai", ["cassettes-openai/openai/*.yaml"], ["openai-sse/*.sse"])
    counts["provider_azure"] = seed_provider("provider_azure", ["cassettes-openai/openai/*.yaml"], ["openai-sse/*.sse"])
    counts["provider_compat"] = seed_provider("provider_compat", ["cassettes-openai/groq/*.yaml", "cassettes-openai/mistral/*.yaml", "cassettes-openai/openrouter/*.yaml"], [])
    counts["provider_anthropic"] = seed_provider("provider_anthropic", ["anthropic/*.yaml"], ["anthropic-sse/*.sse", "anthropic-sse/*.txt"])
    counts["provider_gemini"] = seed_provider("provider_gemini", ["google/*.yaml"], [])
    # SSE edge cases the recordings do not have.
    for s in [b"\xef\xbb\xbfdata: bom\r\n\r\n", b"data: a\rdata: b\r\r", b"id: 1\nretry: 100\nevent: x\ndata:\n\n", b": keep-alive\n\ndata: last"]:
        write("sse_decoder", s)
    for s in [b"2", b"1.5", b"0", b"Wed, 21 Oct 2015 07:28:00 GMT", b"250ms", b"1m30s", b"13s", b"2\x001500\x00300", b"\x00250.5", b"-1", b"1e400"]:
        write("retry_hint", s)
    n = 0
    for p in sorted(glob.glob(os.path.join(ROOT, "tests", "scenarios", "*.json"))):
        if p.endswith(".schema.json"):
            continue
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
        text = json.dumps(doc["policy"]).replace("$MOCK_ROOT", "http://127.0.0.1:9").replace("$MOCK", "http://127.0.0.1:9/v1")
        write("policy", text.encode("utf-8"))
        n += 1
    for p in glob.glob(os.path.join(ROOT, "examples", "policies", "*.y*ml")):
        with open(p, "rb") as f:
            write("policy", f.read())
        n += 1
    counts["policy"] = n
    for t in sorted(os.listdir(OUT)):
        print(f"{t}: {len(os.listdir(os.path.join(OUT, t)))} seeds")


if __name__ == "__main__":
    main()
