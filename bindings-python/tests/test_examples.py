"""The examples in examples/python/ run as tests: each must exit 0 and print what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"

EXPECT = {
    "quickstart.py": [
        "request 1: 'Paris is the capital of France.' from gpt-4o",
        "request 3: 'The capital of France is Paris.' from claude-sonnet",
        "after `gpt-4o` failed with permission_denied",
        "breaker gpt-4o: open",
        "error kind=no_route",
    ],
    "async_streaming.py": [
        "Streaming one word at a time from the backup",
        "[finish: stop]",
        "served by spare",
        "stopped after 3 words; closed=True",
        "slow call cancelled after 0.2 s",
    ],
    "error_handling.py": [
        "RateLimitedError: kind=rate_limited status=429 code=rate_limit_exceeded retry_after=30.0",
        "pickled and back: RateLimitedError retry_after=30.0",
        "StreamInterruptedError: partial text 'the answer is'",
        "InvalidRequestError (a ValueError)",
        "ConfigError: kind=config",
    ],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECT)


@pytest.mark.parametrize("example", sorted(EXPECT))
def test_example_runs(example: str) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / example)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    missing: List[str] = [line for line in EXPECT[example] if line not in proc.stdout]
    assert not missing, f"missing {missing} in:\n{proc.stdout}"
