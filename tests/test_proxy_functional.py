"""The L7 proxy with real backends and real HTTP clients over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter

import aiohttp
import pytest
from conftest import REPO
from httpsite import free_port
from metricsutil import samples, value
from proxyharness import Backend, ProxyRunner, as_json, config


def request(px, path: str = "/", method: str = "GET", headers: dict | None = None, body: bytes | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(px.host, px.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            conn.close()


def names(px, n: int, **kw) -> list[str]:
    return [request(px, **kw)[2].decode() for _ in range(n)]


# -- routing --------------------------------------------------------------------------------------

def test_routes_by_host_wildcard_path_header_and_default(backends, proxy):
    a, b, c, d = backends("api", "wild", "canaryhdr", "default")
    pools = (f'  api: {{backends: [{{address: "{a.address}"}}]}}\n  wild: {{backends: [{{address: "{b.address}"}}]}}\n'
             f'  canary: {{backends: [{{address: "{c.address}"}}]}}\n')
    routes = ('  - {host: api.example.com, path: /v2/, pool: api}\n  - {host: "*.example.org", pool: wild}\n'
              '  - {header: "X-Canary: 1", pool: canary}\n  - {default: true, pool: app}\n')
    px = proxy(config([d], extra_pool=pools, routes=routes))
    assert request(px, "/v2/x", headers={"Host": "api.example.com"})[2] == b"api"
    assert request(px, "/v1/x", headers={"Host": "api.example.com"})[2] == b"default"
    assert request(px, "/", headers={"Host": "www.example.org:8080"})[2] == b"wild"
    assert request(px, "/", headers={"Host": "x.test", "X-Canary": "1"})[2] == b"canaryhdr"
    assert request(px, "/", headers={"Host": "x.test"})[2] == b"default"


def test_no_matching_route_is_404_and_no_backend_is_503(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a], routes="  - {host: only.example.com, pool: app}\n"))
    status, _, body = request(px, "/", headers={"Host": "other.example.com"})
    assert status == 404 and body == b"no route for this request\n"
    a.stop()
    px2 = proxy(config([a], extra_pool="    check: {path: /healthz, interval: 0.2, fall: 1, rise: 1}\n"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and px2.server.proxy.pools["app"].healthy_count():
        time.sleep(0.05)
    started = time.monotonic()
    status, _, body = request(px2, "/")
    assert status == 503 and body == b"no healthy backend in pool app\n" and time.monotonic() - started < 1


# -- algorithms -----------------------------------------------------------------------------------

def test_round_robin_alternates(backends, proxy):
    a, b = backends("a", "b")
    px = proxy(config([a, b]))
    got = names(px, 6)
    assert sorted(Counter(got).values()) == [3, 3] and all(got[i] != got[i + 1] for i in range(5))


def test_smooth_weighted_round_robin_order(backends, proxy):
    a, b, c = backends("a", "b", "c")
    text = config([a, b, c], algorithm="weighted_round_robin").replace(
        f'{{address: "{a.address}"}}', f'{{address: "{a.address}", weight: 5}}')
    px = proxy(text)
    assert "".join(names(px, 7)) == "aabacaa"       # nginx's smooth sequence for weights 5, 1, 1


def test_least_connections_avoids_the_busy_backend(backends, proxy):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.5
    px = proxy(config([slow, fast], algorithm="least_connections"))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(request(px)[2].decode())) for _ in range(10)]
    for t in threads:
        t.start()
        time.sleep(0.03)
    for t in threads:
        t.join()
    assert Counter(results)["fast"] >= 8


def test_ewma_prefers_the_faster_backend(backends, proxy):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.05
    px = proxy(config([slow, fast], algorithm="ewma"))
    got = Counter(names(px, 40))
    assert got["fast"] >= 30


def test_ip_hash_keeps_a_client_on_one_backend(backends, proxy):
    a, b, c = backends("a", "b", "c")
    px = proxy(config([a, b, c], algorithm="ip_hash"))
    assert len(set(names(px, 10))) == 1


def test_consistent_hash_on_a_header(backends, proxy):
    a, b, c = backends("a", "b", "c")
    px = proxy(config([a, b, c], algorithm="consistent_hash", extra_pool="    hash: header:X-User\n"))
    by_user = {u: request(px, headers={"X-User": f"user{u}"})[2] for u in range(30)}
    assert all(request(px, headers={"X-User": f"user{u}"})[2] == n for u, n in by_user.items())
    assert len(set(by_user.values())) == 3


def test_canary_split_follows_weights(backends, proxy):
    stable, canary = backends("stable", "canary")
    pools = f'  canary: {{backends: [{{address: "{canary.address}"}}]}}\n'
    routes = "  - {default: true, pools: [{pool: app, weight: 90}, {pool: canary, weight: 10}]}\n"
    px = proxy(config([stable], extra_pool=pools, routes=routes))
    got = Counter(names(px, 400))
    assert 15 <= got["canary"] <= 70 and got["stable"] + got["canary"] == 400


# -- health ---------------------------------------------------------------------------------------

def test_active_checks_remove_and_restore_a_backend(backends, proxy):
    a, b = backends("a", "b")
    px = proxy(config([a, b], extra_pool="    check: {path: /healthz, interval: 0.2, rise: 2, fall: 2}\n"))
    a.health_status = 503
    time.sleep(1.0)
    assert set(names(px, 6)) == {"b"}
    body = fetch(px.admin_url + "/v1/backends")
    states = {x["address"]: x["state"] for x in as_json(body)["pools"]["app"]["backends"]}
    assert states == {a.address: "down", b.address: "up"}
    a.health_status = 200
    time.sleep(1.0)
    assert set(names(px, 6)) == {"a", "b"}


def test_healthz_reports_a_pool_without_healthy_backends(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a], extra_pool="    check: {path: /healthz, interval: 0.2, rise: 1, fall: 1}\n"))
    assert http_status(px.admin_url + "/healthz") == 200
    a.health_status = 500
    time.sleep(0.8)
    assert http_status(px.admin_url + "/healthz") == 503


def test_passive_ejection_after_consecutive_5xx(backends, proxy):
    bad, good = backends("bad", "good")
    bad.status = 500
    px = proxy(config([bad, good], extra_pool="    outlier: {failures: 3, ejection: 30}\n"))
    first = names(px, 6)
    assert first.count("bad") == 3
    assert set(names(px, 6)) == {"good"}


# -- sticky sessions ------------------------------------------------------------------------------

def test_sticky_cookie_pins_and_repins(backends, proxy):
    a, b = backends("a", "b")
    px = proxy(config([a, b], extra_pool="    sticky: {cookie: GSLBSTICKY, ttl: 60}\n"))
    _, headers, body = request(px)
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("GSLBSTICKY=") and "Max-Age=60" in headers["set-cookie"]
    assert set(names(px, 6, headers={"Cookie": cookie})) == {body.decode()}
    name, _, value = cookie.partition("=")
    tampered = f"{name}={'0' if value[0] != '0' else '1'}{value[1:]}"     # another backend ID, same MAC
    _, h2, _ = request(px, headers={"Cookie": tampered})
    assert "set-cookie" in h2                       # a forged pin is not honoured: a new pin is issued
    pinned = a if body == b"a" else b
    assert http_status(px.admin_url + f"/v1/backends/{pinned.address}/drain", method="POST", token="tok") == 200
    status, h3, other = request(px, headers={"Cookie": cookie})
    assert status == 200 and other != body and "set-cookie" in h3


# -- lifecycle ------------------------------------------------------------------------------------

def test_reload_applies_new_routes_and_keeps_old_config_when_broken(backends, proxy, caplog):
    a, b = backends("a", "b")
    text = config([a])
    px = proxy(text)
    assert request(px)[2] == b"a"
    assert px.reload(text.replace(a.address, b.address))
    assert request(px)[2] == b"b"
    assert not px.reload(text.replace("algorithm: round_robin", "algorithm: fastest"))
    assert f"{px.path}:7: pool 'app': algorithm 'fastest'" in caplog.text
    assert request(px)[2] == b"b"


def test_drain_admin_needs_token_and_inflight_requests_finish(backends, proxy):
    a, b = backends("a", "b")
    a.delay = 0.6
    px = proxy(config([a, b]))
    assert http_status(px.admin_url + f"/v1/backends/{a.address}/drain", method="POST") == 401
    results = []
    thread = threading.Thread(target=lambda: results.extend(names(px, 2)))
    thread.start()
    time.sleep(0.2)                                  # one request is now in flight on a (slow)
    assert http_status(px.admin_url + f"/v1/backends/{a.address}/drain", method="POST", token="tok") == 200
    assert set(names(px, 4)) == {"b"}
    thread.join()
    assert "a" in results                            # the in-flight request on a finished


def test_shutdown_waits_for_requests_in_flight(backends, tmp_path):
    (a,) = backends("a")
    a.delay = 0.5
    px = ProxyRunner(tmp_path, config([a]))
    results = []
    thread = threading.Thread(target=lambda: results.append(request(px)))
    thread.start()
    time.sleep(0.15)
    px.close()
    thread.join()
    assert results[0][0] == 200 and results[0][2] == b"a"
    with pytest.raises(OSError):
        socket.create_connection((px.host, px.port), timeout=1).close()


# -- proxying correctly -----------------------------------------------------------------------------

def test_headers_forwarded_and_hop_by_hop_removed(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    _, headers, body = request(px, "/headers", headers={"Host": "shop.example.com", "X-Forwarded-For": "203.0.113.9",
                                                        "X-Request-ID": "abc123", "Keep-Alive": "timeout=5",
                                                        "Proxy-Connection": "keep-alive", "TE": "trailers"})
    seen = {k.lower(): v for k, v in as_json(body)["headers"].items()}
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"] == "shop.example.com"
    assert seen["x-request-id"] == "abc123" and headers["x-request-id"] == "abc123"
    assert "keep-alive" not in seen and "proxy-connection" not in seen and "te" not in seen
    _, headers, body = request(px, "/headers")
    generated = as_json(body)["headers"]["X-Request-ID"]
    assert len(generated) == 16 and headers["x-request-id"] == generated


def test_large_bodies_stream_both_ways(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    size = 30 * 1024 * 1024
    _, _, body = request(px, f"/big/{size}")
    assert len(body) == size
    payload = os.urandom(8 * 1024 * 1024)

    def chunks():
        for i in range(0, len(payload), 1 << 20):
            yield payload[i:i + (1 << 20)]

    conn = http.client.HTTPConnection(px.host, px.port, timeout=20)
    conn.request("POST", "/echo", body=chunks(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    result = json.loads(conn.getresponse().read())
    conn.close()
    assert result == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), "backend": "a"}


def test_keep_alive_to_the_client_and_upstream_reuse(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))
    conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
    for _ in range(20):
        assert request(px, conn=conn)[2] == b"a"
    conn.close()
    assert len(a.peers) == 1                         # 20 requests, one upstream connection
    # The proxy pools the connection just after writing the last response, on its own thread: the
    # client may read that response first, so wait for the pooling itself.
    idle = px.server.proxy.pools["app"].backends[0].idle
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(idle) != 1:
        time.sleep(0.01)
    assert len(idle) == 1


def test_websocket_upgrade_both_ways(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a]))

    async def talk() -> list[str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{px.url}/ws") as ws:
            got = [(await ws.receive()).data]
            await ws.send_str("ping")
            got.append((await ws.receive()).data)
            return got

    assert asyncio.run(talk()) == ["hello from a", "echo ping"]


def test_read_timeout_is_504_and_failed_connect_retries_idempotent_requests(backends, proxy):
    slow, good = backends("slow", "good")
    slow.delay = 2
    px = proxy(config([slow], top="timeouts: {read: 0.3}\n"))
    status, _, body = request(px)
    assert status == 504 and b"sent nothing for 0.3 s" in body
    dead = f"127.0.0.1:{free_port()}"
    px2 = proxy(config([good]).replace(f'[{{address: "{good.address}"}}]',
                                       f'[{{address: "{dead}"}}, {{address: "{good.address}"}}]'))
    assert {request(px2)[2] for _ in range(4)} == {b"good"}           # GET retried on the other backend
    px3 = proxy(config([good]).replace(f'[{{address: "{good.address}"}}]',
                                       f'[{{address: "{dead}"}}, {{address: "{good.address}"}}]'))
    statuses = [request(px3, "/", method="POST", body=b"x")[0] for _ in range(4)]
    # POST is not retried: the one that met the refusal gets 502; the refused backend is then ejected
    assert sorted(statuses) == [200, 200, 200, 502]


def test_limits_headers_body_rate_and_connections(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a], top="limits: {max_header_size: 2048, max_body_size: 1000}\n"
                               "rate_limit: {rate: 1, burst: 5}\n"))
    assert request(px, headers={"X-Big": "z" * 4000})[0] == 431
    assert request(px, "/echo", method="POST", body=b"z" * 2000)[0] == 413
    statuses = Counter(request(px)[0] for _ in range(8))
    assert statuses[429] >= 2 and statuses[200] <= 5


def test_tls_listener(backends, tmp_path, proxy):
    (a,) = backends("a")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    port = free_port()
    text = config([a], extra_pool="    sticky: {cookie: PIN, ttl: 60}\n").replace(
        "listen: [", f'listen: [{{address: "127.0.0.1:{port}", tls: {{cert: {cert}, key: {key}}}}}, ', 1)
    px = proxy(text)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    conn.request("GET", "/headers")
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert body["headers"]["X-Forwarded-Proto"] == "https" and conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert resp.getheader("Set-Cookie").endswith("; Secure")          # a pin made over TLS stays on TLS
    plain = http.client.HTTPConnection(*px.server.addresses[1], timeout=5)
    assert "Secure" not in request(px, conn=plain)[1]["set-cookie"]
    plain.close()


def test_metrics_count_requests(backends, proxy):
    (a,) = backends("a")
    px = proxy(config([a], routes="  - {name: api, host: api.test, pool: app}\n  - {default: true, pool: app}\n"))
    names(px, 3)
    request(px, headers={"Host": "api.test"})
    assert http_status(px.admin_url + f"/v1/backends/{a.address}/drain", method="POST", token="tok") == 200
    assert request(px)[0] == 503
    s = samples(fetch(px.admin_url + "/metrics"))
    requests = "gslb_proxy_requests_total"
    assert value(s, requests, route="default", pool="app", backend=a.address, status="200") == 3
    assert value(s, requests, route="api", pool="app", backend=a.address, status="200") == 1
    assert value(s, requests, route="default", pool="app", backend="-", status="503") == 1
    assert value(s, "gslb_proxy_request_seconds_count", pool="app") == 5
    assert value(s, "gslb_proxy_backend_up", pool="app", backend=a.address) == 0


def test_workers_share_the_port(backends, tmp_path):
    a, b = backends("a", "b")
    path = tmp_path / "w.yaml"
    text = config([a, b])
    path.write_text(text)
    port = int(text.split("127.0.0.1:")[1].split("]")[0])
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "proxy", "--config", str(path), "--workers", "2"],
                            cwd=REPO, env=dict(os.environ, GSLB_LOG_LEVEL="WARNING"))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        got = set()
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            got.add(conn.getresponse().read())
            conn.close()
        assert got == {b"a", b"b"}
        assert len(children_of(proc.pid)) == 2
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


# -- small helpers ----------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    """Process ids whose parent is pid (from /proc, no procps needed)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def fetch(url: str) -> str:
    conn, path = _conn(url)
    conn.request("GET", path)
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def _conn(url: str) -> tuple[http.client.HTTPConnection, str]:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=5), "/" + path


