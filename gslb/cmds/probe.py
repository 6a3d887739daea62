"""`gslb probe`: a prober process for one region, pushing signed reports to DNS servers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import os
import signal
import urllib.request
from collections.abc import Iterator

import aiohttp
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric

from gslb.cmds.apiclient import api_request
from gslb.config.model import Target
from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.dns.server import parse_listen
from gslb.errors import ConfigError
from gslb.health.metrics import ProbeCollector, exposition, make_registry
from gslb.health.prober import Prober
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import RegionView
from gslb.health.statefile import target_from_key
from gslb.server import zone_targets

log = logging.getLogger("gslb.probe")
GZIP_ABOVE = 16 * 1024     # bytes of JSON above which a report is sent gzipped


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("probe", help="run a prober for one region, reporting to DNS servers")
    p.add_argument("--region", required=True, help="this prober's region (a name in data/regions.yaml)")
    p.add_argument("--report-to", action="append", required=True, metavar="URL",
                   help="a DNS server's API, e.g. http://ns1:8053; repeatable")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--zones", metavar="DIR", help="load the targets from these zone files (default ./zones)")
    source.add_argument("--from", dest="from_url", metavar="URL", help="fetch the targets from a server's API")
    p.add_argument("--data", default="data", metavar="DIR", help="where regions.yaml is (with --zones)")
    p.add_argument("--secret", help="shared secret (default: $GSLB_SECRET)")
    p.add_argument("--region-key", metavar="KEY",
                   help="this region's own key, as in the servers' health.region_keys (default: "
                        "$GSLB_REGION_KEY); used instead of the shared secret")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reports (default 1)")
    p.add_argument("--refresh", type=float, default=30.0, metavar="SECONDS",
                   help="reload the zones or refetch the targets this often (default 30; SIGHUP: now)")
    p.add_argument("--source", metavar="ADDR", help="local address to send checks from")
    p.add_argument("--metrics", metavar="ADDR:PORT",
                   help="serve Prometheus /metrics here (checks, failures by reason, reports pushed); default off")
    return p


def load_targets(args: argparse.Namespace) -> list[Target]:
    """The targets to probe, from `--from URL` or the zone files.

    :raises ConfigError: on a broken zone file. :raises OSError: when the server cannot be read.
    """
    if args.from_url:
        with urllib.request.urlopen(api_request(f"{args.from_url.rstrip('/')}/v1/targets"), timeout=10) as resp:
            return [target_from_key(key) for key in json.load(resp)["targets"]]
    zones = load_zones(args.zones or "zones", load_regions(os.path.join(args.data, "regions.yaml")))
    return zone_targets(zones)


class Pusher:
    """Posts the latest report to every server, each from its own task: a server that hangs or is down
    never delays the reports to the others (they would drop this region after 3 late intervals).
    A server that fails is logged once per outage."""

    def __init__(self, urls: list[str], secret: str | None, interval: float, region_key: str | None = None):
        self.urls = [f"{u.rstrip('/')}/v1/reports" for u in urls]
        self.secret, self.interval = secret, interval
        self.region_key = region_key        # signs with this (naming the region) instead of the secret
        self.prober: Prober | None = None   # its status (prober errors, blind) rides along
        self.timeout = max(2.0, 2 * interval)
        self.session: aiohttp.ClientSession | None = None
        self.failing: set[str] = set()
        self.sent: dict[str, int] = dict.fromkeys(self.urls, 0)
        self.failed: dict[str, int] = dict.fromkeys(self.urls, 0)     # posts refused or lost, per server
        self._latest: tuple[bytes, bytes | None] | None = None
        self.region: str | None = None
        self._wake = {url: asyncio.Event() for url in self.urls}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._tasks = [asyncio.create_task(self._send_loop(url)) for url in self.urls]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.session is not None:
            await self.session.close()

    def __call__(self, region: str, views: dict[Target, RegionView]) -> None:
        body = encode_report(region, self.interval, views, self.prober.status() if self.prober else None)
        self.region = region
        # Big reports go gzipped (about 5x smaller); the signature covers the bytes sent, so a server
        # checks it before inflating anything.
        self._latest = (body, gzip.compress(body, 5) if len(body) > GZIP_ABOVE else None)
        for wake in self._wake.values():
            wake.set()

    async def _send_loop(self, url: str) -> None:
        wake = self._wake[url]
        while True:
            await wake.wait()
            wake.clear()
            if self._latest is not None:
                await self._post(url, *self._latest)    # a report made meanwhile replaces the one waiting

    async def _post(self, url: str, body: bytes, gzipped: bytes | None) -> None:
        assert self.session is not None
        # Signed when sent, not when made: the timestamp is what the server checks for replays.
        sent = gzipped or body
        key = self.region_key or self.secret
        assert key, "run() refuses to start without a key"
        # The region is named even with the shared secret: a server that refuses the report can then
        # say which region it refused (the body, which names it too, is not read unless the MAC is good).
        headers = {HEADER: sign(key, sent, region=self.region),
                   "Content-Type": "application/json"}
        if gzipped is not None:
            headers["Content-Encoding"] = "gzip"
        try:
            async with self.session.post(url, data=sent, headers=headers) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(f"{resp.status} {await resp.text()}")
            self.sent[url] += 1
            if url in self.failing:
                self.failing.discard(url)
                log.info("reporting to %s again", url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failed[url] += 1
            if url not in self.failing:
                self.failing.add(url)
                log.warning("cannot report to %s: %s", url, exc or type(exc).__name__)


async def _first_targets(args: argparse.Namespace) -> list[Target]:
    """Zone files must load at start (exit 1 if not); a server given by --from may come up later."""
    while True:
        try:
            return await asyncio.to_thread(load_targets, args)
        except OSError as exc:
            if not args.from_url:
                raise
            log.warning("cannot fetch the targets from %s (%s): retrying in 2 s", args.from_url, exc)
            await asyncio.sleep(2)


async def _refresh(args: argparse.Namespace, prober: Prober, now: asyncio.Event) -> None:
    """Reload the targets every --refresh seconds or on SIGHUP; a failed reload keeps the last ones."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(now.wait(), args.refresh)
        now.clear()
        try:
            targets = await asyncio.to_thread(load_targets, args)
        except (ConfigError, OSError, ValueError, KeyError) as exc:
            log.error("target reload failed, still probing the last good targets: %s", exc)
            continue
        before = set(prober.views())
        if set(targets) != before:
            prober.set_targets(targets)
            log.info("targets reloaded: %d probed (%d new, %d removed)", len(targets),
                     len(set(targets) - before), len(before - set(targets)))


