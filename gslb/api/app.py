"""The HTTP API (aiohttp): read-only views of the server, plus the health room's routes."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from aiohttp import web
from dnslib import QTYPE

from gslb.api.auth import operator_refusal, read_guard
from gslb.api.dashboard import add_dashboard_routes
from gslb.api.health import add_health_routes
from gslb.api.keys import SERVER
from gslb.api.overrides import add_override_routes
from gslb.explain import explain
from gslb.steering.client import Client


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the server runs and serves at least one zone."""
    server = request.app[SERVER]
    ok = bool(server.served_zones)
    return web.json_response({"ok": ok, "zones": len(server.served_zones)}, status=200 if ok else 503)


async def zones(request: web.Request) -> web.Response:
    """What is loaded: per zone its origin, serial, file and names; per file the last reload result."""
    server = request.app[SERVER]
    loaded = [{
        "origin": z.origin, "serial": z.soa.serial, "file": z.file, "names": z.name_count,
        "pools": sorted(z.pools),
    } for z in sorted(server.served_zones.values(), key=lambda z: z.origin)]
    files = [{
        "file": s.file, "origin": s.origin, "ok": s.ok, "loaded_at": s.loaded_at,
        "problems": [str(p) for p in s.problems],
    } for s in sorted(server.store.status.values(), key=lambda s: s.file)]
    return web.json_response({"zones": loaded, "files": files, "last_reload": server.store.last_reload,
                              "now": time.time()})


async def explain_handler(request: web.Request) -> web.Response:
    """GET /v1/explain?name=N&type=A&client=IP|subnet=CIDR: the live decision, as `gslb explain` prints it."""
    server = request.app[SERVER]
    q = request.query
    try:
        if "subnet" in q:
            client = Client(ipaddress.ip_network(q["subnet"], strict=False), True)
        else:
            client = Client(ipaddress.ip_network(q.get("client", request.remote or "127.0.0.1")))
        qtype = q.get("type", "A").upper()
        if "name" not in q or qtype not in QTYPE.reverse:
            raise ValueError("need name= and a record type= like A or AAAA")
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    table = server.handler.table
    result = explain(table.zones, q["name"], qtype, client, table.health, table.data, table.locator)
    return web.json_response(result.as_json())


async def reload_handler(request: web.Request) -> web.Response:
    """POST /v1/reload (operator token): reload the zone files now, as SIGHUP does; DNS workers too."""
    refusal = operator_refusal(request)
    if refusal is not None:
        return refusal
    server = request.app[SERVER]
    changed = await server.reload_async(force=True)
    server.signal_workers_reload()
    problems = [str(p) for s in server.store.status.values() for p in s.problems]
    return web.json_response({
        "ok": not problems, "changed": changed, "problems": problems,
        "zones": [{"origin": z.origin, "serial": z.soa.serial}
                  for z in sorted(server.store.zones.values(), key=lambda z: z.origin)]})


def make_api_app(server: Any) -> web.Application:
    """The API application for a running `gslb.server.Server` (reads pass `read_guard`)."""
    app = web.Application(middlewares=[read_guard])
    app[SERVER] = server
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/zones", zones)
    app.router.add_get("/v1/explain", explain_handler)
    app.router.add_post("/v1/reload", reload_handler)
    add_health_routes(app)
    add_override_routes(app)
    add_dashboard_routes(app)
    return app
