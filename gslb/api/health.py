"""Health routes of the HTTP API: the combined view, prober reports, operator overrides."""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any

from aiohttp import web

from gslb.api.keys import SERVER
from gslb.api.metrics import add_metrics_route
from gslb.api.overrides import overrides_document
from gslb.health.intake import ReportRefused
from gslb.health.proxyreport import ProxyReport, decode_any
from gslb.health.report import ProberReport, ReportTooLarge, inflate
from gslb.health.signing import HEADER, Verifier
from gslb.steering.decide import capacity_share, endpoint_usable


def _endpoint_json(server: Any, zone: str, pool, site, endpoint, now: float) -> dict:
    service = server.health_service
    snapshot = service.snapshot
    target = pool.target_of(endpoint)
    health = snapshot.of(target) if target is not None else None
    usable, why = endpoint_usable(endpoint, site, pool, snapshot, zone=zone)
    forced = snapshot.forced(zone, pool.name, site.name, endpoint.address)
    out = {"address": endpoint.address, "weight": endpoint.weight, "status": endpoint.status,
           "override": forced.as_json() if forced is not None else None, "answered": usable, "why": why}
    if health is not None:
        # Each region's latest report, not the one last combined: small RTT moves and report times
        # do not make a new snapshot, but the operator should see them. `live`: counted in the quorum.
        out.update(state=health.state, since=health.since, reason=health.reason, regions={
            region: {"state": v.state, "rtt_ms": v.rtt_ms, "error": v.error, "updated": v.updated,
                     "prober_error": v.prober_error, "live": rep.live(now),
                     "counted": region in service.monitor.counted}
            for region, rep in sorted(service.monitor.regions.items())
            if (v := rep.views.get(target)) is not None})
    else:
        out.update(state="unchecked", since=None, reason="no check configured", regions={})
    out["proxy"] = _proxy_json(service.monitor, pool, site, endpoint, now)
    return out


def _proxy_json(monitor, pool, site, endpoint, now: float) -> dict | None:
    """The regional proxy's view of the pool an endpoint fronts (`proxy_pool`), beside the probers':
    `counted` while its proxy reports (fresh), else the last report, shown but not used."""
    key = pool.proxy_pool_of(site, endpoint)
    if key is None:
        return None
    name, _, proxy_pool = key.partition("/")
    source = monitor.proxies.get(name)
    view = source.report.pools.get(proxy_pool) if source is not None else None
    if view is None:
        return {"pool": key, "reported": False, "counted": False}
    counted = source.fresh(now)
    return {"pool": key, "reported": True, "counted": counted, "healthy": view.healthy, "total": view.total,
            "healthy_weight": view.healthy_weight, "total_weight": view.total_weight, "age": now - source.received,
            "capacity": capacity_share(pool, site, endpoint, monitor.snapshot) if pool.capacity == "follow" else None}


def proxies_document(monitor, now: float) -> dict:
    """Every regional proxy that reported: when, whether it counts (fresh), each pool's counts."""
    return {name: {"region": s.report.region, "last_report": s.received, "age": now - s.received,
                   "interval": s.report.interval, "live": s.fresh(now), "draining": s.report.draining,
                   "pools": {p: {"healthy": v.healthy, "total": v.total, "healthy_weight": v.healthy_weight,
                                 "total_weight": v.total_weight} for p, v in s.report.pools.items()}}
            for name, s in sorted(monitor.proxies.items())}


