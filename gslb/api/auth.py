"""Who may do what through the HTTP API: one place that says whether a request may write (overrides,
reloads) or read. Routes that write call `operator_refusal`; reads pass `read_guard` (a middleware).
Routes never look at keys themselves.

Keys (docs/security.md, "API keys"):
- `api.token` ($GSLB_API_TOKEN) authorises writes; with none set, writes are refused (403).
- `api.read_token` ($GSLB_API_READ_TOKEN), when set, is needed for every GET but `/healthz` and the
  dashboard's shell (`/`, `/ui/*`: files without data); the operator token reads too.
- `health.secret` and `health.region_keys` sign prober reports (`POST /v1/reports`) and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gslb.api.keys import SERVER
from gslb.health.signing import bearer_ok

OPEN_PATHS = frozenset({"/healthz"})      # liveness for load balancers and container runtimes: no key
# The dashboard's shell (gslb/api/dashboard.py): HTML, CSS and JS without data; the JSON it reads is guarded.
SHELL_PATHS = frozenset({"/"})
SHELL_PREFIX = "/ui/"
READ_METHODS = frozenset({"GET", "HEAD"})


def _refuse(why: str, status: int) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="gslb"'} if status == 401 else None
    return web.json_response({"error": why}, status=status, headers=headers)


def _is_prober_key(server: Any, header: str | None) -> bool:
    """Whether the bearer token sent is one of the probers' keys (for a message that says so)."""
    settings = server.health_service.settings
    keys = [settings.secret, *getattr(settings, "region_keys", {}).values()]
    return any(bearer_ok(key, header) for key in keys if key)


def operator_refusal(request: web.Request) -> web.Response | None:
    """None when `request` may change the server's state (overrides, reload), else the response to send:
    403 when this server has no operator token, 401 for a missing or wrong one."""
    server: Any = request.app[SERVER]
    token = server.config.api_token
    header = request.headers.get("Authorization")
    if not token:
        return _refuse("writes are off on this server: set api.token in the server config or "
                       "$GSLB_API_TOKEN (docs/security.md, API keys)", 403)
    if bearer_ok(token, header):
        return None
    if header and _is_prober_key(server, header):
        return _refuse("that is a prober key (health.secret or a region key): it signs reports only; "
                       "writes need the operator token (api.token)", 401)
    return _refuse("missing or wrong bearer token: writes need Authorization: Bearer <api.token>", 401)


def reader_refusal(request: web.Request) -> web.Response | None:
    """None when `request` may read (no read token set, or the read or operator token sent), else 401."""
    server: Any = request.app[SERVER]
    read_token = server.config.api_read_token
    if not read_token:
        return None
    header = request.headers.get("Authorization")
    if bearer_ok(read_token, header) or bearer_ok(server.config.api_token, header):
        return None
    return _refuse("missing or wrong bearer token: reads need Authorization: Bearer <api.read_token>", 401)


@web.middleware
async def read_guard(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Every GET/HEAD but `/healthz` and the dashboard shell asks `reader_refusal` first; writes decide in
    their route."""
    if request.method in READ_METHODS and request.path not in OPEN_PATHS and request.path not in SHELL_PATHS \
            and not request.path.startswith(SHELL_PREFIX):
        refusal = reader_refusal(request)
        if refusal is not None:
            return refusal
    return await handler(request)
