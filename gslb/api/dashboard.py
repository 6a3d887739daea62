"""The live dashboard at `/` and the JSON it reads that no other route gives: events and the map.

The page (gslb/api/ui/: plain HTML, CSS and JS, no build step, nothing fetched from elsewhere) is a
shell without data, so it and its files load without a key; everything it shows comes from the
guarded JSON routes (`/v1/health`, `/v1/zones`, `/v1/events`, `/v1/map`, `/metrics`), which need the
read token when one is set: the page asks for it once and sends it as a bearer token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from gslb.api.keys import SERVER
from gslb.events import events_document, query_since

UI = Path(__file__).parent / "ui"
UI_PREFIX = "/ui/"


async def index(request: web.Request) -> web.FileResponse:
    """GET /: the dashboard (`/status` stays the text view)."""
    return web.FileResponse(UI / "index.html", headers={"Cache-Control": "no-cache"})


async def get_events(request: web.Request) -> web.Response:
    """GET /v1/events?since=ID[&limit=N][&kind=PREFIX,...]: the events after ID, oldest first."""
    try:
        after, limit = query_since(request.query)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(events_document(request.app[SERVER].events, after, limit, request.query.get("kind")))


def map_document(server: Any) -> dict:
    """Where things are: every site with coordinates (its own, else its region's) and every prober
    region that reports or is configured, with coordinates from regions.yaml."""
    regions = server.steering.regions
    sites = []
    for zone in sorted(server.served_zones.values(), key=lambda z: z.origin):
        for pool in zone.pools.values():
            for site in pool.sites:
                lat, lon = site.lat, site.lon
                region = regions.get(site.region) if site.region else None
                if (lat is None or lon is None) and region is not None:
                    lat, lon = region.lat, region.lon
                if lat is not None and lon is not None:
                    sites.append({"zone": zone.origin, "pool": pool.name, "site": site.name, "region": site.region,
                                  "lat": lat, "lon": lon})
    monitor = server.health_service.monitor
    names = set(monitor.regions) | ({server.health_service.settings.region} - {None})
    probers = []
    for name in sorted(names):
        region = regions.get(name)
        if region is not None:
            probers.append({"name": name, "lat": region.lat, "lon": region.lon,
                            "counted": name in monitor.counted, "reporting": name in monitor.regions})
    return {"sites": sites, "probers": probers}


async def get_map(request: web.Request) -> web.Response:
    """GET /v1/map: `map_document` as JSON."""
    return web.json_response(map_document(request.app[SERVER]))


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static(UI_PREFIX, UI, append_version=False)
    app.router.add_get("/v1/events", get_events)
    app.router.add_get("/v1/map", get_map)
