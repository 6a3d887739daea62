"""`gslb proxy` as a process: SIGHUP reloads, SIGTERM drains up to drain_timeout, reloads let requests in
flight finish on the old config."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO
from proxyharness import Backend, ProxyRunner, config


@pytest.fixture
def two_backends():
    made = [Backend("a"), Backend("b")]
    yield made
    for b in made:
        b.close()


def get(port: int, path: str = "/", timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start(path, text: str) -> tuple[subprocess.Popen, int]:
    path.write_text(text)
    port = int(text.split("listen: [127.0.0.1:")[1].split("]")[0])
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "proxy", "--config", str(path)], cwd=REPO,
                            env=dict(os.environ, GSLB_LOG_LEVEL="WARNING"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


def test_sighup_reloads(two_backends, tmp_path):
    a, b = two_backends
    path = tmp_path / "p.yaml"
    text = config([a])
    proc, port = start(path, text)
    try:
        assert get(port)[1] == b"a"
        before = os.stat(path)
        path.write_text(text.replace(a.address, b.address))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))   # hide the edit from the file watcher
        time.sleep(1.5)
        assert get(port)[1] == b"a"
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and get(port)[1] != b"b":
            time.sleep(0.05)
        assert get(port)[1] == b"b"
    finally:
        proc.terminate()
        proc.wait(15)


def test_sigterm_waits_for_requests_in_flight_then_exits(two_backends, tmp_path):
    a, _ = two_backends
    a.delay = 0.8
    proc, port = start(tmp_path / "p.yaml", config([a]))
    results: list = []
    thread = threading.Thread(target=lambda: results.append(get(port)))
    thread.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    thread.join()
    assert results == [(200, b"a")]


def test_sigterm_gives_up_after_drain_timeout(two_backends, tmp_path):
    a, _ = two_backends
    a.delay = 5
    proc, port = start(tmp_path / "p.yaml", config([a], top="drain_timeout: 0.3\n"))
    errors: list = []

    def slow() -> None:
        try:
            get(port)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    stopped = time.monotonic() - started
    thread.join()
    assert errors and stopped < 4            # not the backend's 5 s: cut at drain_timeout


def test_a_reload_lets_requests_in_flight_finish(two_backends, tmp_path):
    a, b = two_backends
    a.delay = 0.6
    text = config([a])
    px = ProxyRunner(tmp_path, text)
    try:
        results: list = []
        thread = threading.Thread(target=lambda: results.append(get(px.port)))
        thread.start()
        time.sleep(0.2)
        assert px.reload(text.replace(a.address, b.address))
        assert get(px.port) == (200, b"b")
        thread.join()
        assert results == [(200, b"a")]
    finally:
        px.close()