def http_status(url: str, method: str = "GET", token: str | None = None) -> int:
    conn, path = _conn(url)
    conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
    status = conn.getresponse().status
    conn.close()
    return status


def test_fail_open_tries_backends_that_checks_call_down(backends, proxy):
    (a,) = backends("a")
    a.health_status = 500
    check = "    check: {path: /healthz, interval: 0.2, rise: 1, fall: 1}\n"
    closed = proxy(config([a], extra_pool=check))
    opened = proxy(config([a], extra_pool=check + "    fail_open: true\n"))
    time.sleep(0.8)
    assert request(closed)[0] == 503
    assert request(opened)[:3:2] == (200, b"a")


def test_max_connections_per_backend(backends, proxy):
    a, b = backends("a", "b")
    a.delay = b.delay = 0.5
    text = config([a, b]).replace(f'{{address: "{a.address}"}}', f'{{address: "{a.address}", max_connections: 1}}')
    text = text.replace(f'{{address: "{b.address}"}}', f'{{address: "{b.address}", max_connections: 1}}')
    px = proxy(text)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(request(px)[0])) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 503]


def test_access_log_line(backends, proxy, tmp_path):
    (a,) = backends("a")
    log = tmp_path / "access.log"
    px = proxy(config([a]).replace("access_log: false", f"access_log: {{path: {log}, flush: 0.1}}"))
    request(px, "/path?q=1", headers={"Host": "shop.example.com"})
    deadline = time.monotonic() + 3       # written by the proxy's sweep within `flush` seconds
    while time.monotonic() < deadline and not (log.exists() and log.read_text()):
        time.sleep(0.02)
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    stamp, rest = lines[0].split(" ", 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert re.fullmatch(rf'127\.0\.0\.1 "GET shop\.example\.com/path\?q=1" 200 {a.address} \d+\.\dms', rest)


def test_editing_the_config_file_reloads_it(backends, proxy):
    a, b = backends("a", "b")
    text = config([a])
    px = proxy(text)
    assert request(px)[2] == b"a"
    time.sleep(1.1)                                  # the file's modification time must change
    px.path.write_text(text.replace(a.address, b.address))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and request(px)[2] != b"b":
        time.sleep(0.1)
    assert request(px)[2] == b"b"


def test_a_pooled_connection_the_backend_closed_is_retried_on_a_fresh_one(proxy):
    """Backends close idle keep-alive connections (their keep-alive timeout); that must not cost a 502."""
    port = free_port()
    ready = threading.Event()

    def backend() -> None:
        async def handle(reader, writer):
            # Answer the first request of a connection; close on the second without answering, as a
            # backend does when its keep-alive timeout fires just as the proxy reuses the connection.
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", port)
            ready.set()
            async with server:
                await asyncio.sleep(8)

        asyncio.run(main())

    thread = threading.Thread(target=backend, daemon=True)
    thread.start()
    ready.wait(5)
    px = proxy(f"listen: [127.0.0.1:{free_port()}]\nadmin: 127.0.0.1:{free_port()}\naccess_log: false\n"
               f"pools: {{app: {{backends: [{{address: '127.0.0.1:{port}'}}]}}}}\nroutes: [{{default: true, pool: app}}]\n")
    assert [request(px)[0] for _ in range(5)] == [200] * 5


def test_power_of_two_avoids_the_busy_backend(backends, proxy):
    slow, fast = backends("slow", "fast")
    slow.delay = 0.5
    px = proxy(config([slow, fast], algorithm="power_of_two"))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(request(px)[2].decode())) for _ in range(10)]
    for t in threads:
        t.start()
        time.sleep(0.03)
    for t in threads:
        t.join()
    assert Counter(results)["fast"] >= 8          # with two backends, both are always the two compared


