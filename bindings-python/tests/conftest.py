"""Test harness: the real loopback mock server (tests/mock-server), a real redis-server for
the fleet tests, and policy builders.

One server per test session, started with a piped stdin so it exits if pytest dies. Tests
never share script names (each gets a unique prefix), so they need no reset between them and
read only their own attempts from ``/_mock/log?script=...``. The redis-server (Debian package
``redis-server``) is started on demand, once per session, on 127.0.0.1 with a random free
port and no persistence, and killed at the end; tests share it through distinct key prefixes.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-test-not-a-real-key"


def _server_binary() -> Path:
    explicit = os.environ.get("POLYROUTE_MOCK_SERVER")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "debug" / "polyroute-mock-server"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "polyroute-mock-server"], cwd=REPO, check=True)
    return binary


class MockServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(_server_binary()), "--port", "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        m = re.fullmatch(r"LISTENING (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"mock server did not start: {line!r}")
        self.url = m.group(1)
        self.base_url = self.url + "/v1"
        self.scripted: Set[str] = set()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def script(self, name: str, script: Dict[str, Any]) -> None:
        self._call("PUT", "/_mock/scripts/" + urllib.parse.quote(name, safe=""), script)
        self.scripted.add(name)

    def log(self, name: str) -> List[Dict[str, Any]]:
        entries: List[Dict[str, Any]] = self._call("GET", "/_mock/log?script=" + urllib.parse.quote(name, safe=""))
        return entries

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@contextlib.contextmanager
def ctrl_c_after(seconds: float) -> Iterator[None]:
    """Ctrl-C in the main thread after ``seconds``, as an interactive Python has it. A Python
    started with SIGINT ignored (any job a non-interactive shell puts in the background, e.g.
    a CI launched with ``&``) keeps it ignored, and then ``interrupt_main`` does nothing at
    all, so the default handler is installed for the duration."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def free_port() -> int:
    """A loopback TCP port nothing listens on (the kernel's pick, released again)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1 (random port, no RDB, no AOF)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise RuntimeError("redis-server not found: install the Debian package `redis-server` (test.sh does)")
        last = ""
        for _ in range(5):  # another process may take the free port before redis binds it
            self.port = free_port()
            self.proc = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.ping():
                    self.url = f"redis://127.0.0.1:{self.port}"
                    return
                time.sleep(0.05)
            self.proc.kill()
            out = self.proc.communicate()[0] or b""
            last = out.decode(errors="replace")[-500:]
        raise RuntimeError(f"redis-server did not start: {last}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                return c.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    r = RedisServer()
    yield r
    r.close()


@pytest.fixture(scope="session")
def server() -> Iterator[MockServer]:
    s = MockServer()
    yield s
    s.close()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A unique prefix for this test's script (= model) names."""
    base = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"


def policy(
    server: MockServer,
    primary: Sequence[str],
    fallback: Sequence[str] = (),
    *,
    retry: Optional[Dict[str, Any]] = None,
    timeouts: Optional[Dict[str, Any]] = None,
    pricing: Optional[Dict[str, Any]] = None,
    breaker: Optional[Dict[str, Any]] = None,
    route: Optional[Dict[str, Any]] = None,
    fallback_on: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """A one-route policy over the mock server: each deployment's model is its script name
    (models without a script get a plain echo script, so their attempts are logged under
    their name too)."""
    deployments: Dict[str, Any] = {}
    for m in [*primary, *fallback]:
        if m not in server.scripted:
            server.script(m, {})
        d: Dict[str, Any] = {"provider": "mock", "model": m}
        if pricing is not None:
            d["pricing"] = pricing
        deployments[m] = d
    r: Dict[str, Any] = {
        "name": "chat",
        "deployments": list(primary),
        "retry": {"attempts_per_deployment": 1, "max_attempts": 6, "base_delay": "5ms", "max_delay": "20ms", **(retry or {})},
        "timeouts": {"first_token": "3s", "idle": "3s", "total": "15s", **(timeouts or {})},
    }
    if fallback:
        fb: Dict[str, Any] = {"name": "backup", "deployments": list(fallback)}
        if fallback_on is not None:
            fb["on"] = fallback_on
        r["fallbacks"] = [fb]
    r.update(route or {})
    p: Dict[str, Any] = {
        "providers": {"mock": {"kind": "openai", "base_url": server.base_url, "api_key": FAKE_KEY}},
        "deployments": deployments,
        "routes": [r],
        "default_route": "chat",
    }
    if breaker is not None:
        p["breaker"] = breaker
    return p


USER = [{"role": "user", "content": "hello mock"}]
