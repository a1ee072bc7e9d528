"""What a Python stream adds per chunk (issue 18's target: at most 5 µs).

    bash bench/python/run.sh --stream       # prints a Markdown table (BENCHMARKS.md)
    bash bench/python/run.sh --stream --loop uvloop   # the async readers on uvloop

Each reader takes a 1-word and a 257-word stream from the mock server (release build, one
word per chunk); the difference between the two, less the floor's difference, over the 256
extra chunks, is the per-chunk cost. Readers, interleaved stream by stream:

- floor: a kept-alive blocking socket sending pre-encoded request bytes and reading the
  chunked SSE body with `json.loads` per event (the least Python does with a stream);
- asyncio floor: the same reader on the event loop (`loop.sock_sendall` / `sock_recv` on a
  non-blocking socket), the least an asyncio reader costs: its "added" column is asyncio's
  own price per chunk, which `AsyncRouter.stream` pays too;
- `Router.stream` iterated for events (dicts), `AsyncRouter.stream` likewise under asyncio;
- `Router.stream(...).chunks()`, the OpenAI chunk form the openai transport uses.

Two ways the chunks arrive: burst (the whole stream in one write: parsing, conversion and
hand-over per event) and spaced (1 ms between chunks, so each one is its own read and
wake-up, as from a real provider; wall time is the mock's pauses, so CPU only). CPU is the
process's (`resource.getrusage`), mock server excluded. Below each table: how often the
process's other threads (the runtime's) were woken per extra chunk, from `/proc` (Linux): a
reader that waits on the runtime's reactor costs one such wake-up per spaced chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import resource
import socket
import statistics
import threading
import time
import urllib.request
from typing import Any, Callable, Dict, List

import polyroute
from bench import FAKE_KEY, start_mock, stop_mock

EXTRA = 256


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return (u.ru_utime + u.ru_stime) * 1e6


def put_script(base: str, name: str, words: int, delay_ms: int) -> None:
    step: Dict[str, Any] = {"text": " ".join(["word"] * words)}
    if delay_ms:
        step["chunk_delay_ms"] = delay_ms
    req = urllib.request.Request(base + "/_mock/scripts/" + name, data=json.dumps({"then": step}).encode(), method="PUT")
    urllib.request.urlopen(req).read()


def policy(base: str, model: str) -> Dict[str, Any]:
    return {
        "providers": {"mock": {"kind": "openai", "base_url": base + "/v1", "api_key": FAKE_KEY}},
        "deployments": {"d": {"provider": "mock", "model": model}},
        "routes": [{"name": "chat", "deployments": ["d"]}],
    }


def request_bytes(host: str, port: str, model: str) -> bytes:
    body = json.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {FAKE_KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def count_events(pending: bytes, data: bytes) -> "tuple[int, bytes]":
    """Events completed by `data` (each `data:` payload through `json.loads`), and the rest."""
    events = 0
    *done, pending = (pending + data).split(b"\n\n")
    for ev in done:
        if ev.startswith(b"data: ") and ev[6:] != b"[DONE]":
            json.loads(ev[6:])
            events += 1
    return events, pending


def floor_reader(base: str) -> Callable[[str], int]:
    """A blocking socket reading the chunked SSE body: events split on blank lines, each
    `data:` payload through `json.loads`."""
    host, port = base.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")

    def read(model: str) -> int:
        sock.sendall(request_bytes(host, port, model))
        f.readline()
        while f.readline() not in (b"\r\n", b""):
            pass
        events, pending = 0, b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            data = f.read(size + 2)[:-2] if size else f.readline() and b""
            if not size:
                return events
            got, pending = count_events(pending, data)
            events += got

    return read


def async_floor_reader(base: str, loop: asyncio.AbstractEventLoop) -> Callable[[str], int]:
    """`floor_reader` on the event loop: a non-blocking socket read with `loop.sock_recv`, so
    a read that would block parks in the loop's selector, as a driven `AsyncRouter` stream's
    does."""
    host, port = base.split("//", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    buf = bytearray()

    async def line() -> bytes:
        while (i := buf.find(b"\r\n")) < 0:
            buf.extend(await loop.sock_recv(sock, 65536))
        out = bytes(buf[: i + 2])
        del buf[: i + 2]
        return out

    async def exactly(n: int) -> bytes:
        while len(buf) < n:
            buf.extend(await loop.sock_recv(sock, 65536))
        out = bytes(buf[:n])
        del buf[:n]
        return out

    async def read(model: str) -> int:
        await loop.sock_sendall(sock, request_bytes(host, port, model))
        await line()
        while await line() != b"\r\n":
            pass
        events, pending = 0, b""
        while True:
            size = int((await line()).split(b";")[0], 16)
            if not size:
                await line()
                return events
            got, pending = count_events(pending, (await exactly(size + 2))[:-2])
            events += got

    return lambda model: loop.run_until_complete(read(model))


def other_wakeups() -> int:
    """Voluntary context switches so far of this process's threads other than the calling one
    (Linux; 0 elsewhere): each is a thread that slept and was woken, here the runtime's."""
    me, total = threading.get_native_id(), 0
    for task in glob.glob("/proc/self/task/*"):
        if task.rsplit("/", 1)[1] == str(me):
            continue
        try:
            with open(task + "/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
        except OSError:
            pass  # the thread ended meanwhile
    return total


def measure(readers: Dict[str, Callable[[str], int]], short: str, long: str, n: int, loop: asyncio.AbstractEventLoop) -> Dict[str, List[float]]:
    """Per reader: [p50 wall short, p50 wall long, CPU short, CPU long, other threads' wake-ups
    short, long] (µs; wake-ups per stream)."""
    wall: Dict[str, List[List[float]]] = {k: [[], []] for k in readers}
    cpus: Dict[str, List[float]] = {k: [0.0, 0.0] for k in readers}
    wakes: Dict[str, List[float]] = {k: [0.0, 0.0] for k in readers}
    for _ in range(n):
        for name, read in readers.items():
            for i, model in enumerate((short, long)):
                w, c, t = other_wakeups(), cpu(), time.perf_counter()
                read(model)
                wall[name][i].append((time.perf_counter() - t) * 1e6)
                cpus[name][i] += cpu() - c
                wakes[name][i] += other_wakeups() - w
    return {
        k: [statistics.median(wall[k][0]), statistics.median(wall[k][1]), cpus[k][0] / n, cpus[k][1] / n, wakes[k][0] / n, wakes[k][1] / n]
        for k in readers
    }


def table(title: str, n: int, r: Dict[str, List[float]], with_wall: bool) -> str:
    floor = r["floor"]
    lines = [f"| {title} (n={n} each) | 1 chunk | 257 chunks | per extra chunk | added per chunk |", "|---|---|---|---|---|"]
    for name, v in r.items():
        cols = [("p50 µs", 0)] if with_wall else []
        for what, i in cols + [("CPU µs", 2)]:
            per = (v[i + 1] - v[i]) / EXTRA
            added = "–" if name == "floor" else f"**{per - (floor[i + 1] - floor[i]) / EXTRA:.2f}**"
            lines.append(f"| {name}, {what} | {v[i]:.0f} | {v[i + 1]:.0f} | {per:.2f} | {added} |")
    lines.append("")
    lines.append("| other threads' wake-ups per extra chunk (the runtime's) | |")
    lines.append("|---|---|")
    for name, v in r.items():
        lines.append(f"| {name} | {(v[5] - v[4]) / EXTRA:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mock-server", required=True)
    ap.add_argument("--n", type=int, default=300)
    # The async readers' price per chunk is mostly their loop's (see the asyncio floor row);
    # uvloop's loop is C.
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args()
    proc, base = start_mock(args.mock_server)
    try:
        for name, words, delay in [("burst-1", 1, 0), ("burst-257", 257, 0), ("spaced-1", 1, 1), ("spaced-257", 257, 1)]:
            put_script(base, name, words, delay)
        routers = {m: polyroute.Router(policy(base, m)) for m in ["burst-1", "burst-257", "spaced-1", "spaced-257"]}
        arouters = {m: polyroute.AsyncRouter(policy(base, m)) for m in routers}
        if args.loop == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        msgs = [{"role": "user", "content": "hi"}]

        def events(model: str) -> int:
            return sum(1 for _ in routers[model].stream(msgs))

        def chunks(model: str) -> int:
            return sum(1 for _ in routers[model].stream(msgs).chunks())

        async def aevents(model: str) -> int:
            k = 0
            async for _ in await arouters[model].stream(msgs):
                k += 1
            return k

        readers: Dict[str, Callable[[str], int]] = {
            "floor": floor_reader(base),
            "asyncio floor (`loop.sock_recv`)": async_floor_reader(base, loop),
            "`Router.stream` events": events,
            "`Router.stream(...).chunks()`": chunks,
            "`AsyncRouter.stream` events": lambda m: loop.run_until_complete(aevents(m)),
        }
        for name, read in readers.items():
            got = read("burst-257")
            assert got >= 257, f"{name} read {got} events of a 257-chunk stream"
        measure(readers, "burst-1", "burst-257", 30, loop)
        print(table("burst: the whole stream in one write", args.n, measure(readers, "burst-1", "burst-257", args.n, loop), True))
        print()
        spaced_n = max(args.n // 50, 5)
        print(table("spaced: 1 ms between chunks", spaced_n, measure(readers, "spaced-1", "spaced-257", spaced_n, loop), False))
    finally:
        stop_mock(proc)


if __name__ == "__main__":
    main()