def test_random_follows_weights(backends, proxy):
    a, b = backends("a", "b")
    px = proxy(config([a, b], algorithm="random").replace(f'{{address: "{a.address}"}}',
                                                          f'{{address: "{a.address}", weight: 3}}'))
    got = Counter(names(px, 400))
    assert 250 <= got["a"] <= 350 and got["a"] + got["b"] == 400


def test_consistent_hash_on_a_cookie(backends, proxy):
    a, b, c = backends("a", "b", "c")
    px = proxy(config([a, b, c], algorithm="consistent_hash", extra_pool="    hash: cookie:session\n"))
    by_session = {s: request(px, headers={"Cookie": f"theme=dark; session=s{s}"})[2] for s in range(30)}
    assert all(request(px, headers={"Cookie": f"session=s{s}"})[2] == n for s, n in by_session.items())
    assert len(set(by_session.values())) == 3


def test_connection_failures_eject_and_active_checks_bring_back(backends, proxy):
    (good,) = backends("good")
    flaky = Backend("flaky")
    flaky_port = flaky.port
    flaky.close()                                  # refuses connections for now
    check = "    check: {path: /healthz, interval: 0.2, rise: 2, fall: 5}\n    outlier: {failures: 2, ejection: 0.5}\n"
    text = config([good], extra_pool=check).replace(
        f'[{{address: "{good.address}"}}]', f'[{{address: "127.0.0.1:{flaky_port}"}}, {{address: "{good.address}"}}]')
    px = proxy(text)
    for _ in range(6):
        request(px)
    rows = {r["address"]: r for r in as_json(fetch(px.admin_url + "/v1/backends"))["pools"]["app"]["backends"]}
    assert rows[f"127.0.0.1:{flaky_port}"]["ejections"] >= 1
    back = Backend("flaky", port=flaky_port)       # up again: after the ejection, `rise` checks return it
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "flaky" not in names(px, 4):
            time.sleep(0.1)
        assert "flaky" in names(px, 4)
    finally:
        back.close()


def test_retries_are_bounded_by_the_retry_budget(backends, proxy):
    """`retries` and its budget govern connects that time out (refusals go to the next backend, unbudgeted)."""
    (good,) = backends("good")
    # A backend whose accept queue is full: the kernel drops further SYNs, so connecting times out.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    filler = socket.create_connection(stuck.getsockname())
    dead = "{}:{}".format(*stuck.getsockname())
    text = config([good], top="timeouts: {connect: 0.02}\n",
                  extra_pool="    outlier: {failures: 100000, ejection: 1}\n").replace(
        f'[{{address: "{good.address}"}}]', f'[{{address: "{dead}"}}, {{address: "{good.address}"}}]')
    px = proxy(text)
    try:
        conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
        statuses = Counter()
        for _ in range(60):
            status, _, _ = request(px, conn=conn)
            statuses[status] += 1
            if status != 200:                            # a 502 closes nothing, but reconnect to be safe
                conn.close()
                conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
        conn.close()
    finally:
        filler.close()
        stuck.close()
    # half the picks hit the stuck backend; the budget (20 % of requests + 3/s) retries only some of them
    assert statuses[200] >= 33 and statuses[502] >= 5