def health_document(server: Any) -> dict:
    """Per zone, pool, site and endpoint: state, per-region view, last error, RTT; plus the probers."""
    service = server.health_service
    now = time.time()
    zones = []
    for zone in sorted(server.served_zones.values(), key=lambda z: z.origin):
        pools = []
        for pool in zone.pools.values():
            sites = [{"name": site.name, "status": site.status,
                      "endpoints": [_endpoint_json(server, zone.origin, pool, site, e, now) for e in site.endpoints]}
                     for site in pool.sites]
            pools.append({"name": pool.name, "policy": pool.policy,
                          "check": pool.check.type if pool.check else None, "sites": sites})
        zones.append({"origin": zone.origin, "pools": pools})
    monitor = service.monitor
    # `live`: counted in the quorum; a region is not when it is silent or `blind` (its prober could make
    # no check of late: only prober errors, e.g. out of file descriptors).
    probers = {name: {"last_report": rep.received, "age": now - rep.received, "interval": rep.interval,
                      "live": rep.live(now), "counted": name in monitor.counted, "standby": name == monitor.standby, "targets": len(rep.views), "blind": rep.status.blind,
                      "prober_errors": rep.status.errors_total, "last_prober_error": rep.status.last_error,
                      "last_prober_error_at": rep.status.last_error_at or None}
               for name, rep in monitor.regions.items()}
    intake = service.intake
    # node_id: which node this is (gslb status over several nodes labels them with it).
    return {"node_id": getattr(server.config, "node_id", None), "region": service.settings.region,
            "fail_open": monitor.fail_open,
            "fail_open_total": monitor.fail_open_total, "version": monitor.snapshot.version,
            "probers": probers, "proxies": proxies_document(monitor, now), "reports": {"accepted": intake.accepted, "refused": dict(intake.refused),
                                            "refused_from": intake.refused_sources(), "gaps": monitor.gaps,
                                            "ingest": monitor.ingest_document()},
            "zones": zones, "overrides": overrides_document(server)["overrides"]}


def proxy_cell(x: dict) -> str:
    """The proxy's view of an endpoint's pool, as `gslb status` prints it beside the probers' views."""
    head = f"proxy {x['pool']}"
    if not x.get("reported"):
        return f"{head:<29} not reported (the probers decide)"
    text = f"{head:<29} {x['healthy']}/{x['total']} backends, weight {x['healthy_weight']}/{x['total_weight']}"
    if x.get("capacity") is not None:
        text += f", capacity {x['capacity']:.0%}"
    return text + ("" if x["counted"] else f" (silent {x['age']:.0f} s: not counted)")


def refused_source_lines(health: dict, now: float, indent: str = "  ") -> list[str]:
    """One line per region (or address) whose prober reports were refused: a region that never
    authenticates shows up here instead of simply missing."""
    lines = []
    for s in health.get("reports", {}).get("refused_from", []):
        who = f"region {s['region']}" if s["region"] else "a prober naming no region"
        accepted = "accepted since" if s["accepted_after"] else \
            "REFUSED (none accepted since)" if s["ever_accepted"] else "REFUSED (never accepted)"
        counts = ", ".join(f"{n} {r}" for r, n in sorted(s["refused"].items()))
        lines.append(f"{indent}refused {who} from {s['peer'] or '?'}: {accepted}; {counts}, "
                     f"last {now - s['last']:.0f} s ago: {s['last_message']}")
    return lines


def override_lines(overrides: list[dict], indent: str = "  ") -> list[str]:
    """One line per override entry: selector, state, source, by, expiry, reason (docs/overrides.md)."""
    lines = []
    for o in overrides:
        source = f"{o['source']} {o['file']}:{o['line']}" if o.get("file") else o["source"]
        until = f" until {o['until_text']}" if o.get("until_text") else ""
        by = f" by {o['by']}" if o.get("by") else ""
        applies = f"{o['deciding']} of {o['matches']} endpoints" if o.get("active") else "EXPIRED, not applied"
        lines.append(f"{indent}override {o['selector']} {o['state'].upper()} ({source}{by}{until}; {applies}): "
                     f"{o['reason']}")
    return lines


