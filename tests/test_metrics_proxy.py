"""`gslb proxy` admin /metrics: requests, connect errors, retries, ejections, connections and the upstream
latency histogram, from real HTTP traffic through the proxy; linted by `promtool check metrics`."""

from __future__ import annotations

import http.client

from httpsite import free_port
from metricsutil import promtool_check_metrics, samples, total, value
from proxyharness import config
from test_proxy_functional import fetch


def test_proxy_metrics_count_refused_connects_retries_and_ejections(backends, proxy):
    (good,) = backends("good")
    dead = f"127.0.0.1:{free_port()}"              # nothing listens: every connect is refused
    text = config([good]).replace(f'[{{address: "{good.address}"}}]',
                                  f'[{{address: "{dead}"}}, {{address: "{good.address}"}}]')
    px = proxy(text)
    for _ in range(6):
        conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        conn.close()
    body = fetch(px.admin_url + "/metrics")
    s = samples(body)
    # The dead backend was tried once (refused: ejected at once, the request went to the next backend);
    # while ejected nothing is sent to it.
    assert value(s, "gslb_proxy_connect_errors_total", pool="app", backend=dead) == 1
    assert value(s, "gslb_proxy_retries_total", pool="app", backend=dead) == 1
    assert value(s, "gslb_proxy_ejections_total", pool="app", backend=dead) == 1
    assert value(s, "gslb_proxy_backend_up", pool="app", backend=dead) == 0
    assert value(s, "gslb_proxy_connect_errors_total", pool="app", backend=good.address) == 0
    assert value(s, "gslb_proxy_requests_total", route="default", pool="app", backend=good.address, status="200") == 6
    assert value(s, "gslb_proxy_upstream_seconds_count", pool="app", backend=good.address) == 6
    assert 0 < value(s, "gslb_proxy_upstream_seconds_sum", pool="app", backend=good.address) < 6
    assert value(s, "gslb_proxy_request_seconds_count", pool="app") == 6
    assert value(s, "gslb_proxy_client_connections") >= 0
    assert total(s, "gslb_build_info") == 1 and value(s, "process_open_fds") > 0
    promtool_check_metrics(body)
