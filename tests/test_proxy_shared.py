"""`gslb proxy --workers N`: one admin API for all workers. A drain reaches every worker, metrics and
/v1/backends count every worker's requests, and a sticky cookie from one worker holds in another."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO
from proxyharness import Backend, ProxyRunner, config

WORKERS = 2
REQUESTS = 40        # one connection each: SO_REUSEPORT spreads them over the workers


@pytest.fixture
def two_backends():
    made = [Backend("a"), Backend("b")]
    yield made
    for b in made:
        b.close()


@pytest.fixture
def workers(two_backends, tmp_path):
    text = config(two_backends)
    path = tmp_path / "w.yaml"
    path.write_text(text)
    port = int(text.split("listen: [127.0.0.1:")[1].split("]")[0])
    admin = int(text.split("admin: 127.0.0.1:")[1].split("\n")[0])
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "proxy", "--config", str(path), "--workers", str(WORKERS)],
                            cwd=REPO, env=dict(os.environ, GSLB_LOG_LEVEL="WARNING"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if get(port, "/")[0] == 200 and get(admin, "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    yield port, admin
    proc.terminate()
    assert proc.wait(15) == 0


def get(port: int, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_an_admin_drain_reaches_every_worker(two_backends, workers):
    port, admin = workers
    a, _ = two_backends
    assert get(admin, f"/v1/backends/{a.address}/drain", "POST", {"Authorization": "Bearer tok"})[0] == 200
    time.sleep(0.6)                                   # workers read the drain within a 0.2 s sweep
    assert {get(port, "/")[2] for _ in range(REQUESTS)} == {b"b"}
    assert get(admin, f"/v1/backends/{a.address}/undrain", "POST", {"Authorization": "Bearer tok"})[0] == 200
    time.sleep(0.6)
    assert {get(port, "/")[2] for _ in range(REQUESTS)} == {b"a", b"b"}


def test_metrics_and_backends_count_every_workers_requests(two_backends, workers):
    port, admin = workers
    time.sleep(1.2)                                   # the fixture's first requests are published
    before, before_rows = served(admin), answered(admin)
    for _ in range(REQUESTS):
        assert get(port, "/")[0] == 200
    deadline = time.monotonic() + 4                   # each worker publishes its counters every second
    while time.monotonic() < deadline and served(admin) - before < REQUESTS:
        time.sleep(0.2)
    assert served(admin) - before == REQUESTS
    assert answered(admin) - before_rows == REQUESTS


def answered(admin: int) -> int:
    """Requests answered by the backends, summed from /v1/backends."""
    return sum(r["requests"] for r in json.loads(get(admin, "/v1/backends")[2])["pools"]["app"]["backends"])


def served(admin: int) -> int:
    """Requests answered with 200, summed from /metrics."""
    text = get(admin, "/metrics")[2].decode()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("gslb_proxy_requests_total{") and 'status="200"' in line)


def test_a_random_sticky_key_survives_a_reload(two_backends, tmp_path):
    text = config(two_backends, extra_pool="    sticky: {cookie: PIN, ttl: 60}\n").replace("admin_token: tok\n", "")
    px = ProxyRunner(tmp_path, text)
    try:
        _, headers, body = get(px.port, "/")
        cookie = headers["set-cookie"].split(";")[0]
        assert px.reload(text.replace("ttl: 60", "ttl: 61"))
        for _ in range(4):
            _, headers, again = get(px.port, "/", headers={"Cookie": cookie})
            assert again == body and "set-cookie" not in headers
    finally:
        px.close()
