"""Who may do what through the HTTP API: one place that says whether a request may write (overrides,
reloads) or read. Routes call `operator_refusal`; they never look at keys themselves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gslb.api.keys import SERVER
from gslb.health.signing import bearer_ok


def _refuse(why: str, status: int) -> web.Response:
    return web.json_response({"error": why}, status=status)


def operator_refusal(request: web.Request) -> web.Response | None:
    """None when `request` may change the server's state (overrides, reload), else the response to send."""
    server: Any = request.app[SERVER]
    secret = server.health_service.settings.secret
    if not secret:
        return _refuse("this server has no health secret: set health.secret or GSLB_SECRET", 403)
    if not bearer_ok(secret, request.headers.get("Authorization")):
        return _refuse("missing or wrong bearer token", 401)
    return None
