"""`gslb probe`: a prober process for one region, pushing signed reports to DNS servers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import logging
import os
import secrets
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator

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
from gslb.health.report import encode_report, view_moved
from gslb.health.signing import HEADER, sign
from gslb.health.snapshot import RegionView
from gslb.health.statefile import target_from_key
from gslb.server import zone_targets
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.probe")
GZIP_ABOVE = 16 * 1024     # bytes of JSON above which a report is sent gzipped
FULL_EVERY = 60.0          # seconds between full reports to a server that takes deltas
BACKOFF_MAX = 2            # after failed posts, wait up to this many intervals more between them (a server
                           # drops a region silent for 3 intervals: backing off further would drop it)


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
    p.add_argument("--full-every", type=float, default=FULL_EVERY, metavar="SECONDS",
                   help="send each server a full report this often; between them only what changed "
                        f"(default {FULL_EVERY:g})")
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
    """Posts reports to every server, each from its own task: a server that hangs or is down never
    delays the reports to the others (they would drop this region after 3 late intervals). A server that
    fails is logged once per outage.

    Reports are incremental (gslb/health/report.py): each server gets a full report first, after a gap
    it reports (409 need_full), and every `full_every` seconds; otherwise the views that moved since
    the last report it took. What each server holds is tracked apart, so one that missed reports gets
    what it missed and the others only the news.

    A server that does not answer (overloaded: the post timed out) is not sent a full report for it,
    which would load it more: the prober waits longer between posts (one interval more per failure in a
    row, up to BACKOFF_MAX) and sends a delta on the report whose fate it does not know (a busy server
    usually took it in the end), then, if the server says it does not hold that one, on the last report
    it acknowledged; only when it holds neither does it get a full report.

    The posting runs on an event loop of its own, in its own thread: when checks saturate the prober's
    loop (10,000 targets at 1 s: that loop seconds late), a post timed on that loop timed out before its
    answer was read, every time, and the servers dropped the region. Here a post's timeout is real time,
    report bodies are built off the checks' loop, and with `snapshot` set a report is made from it every
    interval in which the prober's loop handed none in."""

    def __init__(self, urls: list[str], secret: str | None, interval: float, region_key: str | None = None,
                 full_every: float = FULL_EVERY):
        self.urls = [f"{u.rstrip('/')}/v1/reports" for u in urls]
        self.secret, self.interval = secret, interval
        self.region_key = region_key        # signs with this (naming the region) instead of the secret
        self.full_every = full_every
        self.prober: Prober | None = None   # its status (prober errors, blind) rides along
        self.timeout = max(2.0, 2 * interval)
        self.session: aiohttp.ClientSession | None = None
        self.failing: set[str] = set()
        self.sent: dict[str, int] = dict.fromkeys(self.urls, 0)
        self.failed: dict[str, int] = dict.fromkeys(self.urls, 0)     # posts refused or lost, per server
        self.resyncs: dict[str, int] = dict.fromkeys(self.urls, 0)    # full reports a server asked for
        self.bytes_sent: dict[str, dict[str, int]] = {u: {"full": 0, "delta": 0} for u in self.urls}
        self.run = secrets.token_hex(8)     # this process's reports: a restart starts a new sequence
        self.seq = 0
        self._latest: tuple[int, dict[str, RegionView]] | None = None
        # per server: (seq, views) it holds (None: it needs a full report), when it last got a full one,
        # and whether it said it takes deltas
        self._held: dict[str, tuple[int, dict[str, RegionView]] | None] = dict.fromkeys(self.urls)
        # per server: a report posted without an answer (timed out, cut): it may hold it, or not
        self._unsure: dict[str, tuple[int, dict[str, RegionView]] | None] = dict.fromkeys(self.urls)
        self.failures_in_row: dict[str, int] = dict.fromkeys(self.urls, 0)
        self._full_at: dict[str, float] = dict.fromkeys(self.urls, 0.0)
        self._deltas: dict[str, bool] = dict.fromkeys(self.urls, False)
        self._bodies: dict[tuple, tuple[bytes, bytes | None, dict]] = {}
        self.region: str | None = None
        # the views now, callable from the pusher's thread (Prober.id_views): reports go out on time even
        # when the prober's loop is too late to hand them in
        self.snapshot: Callable[[], dict[str, RegionView]] | None = None
        self._reported_at = 0.0             # time.monotonic() of the last report made
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    async def start(self) -> None:
        """Start posting, from a thread with its own event loop (see the class docstring)."""
        up = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(up,), name="gslb-pusher", daemon=True)
        self._thread.start()
        await asyncio.to_thread(up.wait)

    async def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def _thread_main(self, up: threading.Event) -> None:
        loop = asyncio.new_event_loop()     # uvloop when `gslb probe` set its policy
        try:
            loop.run_until_complete(self._main(up))
        finally:
            loop.close()

    async def _main(self, up: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake = {url: asyncio.Event() for url in self.urls}
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._tasks = [asyncio.create_task(self._send_loop(url)) for url in self.urls]
        self._tasks.append(asyncio.create_task(self._tick()))
        if self._latest is not None:        # handed in before the loop was up
            self._wake_all()
        up.set()
        try:
            await self._stopping.wait()
        finally:
            await cancel_and_wait(self._tasks)
            await self.session.close()

    def __call__(self, region: str, views: dict[str, RegionView]) -> None:
        """A new report: `views` keyed by target_id (Prober(by_id=True)). Callable from any thread."""
        if self._loop is None:
            self._new_report(region, views)
        else:
            self._loop.call_soon_threadsafe(self._new_report, region, views)

    def _new_report(self, region: str, views: dict[str, RegionView]) -> None:
        self.region = region
        self.seq += 1
        self._latest = (self.seq, views)
        self._reported_at = time.monotonic()
        self._bodies = {}                   # bodies of older reports are never sent again
        self._wake_all()

    def _wake_all(self) -> None:
        for wake in self._wake.values():
            wake.set()

    async def _tick(self) -> None:
        """A report from `snapshot` every interval in which the prober's loop handed none in."""
        while True:
            await asyncio.sleep(self.interval / 2)
            if self.snapshot is None or self._latest is None or self.region is None:
                continue                    # the prober's first report (its targets set) comes first
            if time.monotonic() - self._reported_at >= self.interval:
                self._new_report(self.region, self.snapshot())

    def _base(self, url: str) -> tuple[int, dict[str, RegionView]] | None:
        """The report a delta to this server builds on: the unanswered one if any, else the acknowledged one."""
        return self._unsure[url] or self._held[url]

    def _wants_full(self, url: str) -> bool:
        return self._base(url) is None or not self._deltas[url] \
            or time.monotonic() - self._full_at[url] >= self.full_every

    def _body(self, url: str, seq: int, views: dict[str, RegionView],
              full: bool) -> tuple[bytes, bytes | None, dict]:
        """(JSON, gzipped or None, what the server holds once it takes it) for this server: full, or the
        delta from the base it holds. Bodies are shared by the servers that hold the same report."""
        held = self._base(url)
        key = ("full", seq) if full else (held[0], seq)  # type: ignore[index]
        made = self._bodies.get(key)
        if made is None:
            status = self.prober.status() if self.prober else None
            if full:
                body, after = encode_report(self.region, self.interval, views, status, self.run, seq), views
            else:
                before = held[1]  # type: ignore[index]
                moved = {t: v for t, v in views.items() if view_moved(before.get(t), v)}
                gone = [t for t in before if t not in views]
                body = encode_report(self.region, self.interval, moved, status, self.run, seq, held[0], gone)  # type: ignore[index]
                after = {**before, **moved}
                for t in gone:
                    del after[t]
            # Big reports go gzipped (about 5x smaller); the signature covers the bytes sent, so a server
            # checks it before inflating anything.
            made = self._bodies[key] = (body, gzip.compress(body, 5) if len(body) > GZIP_ABOVE else None, after)
        return made

    async def _send_loop(self, url: str) -> None:
        wake = self._wake[url]
        while True:
            await wake.wait()
            wake.clear()
            if self._latest is None:
                continue
            seq, views = self._latest       # a report made meanwhile replaces the one waiting
            full = self._wants_full(url)
            on_unsure = not full and self._unsure[url] is not None
            body, gzipped, after = self._body(url, seq, views, full)
            answer = await self._post(url, body, gzipped, "full" if full else "delta")
            if answer is None or answer is UNANSWERED:
                if answer is UNANSWERED:    # it may have taken it: the next delta tries this base first
                    self._unsure[url] = (seq, after)
                self.failures_in_row[url] += 1
                # Back off rather than resend in full: a server too busy to answer would only get busier.
                await asyncio.sleep(self.interval * min(BACKOFF_MAX, self.failures_in_row[url]))
                wake.set()
                continue
            self.failures_in_row[url] = 0
            if answer.get("need_full"):
                self._unsure[url] = None
                if on_unsure and self._held[url] is not None:
                    log.debug("%s did not take report %d: a delta on the last one it took", url, seq)
                else:
                    self._held[url] = None
                    self.resyncs[url] += 1
                    log.info("%s asked for a full report (it missed one, or restarted): sending it", url)
                wake.set()                  # at once, not at the next interval
            else:
                self._held[url], self._unsure[url] = (seq, after), None
                self._deltas[url] = answer.get("deltas") is True
                if full:
                    self._full_at[url] = time.monotonic()

    async def _post(self, url: str, body: bytes, gzipped: bytes | None, kind: str) -> dict | None:
        """Post one report; the server's JSON answer (a 409 asking for a full report included), None when
        it refused it, or UNANSWERED when no answer came (timed out, connection cut): it may hold it."""
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
                text = await resp.text()
                answer = _json_object(text)
                if resp.status == 409 and answer.get("need_full"):
                    return answer
                if resp.status != 200:
                    raise aiohttp.ClientError(f"{resp.status} {text[:300]}")
            self.sent[url] += 1
            self.bytes_sent[url][kind] += len(sent)
            if url in self.failing:
                self.failing.discard(url)
                log.info("reporting to %s again", url)
            return answer
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failed[url] += 1
            if url not in self.failing:
                self.failing.add(url)
                log.warning("cannot report to %s: %s", url, str(exc) or type(exc).__name__)
            sent_whole = isinstance(exc, TimeoutError | aiohttp.ServerDisconnectedError)
            return UNANSWERED if sent_whole else None


UNANSWERED: dict = {"unanswered": True}   # _post's answer when the server may or may not hold the report


def _json_object(text: str) -> dict:
    """A server's JSON answer as a dict ({} when it is not one: an older server, a proxy in between)."""
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


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
    pusher = Pusher(args.report_to, secret, args.interval, args.region_key, args.full_every)
    prober = Prober(args.region, pusher, args.interval, source=args.source, by_id=True)
    pusher.prober, pusher.snapshot = prober, prober.id_views
    await pusher.start()
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
        # checks are mostly connects and small reads, cheaper on uvloop's C transports
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(_run(args, secret))
    except ConfigError as exc:
        print(exc)
        return 1
    except OSError as exc:
        print(f"gslb probe: {exc}")
        return 1
