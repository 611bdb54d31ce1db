"""Fixtures: a tiny text checkpoint (BPE, ℓ = 2, L = 16) and `prime serve` started on a free localhost port."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from prime_plugin_text.testing import tiny_text_checkpoint


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory):
    return tiny_text_checkpoint(tmp_path_factory.mktemp("serve-ckpt"), sets=("sample.steps=8",))


class Server:
    """A `prime serve` subprocess; ``url`` is read from its first line."""

    def __init__(self, ckpt: str, *args: str, env: dict | None = None):
        cmd = [sys.executable, "-m", "prime_core", "serve", ckpt, "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        match = re.search(r"http://\S+", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"prime serve did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = match.group(0)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            h = self.health()
            if predicate(h):
                return h
            time.sleep(0.02)
        raise AssertionError(f"server state never matched: {self.health()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.proc.wait(timeout=60)
        self.proc.kill()
        return self.proc.wait()


@pytest.fixture(scope="session")
def server(ckpt):
    s = Server(ckpt)
    yield s
    s.stop()


@pytest.fixture
def start(ckpt):
    """Start a server with extra flags; stopped at the end of the test."""
    started = []

    def run(*args, env=None):
        s = Server(ckpt, *args, env=env)
        started.append(s)
        return s

    yield run
    for s in started:
        s.stop()
