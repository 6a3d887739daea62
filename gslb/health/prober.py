"""A prober: probes every target on its check's interval and keeps one region's view of each.

Each target runs in its own task, started at a random offset inside its interval so checks spread out
and a slow or hanging endpoint never delays the others. Checks keep a fixed cadence (due times one
interval apart, not one interval after the last check ended), so a late check does not push the next ones. Results go through RiseFall and Ewma; every
state change and every `report_interval` the prober hands its views to `report(region, views)`: the
in-process aggregator for the embedded prober, an HTTP push for `gslb probe`.

A check that fails because of the prober itself (`ProbeResult.local`: no file descriptors, no source
address; or a timeout while the prober's own loop was stalled for LAG_FRACTION of the timeout) is a
*prober error*: it counts toward neither rise nor fall, the target keeps its state, and the view says
so. A prober whose checks have all been prober errors for `blind_after` seconds reports itself blind,
and the aggregator leaves it out of the quorum instead of counting its stale views.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from gslb.config.model import Target
from gslb.health.checks import ProbeResult, make_session, probe
from gslb.health.lag import LoopLag
from gslb.health.report import target_id
from gslb.health.snapshot import ProberStatus, RegionView
from gslb.health.state import Ewma, RiseFall
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.prober")
Report = Callable[[str, dict[Target, RegionView] | dict[str, RegionView]], Awaitable[None] | None]
LAG_FRACTION = 0.5      # a timeout while the loop was this late (as a share of the timeout) is the prober's
BLIND_INTERVALS = 3     # only prober errors for this many report intervals (and 2 check intervals): blind
ERROR_LOG_INTERVAL = 10.0
# The reported RTT moves only past this band around it: a fifth of the default latency_margin_ms (10) and
# half the default latency_margin_pct (10), so steering sees every move that can change an answer by the
# default margins, and not the jitter below them.
RTT_BAND_MS = 2.0
RTT_BAND_PCT = 5.0


def rtt_to_report(reported: float | None, smoothed: float | None) -> float | None:
    """The RTT to report: `smoothed` when it left the band around the `reported` one, else `reported`."""
    if smoothed is None or reported is None:
        return smoothed
    band = max(RTT_BAND_MS, reported * RTT_BAND_PCT / 100)
    return smoothed if abs(smoothed - reported) >= band else reported


def failure_reason(target: Target, result: ProbeResult) -> str:
    """A failed check's reason as a metric label: timeout, connect (no connection or no reply at all),
    response (an answer that did not match: status, body, expect), or down (a health file says so)."""
    if target.check.type == "file":
        return "down"
    if result.timed_out:
        return "timeout"
    return "connect" if result.rtt_ms is None else "response"


class _Watch:
    """A target's running check and what it has seen."""

    __slots__ = ("error", "id", "prober_error", "reported_rtt", "risefall", "rtt", "target", "task", "updated")

    def __init__(self, target: Target, state: str = "unknown", rtt: float | None = None):
        self.target = target
        self.id = target_id(target)          # once: a report names targets by id (a hash of the whole check)
        self.risefall = RiseFall(target.check.rise, target.check.fall, state)  # type: ignore[arg-type]
        self.rtt = Ewma(value=rtt)
        self.reported_rtt = rtt
        self.error: str | None = None
        self.prober_error: str | None = None
        self.updated = 0.0
        self.task: asyncio.Task | None = None

    def add_rtt(self, ms: float) -> None:
        self.rtt.add(ms)
        self.reported_rtt = rtt_to_report(self.reported_rtt, self.rtt.value)

    def view(self) -> RegionView:
        return RegionView(self.risefall.state, self.reported_rtt, self.error, self.updated, self.prober_error)