async def _run(args: argparse.Namespace, secret: str | None) -> int:
    targets = await _first_targets(args)
    pusher = Pusher(args.report_to, secret, args.interval, args.region_key)
    await pusher.start()
    prober = Prober(args.region, pusher, args.interval, source=args.source)
    pusher.prober = prober
    await prober.start()
    prober.set_targets(targets)
    log.info("probing %d targets as region %s, reporting to %s", len(targets), args.region,
             ", ".join(args.report_to))
    stop, reload_now = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_now.set)
    refresher = asyncio.create_task(_refresh(args, prober, reload_now))
    metrics = await _serve_metrics(args.metrics, prober, pusher) if args.metrics else None
    await stop.wait()
    if metrics is not None:
        await metrics.cleanup()
    refresher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await refresher
    await prober.stop()
    await pusher.stop()
    return 0


def push_families(pusher: Pusher) -> Iterator[Metric]:
    """gslb_prober_pushes_total{server,result}: reports posted to each server, ok or failed."""
    pushes = CounterMetricFamily("gslb_prober_pushes_total", "Reports posted to each server: ok (200), or failed "
                                 "(refused, timed out, unreachable).", labels=["server", "result"])
    for url in pusher.urls:
        pushes.add_metric([url, "ok"], pusher.sent[url])
        pushes.add_metric([url, "failed"], pusher.failed[url])
    yield pushes


async def _serve_metrics(listen: str, prober: Prober, pusher: Pusher) -> web.AppRunner:
    """/metrics of this prober on `listen` (gslb/health/metrics.py)."""
    registry = make_registry(ProbeCollector(prober, lambda: push_families(pusher)))

    async def get_metrics(request: web.Request) -> web.Response:
        return exposition(registry)

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_listen(listen, default_port=9153)
    await web.TCPSite(runner, host, port).start()
    log.info("metrics on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", port)
    return runner


def run(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get("GSLB_SECRET")
    args.region_key = args.region_key or os.environ.get("GSLB_REGION_KEY") or None
    if not secret and not args.region_key:
        print("gslb probe: a key is needed (--region-key or GSLB_REGION_KEY, or the shared --secret or "
              "GSLB_SECRET): servers refuse unsigned reports")
        return 2
    if args.interval < 0.05 or args.refresh < 0.1:
        print("gslb probe: --interval must be >= 0.05 s and --refresh >= 0.1 s")
        return 2
    try:
        return asyncio.run(_run(args, secret))
    except ConfigError as exc:
        print(exc)
        return 1
    except OSError as exc:
        print(f"gslb probe: {exc}")
        return 1
