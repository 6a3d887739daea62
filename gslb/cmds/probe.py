"""`gslb probe`: a prober process for one region, pushing signed reports to DNS servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import urllib.request

import aiohttp

from gslb.config.model import Target
from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.errors import ConfigError
from gslb.health.prober import Prober
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import RegionView
from gslb.health.statefile import target_from_key
from gslb.server import zone_targets

log = logging.getLogger("gslb.probe")


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
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reports (default 1)")
    p.add_argument("--source", metavar="ADDR", help="local address to send checks from")
    return p


def _targets(args: argparse.Namespace) -> list[Target]:
    if args.from_url:
        with urllib.request.urlopen(f"{args.from_url.rstrip('/')}/v1/targets", timeout=10) as resp:
            return [target_from_key(key) for key in json.load(resp)["targets"]]
    zones = load_zones(args.zones or "zones", load_regions(os.path.join(args.data, "regions.yaml")))
    return zone_targets(zones)


class Pusher:
    """Posts each report to every server; a server that is down is logged once per outage."""

    def __init__(self, urls: list[str], secret: str, interval: float):
        self.urls = [f"{u.rstrip('/')}/v1/reports" for u in urls]
        self.secret, self.interval = secret, interval
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=max(1.0, interval)))
        self.failing: set[str] = set()

    async def __call__(self, region: str, views: dict[Target, RegionView]) -> None:
        body = encode_report(region, self.interval, views)
        await asyncio.gather(*(self._post(url, body) for url in self.urls))

    async def _post(self, url: str, body: bytes) -> None:
        headers = {HEADER: sign(self.secret, body), "Content-Type": "application/json"}
        try:
            async with self.session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(f"{resp.status} {await resp.text()}")
            if url in self.failing:
                self.failing.discard(url)
                log.info("reporting to %s again", url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if url not in self.failing:
                self.failing.add(url)
                log.warning("cannot report to %s: %s", url, exc or type(exc).__name__)


async def _run(args: argparse.Namespace, secret: str) -> int:
    pusher = Pusher(args.report_to, secret, args.interval)
    prober = Prober(args.region, pusher, args.interval, source=args.source)
    await prober.start()
    targets = _targets(args)
    prober.set_targets(targets)
    log.info("probing %d targets as region %s, reporting to %s", len(targets), args.region,
             ", ".join(args.report_to))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await prober.stop()
    await pusher.session.close()
    return 0


def run(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get("GSLB_SECRET")
    if not secret:
        print("gslb probe: a shared secret is needed (--secret or GSLB_SECRET): servers refuse unsigned reports")
        return 2
    try:
        return asyncio.run(_run(args, secret))
    except ConfigError as exc:
        print(exc)
        return 1
    except OSError as exc:
        print(f"gslb probe: {exc}")
        return 1