class Prober:
    """Probes targets for one region. `set_targets` may be called at any time (zone reloads)."""

    def __init__(self, region: str, report: Report, report_interval: float = 1.0, dns_name: str = ".",
                 source: str | None = None, by_id: bool = False):
        self.region = region
        # by_id: `report` gets views keyed by target_id (str) rather than Target; a str caches its hash,
        # a Target hashes every field of its check on each dict operation (10,000 targets: 10,000 per report).
        self.by_id = by_id
        self.source = source
        self.report = report
        self.report_interval = report_interval
        self.dns_name = dns_name
        self._watches: dict[Target, _Watch] = {}
        self._session: aiohttp.ClientSession | None = None
        self._reporter: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._restored: dict[Target, tuple[str, float | None]] = {}
        self.lag = LoopLag()
        self.errors_total = 0
        self.last_error: str | None = None
        self.last_error_at = 0.0
        self._last_vote = time.monotonic()     # the last check that said something about its endpoint
        self._last_local = 0.0                 # the last prober error
        self._logged_errors = 0
        self._error_logged_at = 0.0
        # For /metrics (gslb/health/metrics.py): failed checks by (address, reason) and checks made.
        self.failures: dict[tuple[str, str], int] = {}
        self.checks = 0

    def restore(self, states: dict[Target, tuple[str, float | None]]) -> None:
        """Seed targets with saved (state, rtt) so a restart starts from what was last seen."""
        self._restored = dict(states)

    def views(self) -> dict[Target, RegionView]:
        return {t: w.view() for t, w in self._watches.items()}

    def id_views(self) -> dict[str, RegionView]:
        """The views keyed by target_id (what a report names them by). Callable from another thread (the
        pusher's): list() copies the watches at once, so a zone reload meanwhile cannot break the loop."""
        return {w.id: w.view() for w in list(self._watches.values())}

    def blind_after(self) -> float:
        """Seconds of nothing but prober errors after which this prober says it cannot see."""
        shortest = min((w.target.check.interval for w in self._watches.values()), default=1.0)
        return max(BLIND_INTERVALS * self.report_interval, 2 * shortest)

    def status(self) -> ProberStatus:
        """Prober errors so far, and whether the prober is blind (only prober errors of late)."""
        now = time.monotonic()
        blind = None
        if self._last_local > self._last_vote and now - self._last_vote >= self.blind_after():
            blind = f"only prober errors for {now - self._last_vote:.0f} s: {self.last_error}"
        return ProberStatus(self.errors_total, self.last_error, self.last_error_at, blind)

    async def start(self) -> None:
        self._session = make_session(self.source)
        self.lag.start()
        self._reporter = asyncio.create_task(self._report_loop())

    async def stop(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task] + ([self._reporter] if self._reporter else [])
        self.lag.stop()
        await cancel_and_wait(tasks)
        if self._session is not None:
            await self._session.close()

    def set_targets(self, targets: Iterable[Target]) -> None:
        """Probe exactly these targets: unchanged ones keep their state, removed ones stop, new ones start."""
        wanted = dict.fromkeys(targets)
        for target in list(self._watches):
            if target not in wanted:
                watch = self._watches.pop(target)
                if watch.task:
                    watch.task.cancel()
                log.info("%s: stopped probing %s", self.region, target)
        for target in wanted:
            if target not in self._watches:
                state, rtt = self._restored.pop(target, ("unknown", None))
                watch = self._watches[target] = _Watch(target, state, rtt)
                watch.task = asyncio.create_task(self._run(watch))
        self._changed.set()

    async def _run(self, watch: _Watch) -> None:
        interval = watch.target.check.interval
        loop = asyncio.get_running_loop()
        due = loop.time() + random.uniform(0, interval)
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            # The next check is due one interval after this one was due, not after it ended: a late
            # check (a busy loop) does not push every later one. Past a whole interval late, start over.
            due += interval
            if due < loop.time():
                due = loop.time() + interval
            await self._check(watch)

    async def _check(self, watch: _Watch) -> None:
        started = time.monotonic()
        try:
            result = await probe(watch.target, session=self._session, dns_name=self.dns_name, source=self.source)
        except Exception as exc:
            # probe() should not raise; if it ever does, the target must stay checked, not go silent.
            log.exception("%s: check of %s raised", self.region, watch.target)
            result = ProbeResult(False, None, f"check raised {type(exc).__name__}: {exc}", local=True)
        watch.updated = time.time()
        self.checks += 1
        late = self.lag.worst(started) if result.timed_out else 0.0
        if result.local or late >= LAG_FRACTION * watch.target.check.timeout:
            why = result.error or "check failed"
            if not result.local:
                why += f" (the prober's own event loop was {late:.2f} s late: overloaded, not a vote)"
            self._prober_error(watch, why)
            self._count_failure(watch.target, "prober_error")
            return
        self._last_vote = time.monotonic()
        if result.abstain:                # no news about the endpoint: its state and counters hold
            if watch.error != result.error or watch.prober_error is not None:
                watch.error, watch.prober_error = result.error, None
                self._changed.set()
            return
        if watch.prober_error is not None:
            log.info("%s: %s can be checked again", self.region, watch.target)
            watch.prober_error = None
            self._changed.set()
        if result.rtt_ms is not None:
            watch.add_rtt(result.rtt_ms)
        if not result.ok:
            self._count_failure(watch.target, failure_reason(watch.target, result))
        watch.error = None if result.ok else result.error
        before = watch.risefall.state
        if watch.risefall.observe(result.ok):
            log.info("%s: %s %s -> %s%s", self.region, watch.target, before, watch.risefall.state,
                     f" ({result.error})" if result.error else "")
            self._changed.set()

    def _count_failure(self, target: Target, reason: str) -> None:
        key = (target.address, reason)
        self.failures[key] = self.failures.get(key, 0) + 1

    def _prober_error(self, watch: _Watch, why: str) -> None:
        """A check the prober could not make: counted and shown; the target's state and counters hold."""
        self.errors_total += 1
        self.last_error, self.last_error_at = why, time.time()
        self._last_local = time.monotonic()
        log.debug("%s: prober error #%d checking %s: %s", self.region, self.errors_total, watch.target, why)
        if watch.prober_error is None:
            self._changed.set()
        watch.prober_error = why
        # Logged at most every ERROR_LOG_INTERVAL: when the process is out of descriptors every check fails.
        now = time.monotonic()
        if now - self._error_logged_at >= ERROR_LOG_INTERVAL:
            log.warning("%s: prober error (%d since the last such line; the endpoints keep their state): %s",
                        self.region, self.errors_total - self._logged_errors, why)
            self._error_logged_at, self._logged_errors = now, self.errors_total

    async def _report_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.report_interval)
            self._changed.clear()
            try:
                result = self.report(self.region, self.id_views() if self.by_id else self.views())
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("%s: report failed", self.region)
