"""The aggregator inside the DNS server: region reports in, one immutable HealthSnapshot out.

- Each region (the embedded prober, `gslb probe` processes) reports its views of every target.
- A region that misses 3 report intervals is dropped from the quorum (logged), and so is a region
  whose prober says it is blind (only prober errors of late: it cannot see, so it does not vote).
- The embedded prober of a node with no `health.region` is a stand-in (`settings.standby_region`): it
  counts only while no named region is live, so it neither adds a vote nobody configured ("down in 3 of
  4 regions" where the operator runs 3) nor leaves a single node without failover.
- With no live region left, the last state holds for `grace` seconds, then every target is treated
  as up (fail open), logged and counted in `fail_open_total`.
- The operator overrides in force (resolved by gslb/health/overrides.py) ride along in the snapshot.
- So do the regional proxies' pool reports (gslb/health/proxyreport.py) while fresh: a proxy silent for
  STALE_INTERVALS of its own interval drops out, and the probers alone decide its sites again.
A new snapshot (version + 1) is published through `on_change` whenever a state, an override or an
RTT (to another step: gslb/health/rttstep.py) changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gslb.config.health import HealthSettings
from gslb.config.model import Target
from gslb.config.overrides import Override
from gslb.events import EventLog
from gslb.health.proxyreport import ProxyReport
from gslb.health.quorum import quorum
from gslb.health.rttstep import rtt_step
from gslb.health.snapshot import EndpointHealth, HealthSnapshot, ProberStatus, ProxyPoolView, RegionView

log = logging.getLogger("gslb.health")
STALE_INTERVALS = 3
NO_STATUS = ProberStatus()


@dataclass(slots=True)
class RegionReport:
    views: dict[Target, RegionView]
    received: float
    interval: float
    status: ProberStatus = NO_STATUS
    run: str | None = None          # the prober run and report number the views stand at (deltas chain on)
    seq: int = 0

    def fresh(self, now: float) -> bool:
        """Reported within the last STALE_INTERVALS intervals."""
        return now - self.received <= STALE_INTERVALS * self.interval

    def live(self, now: float) -> bool:
        """Counted in the quorum: fresh, and its prober is not blind."""
        return self.fresh(now) and self.status.blind is None


@dataclass(slots=True)
class ProxySource:
    """A regional proxy's last report and when it arrived (this server's clock)."""

    report: ProxyReport
    received: float

    def fresh(self, now: float) -> bool:
        return now - self.received <= STALE_INTERVALS * self.report.interval


class HealthMonitor:
    """Combines region reports with quorum; see the module docstring."""

    def __init__(self, settings: HealthSettings, on_change: Callable[[HealthSnapshot], None],
                 clock: Callable[[], float] = time.time, events: EventLog | None = None):
        self.settings = settings
        self.events = events if events is not None else EventLog()
        # target -> the (zone, pool, site, address) it stands for, so an event names them (set by the server)
        self.places: Mapping[Target, list[tuple[str, str, str, str]]] = {}
        self.on_change = on_change
        self.clock = clock
        self.targets: dict[Target, None] = {}
        self.regions: dict[str, RegionReport] = {}
        self.overrides: Mapping[tuple[str, str, str, str], Override] = MappingProxyType({})
        self.snapshot = HealthSnapshot()       # the latest details, for the API
        self.published = self.snapshot         # what steering uses; replaced only on a real change
        self.fail_open = False
        self.fail_open_total = 0
        self._dead: set[str] = set()
        self._blind: set[str] = set()
        self.standby = settings.standby_region     # counts only while no other region is live
        self._standby_counted: bool | None = None
        self.counted: frozenset[str] = frozenset()  # the regions the last combination counted
        self._last_live = clock()
        self._seeded = False
        self._mode: tuple[str, frozenset[str]] | None = None   # (live | grace | fail open, live regions)
        self.proxies: dict[str, ProxySource] = {}              # proxy name -> its last report
        self.proxy_views: Mapping[str, ProxyPoolView] = MappingProxyType({})   # fresh: "PROXY/POOL" -> view
        self._silent_proxies: set[str] = set()
        self.gaps = 0          # deltas that did not follow the report held (the prober was asked for a full one)
        # prober reports taken, by kind (full, delta, gap): count, seconds spent (parse + combine), the
        # slowest, bytes received, the biggest
        self.ingest: dict[str, list[float]] = {}

    def seed(self, states: Mapping[Target, str], age: float) -> None:
        """Start from states saved before a restart. They hold like a last known state: until a region
        reports, or for `grace` seconds if none does (then fail open)."""
        now = self.clock()
        reason = f"restored from the state file ({age:.0f} s old)"
        targets = {t: EndpointHealth(s, now, reason)  # type: ignore[arg-type]
                   for t, s in states.items() if s in ("up", "down")}
        self._seeded = bool(targets)
        self.snapshot = self.published = HealthSnapshot(MappingProxyType(targets), self.overrides, 1)
        self._last_live = now

    def set_targets(self, targets: Iterable[Target]) -> None:
        self.targets = dict.fromkeys(targets)
        self.recompute()

    def report(self, region: str, views: Mapping[Target, RegionView], interval: float,
               status: ProberStatus = NO_STATUS, run: str | None = None, seq: int = 0) -> None:
        """A region's views of the targets it probes (targets we do not serve are ignored), and how its
        prober is doing (a blind one is left out of the quorum). `run`/`seq`: where the prober's
        report sequence stands, for the deltas that follow (gslb/health/report.py)."""
        before = self._region_back(region, len(views))
        views = dict(views)
        self.regions[region] = RegionReport(views, self.clock(), interval, status, run, seq)
        # Only the targets whose view moved since it was last combined are combined again: with thousands
        # of targets, redoing all of them for every report of every region would stall the DNS loop.
        moved = [t for t, v in views.items() if t in self.targets and _view_moved(self.snapshot.of(t).regions.get(region), v)]
        if before is not None:
            moved += [t for t in before.views if t not in views and t in self.targets]
        self.recompute(moved)

    def report_delta(self, region: str, run: str, base: int, seq: int, changed: Mapping[Target, RegionView],
                     gone: Iterable[Target], interval: float, status: ProberStatus = NO_STATUS) -> bool:
        """A delta of a region's views: applied only on top of report `base` of prober run `run`, the one
        this server holds for the region; returns False (nothing applied) on a gap, and the prober is
        asked for a full report. Costs the size of the delta, not the number of targets."""
        held = self.regions.get(region)
        if held is None or held.run != run or held.seq != base:
            self.gaps += 1
            return False
        self._region_back(region, len(held.views))
        views = held.views          # this report's own dict (a copy of the full one): updated in place
        for target in gone:
            views.pop(target, None)
        views.update(changed)
        held.received, held.interval, held.status, held.seq = self.clock(), interval, status, seq
        moved = [t for t, v in changed.items()
                 if t in self.targets and _view_moved(self.snapshot.of(t).regions.get(region), v)]
        self.recompute(moved + [t for t in gone if t in self.targets])
        return True

    def note_ingest(self, seconds: float, kind: str, size: int = 0) -> None:
        """One prober report taken: the time spent (parsing it off the loop, combining it on the loop) and
        its size as received."""
        row = self.ingest.setdefault(kind, [0, 0.0, 0.0, 0, 0])
        row[0] += 1
        row[1] += seconds
        row[2] = max(row[2], seconds)
        row[3] += size
        row[4] = max(row[4], size)

    def ingest_document(self) -> dict:
        """For GET /v1/health: prober reports taken, by kind, with their mean and slowest ingest time,
        the bytes received and the biggest report."""
        return {kind: {"count": int(n), "mean_ms": round(total / n * 1000, 3) if n else 0.0,
                       "max_ms": round(most * 1000, 3), "bytes": int(size), "max_bytes": int(biggest)}
                for kind, (n, total, most, size, biggest) in self.ingest.items()}

    def _region_back(self, region: str, targets: int) -> RegionReport | None:
        """The region's last report; an event when it is new or back from silence."""
        before = self.regions.get(region)
        if region in self._dead:
            self.events.emit(log, "region.back", f"prober region {region} is reporting again", region=region,
                             reason="reporting again")
            self._dead.discard(region)
        elif before is None:
            self.events.emit(log, "region.back", f"prober region {region} reporting, {targets} targets",
                             region=region, reason="first report")
        return before

    def set_overrides(self, overrides: Mapping[tuple[str, str, str, str], Override]) -> None:
        """The overrides in force now: (zone, pool, site, address) -> deciding entry. Published at once."""
        if dict(overrides) == dict(self.overrides):
            return
        self.overrides = MappingProxyType(dict(overrides))
        self._publish(dict(self.snapshot.targets), ())

    def tick(self) -> None:
        """Called every report interval: drops silent regions and proxies, applies grace and fail-open."""
        self.refresh_proxies()
        self.recompute(())

    def proxy_report(self, report: ProxyReport) -> None:
        """A regional proxy's pool states (admitted by the intake). Published at once when a pool's
        counts moved; a heartbeat that changes nothing makes no new snapshot."""
        name = report.proxy
        if name in self._silent_proxies or name not in self.proxies:
            self._silent_proxies.discard(name)
            self.events.emit(log, "proxy.reporting", f"proxy {name} reporting, {len(report.pools)} pools",
                             pool=None, region=report.region, reason="reporting")
        self.proxies[name] = ProxySource(report, self.clock())
        self.refresh_proxies()

    def refresh_proxies(self) -> None:
        """The fresh proxies' pool views; a new snapshot when they moved (a count, or a proxy gone silent)."""
        now = self.clock()
        views: dict[str, ProxyPoolView] = {}
        for name, source in self.proxies.items():
            if not source.fresh(now):
                if name not in self._silent_proxies:
                    self._silent_proxies.add(name)
                    self.events.emit(log, "proxy.silent", f"proxy {name} stopped reporting ({now - source.received:.1f}"
                                     " s): its sites are decided by the probers alone", region=source.report.region,
                                     reason=f"no report for {now - source.received:.1f} s")
                continue
            for pool, view in source.report.pools.items():
                views[f"{name}/{pool}"] = view
        old = self.proxy_views
        if views == dict(old):
            return
        for key, view in views.items():
            before = old.get(key)
            if view.healthy == 0 and (before is None or before.healthy > 0):
                self.events.emit(log, "proxy.pool_empty", f"proxy pool {key}: no healthy backend "
                                 f"({view.describe()}): the endpoints fronting it are withdrawn", pool=key,
                                 reason=view.describe())
            elif view.healthy > 0 and before is not None and before.healthy == 0:
                self.events.emit(log, "proxy.pool_back", f"proxy pool {key}: {view.describe()}", pool=key,
                                 reason=view.describe())
        self.proxy_views = MappingProxyType(views)
        self._publish(dict(self.snapshot.targets), ())

    def _live_regions(self, now: float) -> dict[str, RegionReport]:
        live = {}
        for name, rep in self.regions.items():
            if not rep.fresh(now):
                if name not in self._dead:
                    self._dead.add(name)
                    why = f"no report for {now - rep.received:.1f} s"
                    self.events.emit(log, "region.silent", f"prober region {name} stopped reporting "
                                     f"({now - rep.received:.1f} s): dropped from the quorum", region=name, reason=why)
            elif rep.status.blind is not None:
                if name not in self._blind:
                    self._blind.add(name)
                    self.events.emit(log, "region.blind", f"prober region {name} cannot check ({rep.status.blind}): "
                                     "not counted in the quorum until it can", region=name, reason=rep.status.blind)
            else:
                if name in self._blind:
                    self._blind.discard(name)
                    self.events.emit(log, "region.back", f"prober region {name} can check again: counted in "
                                     "the quorum", region=name, reason="can check again")
                live[name] = rep
        if self.standby in live:
            alone = len(live) == 1
            if alone != self._standby_counted:
                self._standby_counted = alone
                log.info("embedded prober (no health.region, reporting as %s): %s", self.standby,
                         "counted in the quorum, no named region is live" if alone
                         else "not counted in the quorum while named regions report")
            if not alone:
                del live[self.standby]
        self.counted = frozenset(live)
        return live

    def recompute(self, only: Iterable[Target] | None = None) -> None:
        """Combine the live regions' views into a new snapshot: of every target, or of `only` these when
        the live regions and the mode (live, grace, fail open) are what they were last time."""
        now = self.clock()
        live = self._live_regions(now)
        if live:
            self._last_live = now
            if self.fail_open:
                self.events.emit(log, "fail_open.left", "prober reports are back: fail-open ends",
                                 reason=f"reports from {', '.join(sorted(live))}")
            self.fail_open = False
        elif (self.regions or self._seeded) and not self.fail_open \
                and now - self._last_live > self.settings.grace:
            self.fail_open = True
            self.fail_open_total += 1
            self.events.emit(log, "fail_open.entered", f"no prober has reported for {now - self._last_live:.0f} s "
                             f"(grace {self.settings.grace:.0f} s): failing open, every endpoint counts as up",
                             reason=f"no prober report for {now - self._last_live:.0f} s")
        holding = not live and not self.fail_open
        mode = ("fail open" if self.fail_open else "grace" if holding else "live", frozenset(live))
        if only is not None and mode == self._mode:
            todo: Iterable[Target] = dict.fromkeys(only)
            if not todo:
                return                                  # nothing moved: the snapshot stands
            targets = dict(self.snapshot.targets)
        else:
            targets, todo = {}, self.targets
        self._mode = mode
        for target in todo:
            previous = self.published.of(target) if holding else self.snapshot.of(target)
            if holding:
                targets[target] = previous          # grace: the last known state stays
                continue
            views = {name: rep.views[target] for name, rep in live.items() if target in rep.views}
            state, reason = quorum(views, self.settings.needed(len(views))) if not self.fail_open \
                else ("unknown", "fail open: no prober reporting")
            since = previous.since if previous.state == state and previous.since else now
            if previous.state != state and (previous.state != "unknown" or state == "down"):
                self._state_event(target, previous.state, state, reason)
            targets[target] = EndpointHealth(state, since, reason, MappingProxyType(views))
        self._publish(targets, todo)

    def _state_event(self, target: Target, before: str, state: str, reason: str) -> None:
        """One event per endpoint the target stands for: withdrawn (down), returned (up after down), or
        a log line for other moves (to unknown: fail open, which has its own event)."""
        if state == "down" or before == "down":
            kind = "endpoint.withdrawn" if state == "down" else "endpoint.returned"
            verb = kind.split(".")[1]
            for zone, pool, site, address in self.places.get(target) or [("", "", "", target.address)]:
                where = f"{zone} {pool}/{site} {address}" if zone else str(target)
                self.events.emit(log, kind, f"{where} {verb}: {reason}", zone=zone or None, pool=pool or None,
                                 site=site or None, address=address, reason=reason)
        else:
            log.info("%s %s: %s", target, state, reason)

    def _publish(self, targets: dict[Target, EndpointHealth], todo: Iterable[Target]) -> None:
        old = self.published
        changed = set(targets) != set(old.targets) or dict(self.overrides) != dict(old.overrides) \
            or dict(self.proxy_views) != dict(old.proxies) or any(
            old.of(t).state != targets[t].state or _rtt_moved(old.of(t).regions, targets[t].regions) for t in todo)
        self.snapshot = HealthSnapshot(MappingProxyType(targets), self.overrides,
                                       old.version + 1 if changed else old.version, self.proxy_views)
        if changed:
            self.published = self.snapshot
            self.on_change(self.snapshot)


def _rtt_differs(a: float | None, b: float | None) -> bool:
    """A change of RTT worth a new snapshot: to another step (1 ms below 20 ms, 5 % above). Steps, not a
    threshold from the last value kept, so every server keeps the same step from the same reports
    (gslb/health/rttstep.py) and latency steering agrees across servers."""
    if a is None or b is None:
        return (a is None) != (b is None)
    return rtt_step(a) != rtt_step(b)


def _rtt_moved(old: Mapping[str, RegionView], new: Mapping[str, RegionView]) -> bool:
    """RTT moved, or a region's prober error came or went (shown by `gslb explain`)."""
    return set(old) != set(new) or any(_rtt_differs(old[r].rtt_ms, v.rtt_ms)
                                       or (old[r].prober_error is None) != (v.prober_error is None)
                                       for r, v in new.items())


def _view_moved(combined: RegionView | None, new: RegionView) -> bool:
    """Whether a region's new view of a target differs from the one last combined, enough to combine
    again. Measured from the combined view, not the previous report, so slow RTT drift adds up."""
    return combined is None or combined.state != new.state or combined.error != new.error \
        or combined.prober_error != new.prober_error or _rtt_differs(combined.rtt_ms, new.rtt_ms)
