"""The HTTP API (aiohttp): read-only views of the server, plus the health room's routes."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

SERVER = web.AppKey("server", Any)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the server runs and serves at least one zone."""
    server = request.app[SERVER]
    ok = bool(server.store.zones)
    return web.json_response({"ok": ok, "zones": len(server.store.zones)}, status=200 if ok else 503)


async def zones(request: web.Request) -> web.Response:
    """What is loaded: per zone its origin, serial, file and names; per file the last reload result."""
    server = request.app[SERVER]
    loaded = [{
        "origin": z.origin, "serial": z.soa.serial, "file": z.file, "names": len(z.names),
        "pools": sorted(z.pools),
    } for z in sorted(server.store.zones.values(), key=lambda z: z.origin)]
    files = [{
        "file": s.file, "origin": s.origin, "ok": s.ok, "loaded_at": s.loaded_at,
        "problems": [str(p) for p in s.problems],
    } for s in sorted(server.store.status.values(), key=lambda s: s.file)]
    return web.json_response({"zones": loaded, "files": files, "last_reload": server.store.last_reload,
                              "now": time.time()})


def make_api_app(server: Any) -> web.Application:
    """The API application for a running `gslb.server.Server`."""
    app = web.Application()
    app[SERVER] = server
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/zones", zones)
    if server.health_service is not None:
        server.health_service.add_routes(app)
    return app
