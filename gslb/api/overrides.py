"""Override routes of the HTTP API (docs/overrides.md): list, set and clear runtime overrides.

  GET    /v1/overrides                    every entry (file and API) and what each applies to
  POST   /v1/overrides                    {"selector", "state", "reason", "until" | "for", "by"}
  DELETE /v1/overrides?selector=S        clear the API entry of that selector
  POST   /v1/endpoints/{address}/status   deprecated alias: {"status": up | down | auto} for */*/ADDRESS

Writes need the operator token (`operator_refusal`); bodies are bounded (`read_json`). A selector that
matches no endpoint of the loaded zones is 404, so a typo never looks like a drain.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gslb.api.auth import operator_refusal
from gslb.api.jsonbody import BadJson, read_json
from gslb.api.keys import SERVER
from gslb.config.overrides import (
    Override,
    Selector,
    SelectorError,
    entry_fields,
    parse_duration,
    parse_selector,
    selected,
    selector_problem,
)

BODY_KEYS = ("selector", "state", "reason", "until", "for", "by")


def _error(why: str, status: int) -> web.Response:
    return web.json_response({"error": why}, status=status)


def entry_json(entry: Override, server: Any, now: float) -> dict:
    """An entry as the API shows it: its fields, whether it applies now, and to how many endpoints
    (`deciding`: those where it wins over the other entries)."""
    service = server.health_service
    resolved = service.overrides.resolved
    out = entry.as_json()
    out["active"] = entry.active(now)
    out["matches"] = len(selected(entry.selector, server.served_zones)) if out["active"] else 0
    out["deciding"] = sum(1 for e in resolved.values() if e is entry)
    return out


def overrides_document(server: Any) -> dict:
    """Every override entry (API first, then the file's), the file's last load problems, and the time."""
    service = server.health_service
    now = time.time()
    overrides = getattr(service, "overrides", None)
    if overrides is None:
        return {"overrides": [], "file": None, "file_problems": [], "now": now}
    return {"overrides": [entry_json(e, server, now) for e in overrides.entries()], "file": overrides.file_path,
            "file_problems": list(overrides.file_problems), "now": now}


async def get_overrides(request: web.Request) -> web.Response:
    """GET /v1/overrides."""
    return web.json_response(overrides_document(request.app[SERVER]))


def _body_entry(body: Any, now: float) -> Override:
    """The API entry a POST body asks for. :raises ValueError, TypeError: saying what is wrong (400)."""
    if not isinstance(body, dict):
        raise TypeError('expected a JSON object {"selector", "state", "reason", "until" | "for", "by"}')
    unknown = [k for k in body if k not in BODY_KEYS]
    if unknown:
        raise ValueError(f"unknown key {str(unknown[0])[:40]!r} (known: {', '.join(BODY_KEYS)})")
    if body.get("until") is not None and body.get("for") is not None:
        raise ValueError("give until or for, not both")
    problems: list[str] = []
    values = entry_fields(body, lambda key, what: problems.append(f"{key}: {what}"))
    if values is None:
        raise ValueError("; ".join(problems))
    if body.get("for") is not None:
        try:
            values["until"] = now + parse_duration(body["for"])
        except ValueError as exc:
            raise ValueError(f"for: {exc}") from None
    if values["until"] is not None and values["until"] <= now:
        raise ValueError("until: that time has passed")
    return Override(source="api", created=now, **values)


async def post_override(request: web.Request) -> web.Response:
    """POST /v1/overrides: set (or replace) the runtime override of a selector; applies at once."""
    refusal = operator_refusal(request)
    if refusal is not None:
        return refusal
    server = request.app[SERVER]
    try:
        body = await read_json(request)
    except BadJson as exc:
        return _error(str(exc), exc.status)
    now = time.time()
    try:
        entry = _body_entry(body, now)
    except (ValueError, TypeError) as exc:
        return _error(str(exc), 400)
    return _apply(server, entry, now)


def _apply(server: Any, entry: Override, now: float) -> web.Response:
    problem = selector_problem(entry.selector, server.served_zones)
    if problem is not None:
        return _error(problem, 404)
    try:
        replaced = server.health_service.set_override(entry)
    except OSError as exc:
        return _error(f"the override could not be saved in the state directory ({exc.strerror}): not set", 500)
    return web.json_response({"override": entry_json(entry, server, now), "replaced": replaced is not None})


def _clear(server: Any, selector: Selector) -> web.Response:
    service = server.health_service
    try:
        entry = service.clear_override(selector)
    except OSError as exc:
        return _error(f"the state directory could not be written ({exc.strerror}): not cleared", 500)
    if entry is None:
        in_file = service.overrides.file_entry(selector)
        if in_file is not None:
            return _error(f"{selector} is set in {in_file.where}, not over the API: edit the file to clear it", 409)
        return _error(f"no runtime override for {selector}", 404)
    return web.json_response({"cleared": entry.as_json()})


async def delete_override(request: web.Request) -> web.Response:
    """DELETE /v1/overrides?selector=S: clear the runtime override of S (the file's are edited)."""
    refusal = operator_refusal(request)
    if refusal is not None:
        return refusal
    try:
        selector = parse_selector(request.query.get("selector"))
    except SelectorError as exc:
        return _error(str(exc), 400)
    return _clear(request.app[SERVER], selector)


async def post_endpoint_status(request: web.Request) -> web.Response:
    """Deprecated (use /v1/overrides): {"status": "up" | "down" | "auto"} for an endpoint address, i.e.
    the runtime override of selector `*/*/ADDRESS` set, or cleared by "auto"."""
    refusal = operator_refusal(request)
    if refusal is not None:
        return refusal
    server = request.app[SERVER]
    text = request.match_info["address"]
    if "/" in text:
        return _error(f"{text[:60]!r} is not an IP address", 400)
    try:
        selector = parse_selector(f"*/*/{text}")
    except SelectorError:
        if "%" in text:
            return _error(f"{text[:60]}: a scoped IPv6 address (with %zone) is not an endpoint address", 400)
        return _error(f"{text[:60]!r} is not an IP address", 400)
    try:
        body = await read_json(request)
    except BadJson as exc:
        return _error(str(exc), exc.status)
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("up", "down", "auto"):
        return _error('expected a body {"status": "up" | "down" | "auto"}', 400)
    address = str(selector.network.network_address) if selector.network is not None else text
    if status == "auto":
        response = _clear(server, selector)
        if response.status == 404 and selector_problem(selector, server.served_zones) is not None:
            return _error(f"{address} is not an endpoint of any loaded zone", 404)
        return web.json_response({"address": address, "status": status}) if response.status == 200 else response
    if selector_problem(selector, server.served_zones) is not None:
        return _error(f"{address} is not an endpoint of any loaded zone", 404)
    now = time.time()
    reason = body.get("reason") if isinstance(body.get("reason"), str) and body["reason"].strip() \
        else "set through POST /v1/endpoints/{address}/status (deprecated)"
    entry = Override(selector, status, reason[:500], "api", created=now)
    response = _apply(server, entry, now)
    return web.json_response({"address": address, "status": status}) if response.status == 200 else response


def add_override_routes(app: web.Application) -> None:
    app.router.add_get("/v1/overrides", get_overrides)
    app.router.add_post("/v1/overrides", post_override)
    app.router.add_delete("/v1/overrides", delete_override)
    app.router.add_post("/v1/endpoints/{address}/status", post_endpoint_status)
