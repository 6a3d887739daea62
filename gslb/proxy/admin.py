"""The proxy's admin API (aiohttp, its own port): health, backends, drain, Prometheus metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gslb.events import events_document, query_since
from gslb.health.metrics import exposition, make_registry
from gslb.health.signing import bearer_ok
from gslb.proxy.core import Proxy
from gslb.proxy.metrics import ProxyCollector
from gslb.proxy.shared import merged

PROXY = web.AppKey("proxy", Any)
REPORTER = web.AppKey("reporter", Any)     # () -> the running reporter.ProxyReporter or None
METRICS = web.AppKey("metrics", CollectorRegistry)
UI = Path(__file__).parent / "ui"
log = logging.getLogger("gslb.proxy")


def proxy_of(request: web.Request) -> Proxy:
    return request.app[PROXY]()


async def healthz(request: web.Request) -> web.Response:
    """200 while every routed pool has a healthy backend; 503 otherwise, so DNS withdraws this region.

    With `report_to`, while every DNS node takes the reports, an empty pool is told to DNS by the report
    (at once, and it returns on the report) and /healthz stays 200: it then says only that this proxy is
    alive and reachable. Were it 503 too, the checks would mark the site down and its return would wait
    for their `rise` on top of the report. Once a node stops taking the reports, 503 again."""
    proxy = proxy_of(request)
    routed = {name for route in proxy.config.routes for name, _ in route.pools}
    empty = sorted(name for name in routed if proxy.pools[name].healthy_count() == 0)
    if proxy.stopping:
        return web.json_response({"ok": False, "why": "draining for shutdown"}, status=503)
    if empty:
        reporter = request.app[REPORTER]()
        if reporter is not None and reporter.delivering():
            return web.json_response({"ok": True, "pools_without_healthy_backend": empty,
                                      "told_dns_by_report": True})
        return web.json_response({"ok": False, "pools_without_healthy_backend": empty}, status=503)
    return web.json_response({"ok": True})


def totals(proxy: Proxy) -> dict:
    """Counters of the whole proxy: this process's, plus the other workers' (a second old at most)."""
    return merged(proxy, proxy.share.others() if proxy.share is not None else [])


async def backends(request: web.Request) -> web.Response:
    """Per pool and backend: state, drain, requests in flight and answered, EWMA latency, ejections."""
    proxy = proxy_of(request)
    counts = totals(proxy)["backends"]
    out = {}
    for name, pool in proxy.pools.items():
        rows = []
        for b in pool.backends:
            active, requests, ejections = counts.get(f"{name}|{b.address}", (b.active, b.requests, b.ejections))[:3]
            rows.append({
                "address": b.address, "weight": b.config.weight, "effective_weight": round(b.effective_weight(), 3),
                "state": "ejected" if time.monotonic() < b.ejected_until else b.health.state if b.health else "unchecked",
                "healthy": b.healthy, "drain": b.drain, "active": active, "requests": requests,
                "ewma_latency_ms": None if b.latency.value is None else round(b.latency.value, 3),
                "ejections": ejections})
        out[name] = {"algorithm": pool.config.algorithm, "backends": rows}
    return web.json_response({"pools": out})


async def drain(request: web.Request) -> web.Response:
    """POST /v1/backends/{address}/drain or /undrain (Authorization: Bearer TOKEN)."""
    proxy = proxy_of(request)
    if not bearer_ok(proxy.config.admin_token, request.headers.get("Authorization")):
        return web.json_response({"error": "missing or wrong bearer token (admin_token)"}, status=401)
    address, action = request.match_info["address"], request.match_info["action"]
    found = [b for pool in proxy.pools.values() for b in pool.backends if b.address == address]
    if not found:
        return web.json_response({"error": f"no backend {address}"}, status=404)
    for backend in found:
        if backend.drain != (action == "drain"):
            kind = "backend.drained" if action == "drain" else "backend.undrained"
            proxy.events.emit(log, kind, f"backend {address} of pool {backend.pool.name} {kind.split('.')[1]} "
                              "over the admin API", pool=backend.pool.name, address=address,
                              reason=f"{action} over the admin API")
        backend.drain = action == "drain"
    if proxy.share is not None:
        proxy.share.publish_drain(address, action == "drain")     # the other workers follow within 0.2 s
    return web.json_response({"address": address, "drain": action == "drain", "active": sum(b.active for b in found)})


async def events(request: web.Request) -> web.Response:
    """GET /v1/events?since=ID[&limit=N][&kind=PREFIX,...]: backend events of this process, oldest first."""
    try:
        after, limit = query_since(request.query)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(events_document(proxy_of(request).events, after, limit, request.query.get("kind")))


async def index(request: web.Request) -> web.FileResponse:
    """GET /: the proxy's live page (backends, state, traffic), plain HTML and JS from gslb/proxy/ui/."""
    return web.FileResponse(UI / "index.html", headers={"Cache-Control": "no-cache"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: gslb/proxy/metrics.py's collector, with the process metrics."""
    return exposition(request.app[METRICS])


def make_admin_app(get_proxy, get_reporter=lambda: None) -> web.Application:
    """The admin app; `get_proxy()` returns the live Proxy (it changes on reload), `get_reporter()` the
    running report_to reporter or None."""
    app = web.Application()
    app[PROXY] = get_proxy
    app[REPORTER] = get_reporter
    app[METRICS] = make_registry(ProxyCollector(get_proxy))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/backends", backends)
    app.router.add_post("/v1/backends/{address}/{action:drain|undrain}", drain)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/", index)
    app.router.add_static("/ui/", UI, append_version=False)
    return app

