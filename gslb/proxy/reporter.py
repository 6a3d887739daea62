"""`report_to:`: the proxy tells the DNS nodes how its routed pools are doing (docs/proxy.md, "Reporting
to DNS").

Per routed pool: healthy backends of total and their summed weight. A report goes out at once when those
counts change (a backend ejected, failing its checks, drained, back) and otherwise every `report_interval`
as a heartbeat, so a node that missed one is corrected within a second and a silent proxy is noticed.
It is signed like a prober's report (gslb/health/signing.py) and posted to the same POST /v1/reports,
each node from its own task: a node that hangs never delays the others, and a report made while one
is in flight replaces the one waiting (only the latest state matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import aiohttp

from gslb.events import Event, EventLog
from gslb.health.proxyreport import encode_proxy_report
from gslb.health.signing import HEADER, sign
from gslb.proxy.config import ProxyConfig, ReportConfig
from gslb.proxy.state import PoolState
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.proxy")
POLL = 0.05        # seconds between looks at the pools: an ejection's end or a slow-start has no event
Counts = tuple[int, int, int, int]      # healthy, total, healthy weight, total weight


def pool_counts(pool: PoolState) -> Counts:
    """(healthy, total, healthy weight, total weight) of a pool's backends; healthy as /healthz counts it:
    not failing its checks, not ejected, not drained, weight above 0."""
    healthy = [b for b in pool.backends if b.healthy and not b.drain and b.config.weight > 0]
    return (len(healthy), len(pool.backends), sum(b.config.weight for b in healthy),
            sum(b.config.weight for b in pool.backends))


def routed_counts(config: ProxyConfig, pools: Mapping[str, PoolState]) -> dict[str, Counts]:
    """The counts of every pool a route sends requests to."""
    routed = dict.fromkeys(name for route in config.routes for name, _ in route.pools)
    return {name: pool_counts(pools[name]) for name in routed if name in pools}


class ProxyReporter:
    """Sends `routed_counts` to every `report_to` node; see the module docstring."""

    def __init__(self, settings: ReportConfig, state: Callable[[], dict[str, Counts]],
                 events: EventLog | None = None):
        """`state`: the counts now (called every POLL); `events`: backend events wake it at once."""
        self.settings = settings
        self.state = state
        self.urls = [f"{u}/v1/reports" for u in settings.to]
        self.sent: dict[str, int] = dict.fromkeys(self.urls, 0)      # reports each node took
        self.failed: dict[str, int] = dict.fromkeys(self.urls, 0)    # refused or lost
        self.failing: set[str] = set()
        self.accepted_at: dict[str, float] = dict.fromkeys(self.urls, 0.0)   # monotonic: last report taken
        self.last: dict[str, Counts] | None = None
        self._latest: bytes | None = None
        self._wake = {url: asyncio.Event() for url in self.urls}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._events = events
        self.session: aiohttp.ClientSession | None = None

    def _on_event(self, event: Event) -> None:
        if event.kind.startswith("backend."):
            self._changed.set()

    async def start(self) -> None:
        # A node that does not answer within the heartbeat is retried with the next report, not waited for.
        timeout = aiohttp.ClientTimeout(total=max(1.0, 2 * self.settings.interval))
        self.session = aiohttp.ClientSession(timeout=timeout)
        if self._events is not None:
            self._events.subscribe(self._on_event)
        self._tasks = [asyncio.create_task(self._send_loop(url)) for url in self.urls]
        self._tasks.append(asyncio.create_task(self._watch()))
        log.info("reporting pool state as proxy %s to %s", self.settings.name, ", ".join(self.settings.to))

    async def stop(self, draining: bool = False) -> None:
        """Stop reporting. `draining`: first tell every node once, within a second, that every pool is
        empty (this proxy shuts down), so DNS withdraws its sites before its listeners close."""
        if self._events is not None:
            self._events.unsubscribe(self._on_event)
        await cancel_and_wait(self._tasks)
        if draining and self.last is not None and self.session is not None:
            empty = {name: (0, t, 0, tw) for name, (_, t, _, tw) in self.last.items()}
            body = encode_proxy_report(self.settings.name, self.settings.region, self.settings.interval, empty, True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(self._post(url, body) for url in self.urls)), 1.0)
        if self.session is not None:
            await self.session.close()

    def delivering(self) -> bool:
        """Every node took a report within the last 2 intervals (a node drops a proxy silent for 3): the
        proxy's /healthz may then leave the pools to the reports (gslb/proxy/admin.py)."""
        now = time.monotonic()
        return all(now - at <= 2 * self.settings.interval for at in self.accepted_at.values())

    async def _watch(self) -> None:
        """Report at once on a change, else every interval."""
        sent_at = 0.0
        while True:
            counts = self.state()
            now = time.monotonic()
            if counts != self.last or now - sent_at >= self.settings.interval:
                if self.last is not None and counts != self.last:
                    log.info("proxy pools changed, reporting: %s", ", ".join(
                        f"{n} {c[0]}/{c[1]}" for n, c in counts.items()))
                self.last, sent_at = counts, now
                self._latest = encode_proxy_report(self.settings.name, self.settings.region,
                                                   self.settings.interval, counts)
                for wake in self._wake.values():
                    wake.set()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), POLL)

    async def _send_loop(self, url: str) -> None:
        wake = self._wake[url]
        while True:
            await wake.wait()
            wake.clear()
            if self._latest is not None:
                await self._post(url, self._latest)

    async def _post(self, url: str, body: bytes) -> None:
        assert self.session is not None
        # Signed when sent, not when made: the stamp is what a node orders reports by and checks for replays.
        headers = {HEADER: sign(self.settings.key, body, region=self.settings.region),
                   "Content-Type": "application/json"}
        try:
            async with self.session.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientError(f"{resp.status} {(await resp.text())[:200]}")
            self.sent[url] += 1
            self.accepted_at[url] = time.monotonic()
            if url in self.failing:
                self.failing.discard(url)
                log.info("reporting to %s again", url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failed[url] += 1
            if url not in self.failing:
                self.failing.add(url)
                log.warning("cannot report to %s: %s", url, exc or type(exc).__name__)