def render_text(health: dict) -> str:
    """The health document as text, one line per endpoint and one per region's view (`gslb status`)."""
    region = health["region"] or "none (the embedded prober counts only while no named region reports)"
    lines = [f"server region {region}, health version {health['version']}"
             + (", FAIL OPEN (no prober reporting)" if health["fail_open"] else "")]
    for region, p in sorted(health["probers"].items()):
        state = "live" if p["live"] else f"BLIND ({p['blind']}): not counted" if p.get("blind") else "SILENT"
        if p.get("standby"):
            state += ", stand-in (no health.region): " + ("counted, no named region is live" if p.get("counted")
                                                          else "not counted while named regions report")
        errors = f", {p['prober_errors']} prober errors (last: {p['last_prober_error']})" \
            if p.get("prober_errors") else ""
        lines.append(f"  prober {region}: {state}, last report {p['age']:.1f} s ago, {p['targets']} targets{errors}")
    for name, x in sorted(health.get("proxies", {}).items()):
        state = "live" if x["live"] else "SILENT: not counted, the probers decide"
        pools = ", ".join(f"{p} {v['healthy']}/{v['total']} backends (weight {v['healthy_weight']}/"
                          f"{v['total_weight']})" for p, v in sorted(x["pools"].items()))
        lines.append(f"  proxy {name}" + (f" (region {x['region']})" if x.get("region") else "")
                     + f": {state}{', DRAINING' if x.get('draining') else ''}, last report {x['age']:.1f} s ago; "
                     + (pools or "no routed pool"))
    refused = {r: n for r, n in health.get("reports", {}).get("refused", {}).items() if n}
    if refused:
        lines.append("  reports refused: " + ", ".join(f"{n} {r}" for r, n in sorted(refused.items())))
    lines += refused_source_lines(health, time.time())
    lines += override_lines(health.get("overrides", []))
    for zone in health["zones"]:
        for pool in zone["pools"]:
            lines.append(f"{zone['origin']} pool {pool['name']} ({pool['policy']}, check {pool['check'] or 'none'})")
            for site in pool["sites"]:
                lines.append(f"  site {site['name']}" + (f" status {site['status']}" if site["status"] != "auto" else ""))
                for e in site["endpoints"]:
                    answered = "answered" if e["answered"] else "NOT answered"
                    lines.append(f"    {e['address']:<24} {e['state']:<9} {answered} ({e['why']}) {e['reason']}")
                    for region, v in sorted(e["regions"].items()):
                        rtt = "-" if v["rtt_ms"] is None else f"{v['rtt_ms']:.1f}ms"
                        error = f" error: {v['error']}" if v["error"] else ""
                        if v.get("prober_error"):
                            error += f" prober error (state holds): {v['prober_error']}"
                        silent = "" if v.get("live", True) else " (silent: not counted)"
                        if v.get("live", True) and not v.get("counted", True):
                            silent = " (stand-in: not counted)"
                        lines.append(f"      {region:<20} {v['state']:<8} rtt {rtt}{error}{silent}")
                    if e.get("proxy"):
                        lines.append("      " + proxy_cell(e["proxy"]))
    return "\n".join(lines)


async def get_health(request: web.Request) -> web.Response:
    """GET /v1/health: `health_document` as JSON."""
    return web.json_response(health_document(request.app[SERVER]))


async def get_status_page(request: web.Request) -> web.Response:
    """GET /status: the same view for a browser, refreshed every 2 s."""
    text = html.escape(render_text(health_document(request.app[SERVER])))
    page = ("<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=2>"
            "<title>gslb status</title><style>body{font:14px monospace;margin:1em}"
            ".down{color:#b00}</style></head><body><h1>gslb status</h1><pre>"
            + text.replace("NOT answered", "<span class=down>NOT answered</span>") + "</pre></body></html>")
    return web.Response(text=page, content_type="text/html")


def _refuse(why: str, status: int = 401) -> web.Response:
    return web.json_response({"error": why}, status=status)


MAX_REPORT = 64 * 2**20     # a report of 100,000 targets is about 13 MiB before gzip (also the cap on the wire)
TOO_LARGE = f"report larger than {MAX_REPORT // 2**20} MiB"


async def _read_report(request: web.Request, verifier: Verifier) -> bytes:
    """The body as sent (the API does not inflate request bodies), fed to the HMAC as it arrives.
    Read by hand: the app's 1 MiB client_max_size would refuse the reports of a few thousand targets.

    :raises ReportTooLarge: past MAX_REPORT.
    """
    if request.content_length is not None and request.content_length > MAX_REPORT:
        raise ReportTooLarge(TOO_LARGE)
    body = bytearray()
    while chunk := await request.content.read(2**16):
        verifier.update(chunk)
        body += chunk
        if len(body) > MAX_REPORT:
            raise ReportTooLarge(TOO_LARGE)
    return bytes(body)


def _parse_report(body: bytes, gzipped: bool, known: dict, stamp: float):
    """Inflate (bounded) and decode a prober's or a regional proxy's report; run in a thread, off the loop
    that answers DNS."""
    return decode_any(inflate(body, MAX_REPORT) if gzipped else body, known, stamp)


async def post_report(request: web.Request) -> web.Response:
    """A signed report from a `gslb probe` process, or from a `gslb proxy` with `report_to:` (the same
    admission: a proxy is ordered and counted as its own sender, "proxy:NAME").

    The order keeps unauthenticated senders cheap: the signature header (key, time window) before the
    body is read, the HMAC over the bytes as received before anything is inflated, exact replays refused,
    then inflating (bounded) and parsing in a thread.
    """
    service = request.app[SERVER].health_service
    intake = service.intake
    peer = request.remote
    if not intake.enabled:
        return _refuse("this server takes no reports: set health.secret ($GSLB_SECRET) or health.region_keys", 403)
    try:
        verifier = intake.begin(request.headers.get(HEADER), peer)
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise intake.refuse("malformed", f"Content-Encoding {encoding[:20]!r}: expected gzip or none", peer,
                                verifier.sig.region)
        try:
            body = await _read_report(request, verifier)
        except ReportTooLarge:
            raise intake.refuse("too_large", TOO_LARGE, peer, verifier.sig.region) from None
        sig = intake.check_mac(verifier, peer)
        started = time.perf_counter()
        try:
            parsed = await asyncio.to_thread(_parse_report, body, encoding == "gzip", service.known_ids, sig.stamp)
        except ReportTooLarge:
            raise intake.refuse("too_large", TOO_LARGE, peer, sig.region) from None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise intake.refuse("malformed", f"not a report: {str(exc)[:200]}", peer, sig.region) from None
        if isinstance(parsed, ProxyReport):
            intake.admit(sig, parsed.region, peer, source=parsed.source)
        else:
            intake.admit(sig, parsed.region, peer)
    except ReportRefused as exc:
        return _refuse(str(exc), exc.status)
    if isinstance(parsed, ProxyReport):
        service.monitor.proxy_report(parsed)
        return web.json_response({"ok": True, "accepted": len(parsed.pools)})
    return _apply_prober_report(service.monitor, parsed, started, len(body))


def _apply_prober_report(monitor, report: ProberReport, started: float, size: int) -> web.Response:
    """A full report replaces the region's views; a delta applies on top of the report held, or, after
    a gap (a lost report, this server restarted, the prober restarted), asks for a full one: 409 with
    `need_full`. `deltas: true` tells the prober that this server takes deltas."""
    if report.full:
        monitor.report(report.region, report.views, report.interval, report.status, report.run, report.seq)
    elif not monitor.report_delta(report.region, report.run, report.base, report.seq, report.views, report.gone,
                                  report.interval, report.status):
        monitor.note_ingest(time.perf_counter() - started, "gap", size)
        return web.json_response({"error": f"report {report.seq} of region {report.region} is a delta on report "
                                           f"{report.base}, which this server does not hold: send a full report",
                                  "need_full": True, "deltas": True}, status=409)
    monitor.note_ingest(time.perf_counter() - started, "full" if report.full else "delta", size)
    if report.run is None:          # a prober from before incremental reports
        return web.json_response({"ok": True, "accepted": len(report.views)})
    return web.json_response({"ok": True, "accepted": len(report.views), "deltas": True})


async def get_targets(request: web.Request) -> web.Response:
    """What this server wants probed, for `gslb probe --from`."""
    return web.json_response({"targets": sorted(request.app[SERVER].health_service.known)})


def add_health_routes(app: web.Application) -> None:
    add_metrics_route(app)
    app.router.add_get("/v1/health", get_health)
    app.router.add_get("/status", get_status_page)
    app.router.add_get("/v1/targets", get_targets)
    app.router.add_post("/v1/reports", post_report)
