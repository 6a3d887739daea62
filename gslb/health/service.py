"""The health room as `gslb serve` uses it: embedded prober + aggregator + state file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from gslb.config.health import HealthSettings
from gslb.config.model import Target, Zone
from gslb.config.overrides import Override, Selector
from gslb.events import EventLog
from gslb.health import statefile
from gslb.health.intake import ReportIntake
from gslb.health.monitor import HealthMonitor
from gslb.health.overrides import OverrideSet
from gslb.health.prober import Prober
from gslb.health.report import target_id
from gslb.health.snapshot import HealthSnapshot, RegionView
from gslb.health.statefile import target_key
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.health")
SAVE_EVERY = 10.0


class HealthService:
    """Runs the embedded prober, combines all regions' reports and publishes snapshots."""

    def __init__(self, settings: HealthSettings, on_change: Callable[[HealthSnapshot], None],
                 overrides_file: str | None = None, events: EventLog | None = None):
        """`overrides_file`: the zones directory's overrides.yaml (None: file overrides off). `events`: where
        state changes are recorded (gslb/events.py; default a log of its own)."""
        self.settings = settings
        self.events = events if events is not None else EventLog()
        self.monitor = HealthMonitor(settings, on_change, events=self.events)
        # Runtime overrides are read here, whatever the age of health.json: they have their own file.
        self.overrides = OverrideSet(overrides_file, settings.state_dir, self.monitor.set_overrides,
                                     events=self.events)
        self.overrides.reload_file(force=True)
        self._expiry: asyncio.TimerHandle | None = None
        self.prober: Prober | None = None
        self.known: dict[str, Target] = {}         # target_key -> target (GET /v1/targets)
        self.known_ids: dict[str, Target] = {}     # target_id -> target (prober reports)
        self.intake = ReportIntake(settings.secret, settings.region_keys)   # who may report, what was refused
        self._tasks: list[asyncio.Task] = []
        saved = statefile.load(settings.state_dir, settings.state_max_age) if settings.state_dir \
            else statefile.SavedHealth()
        if saved.combined:
            # The first snapshot answers as the server did before the restart, with or without an
            # embedded prober; live reports take over as they arrive.
            self.monitor.seed(saved.combined, saved.age)
        self._restored = saved.local

    @property
    def snapshot(self) -> HealthSnapshot:
        return self.monitor.snapshot

    async def start(self) -> None:
        if self.settings.embedded:
            self.prober = Prober(self.settings.embedded_region, self._local_report, self.settings.report_interval)
            self.prober.restore(self._restored)
            await self.prober.start()
            self.prober.set_targets(self.known.values())
        self._tasks.append(asyncio.create_task(self._tick()))
        self.schedule_expiry()

    def schedule_expiry(self) -> None:
        """Arm a timer for the next override `until`, so an expiry applies on time, not at the next report.
        Called after every change of the overrides (the timer re-arms itself)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        when = self.overrides.next_expiry()
        if when is None:
            return
        loop = asyncio.get_running_loop()
        # loop.time() is monotonic; `until` is wall-clock time: convert at arming.
        delay = max(0.0, when - self.overrides.clock())
        self._expiry = loop.call_later(delay + 0.001, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self.overrides.expire()
        self.schedule_expiry()

    def set_override(self, entry: Override) -> Override | None:
        """Set a runtime override (saved first); returns the API entry it replaced. :raises OSError:"""
        before = self.overrides.put(entry)
        self.schedule_expiry()
        return before

    def clear_override(self, selector: Selector) -> Override | None:
        """Clear the runtime override of `selector`; returns it, or None. :raises OSError:"""
        entry = self.overrides.clear(selector)
        self.schedule_expiry()
        return entry

    def set_zones(self, zones: Mapping[str, Zone]) -> None:
        """The zones served now: overrides are resolved against them."""
        self.overrides.set_zones(zones)

    def reload_overrides(self, force: bool = False) -> bool:
        """Read overrides.yaml again when it changed (or `force`: SIGHUP); True when its entries changed."""
        changed = self.overrides.reload_file(force)
        if changed:
            self.schedule_expiry()
        return changed

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        await cancel_and_wait(self._tasks)
        self.save()
        if self.prober is not None:
            await self.prober.stop()

    def set_targets(self, targets: Iterable[Target]) -> None:
        """The targets the served zones want probed (called on every zone load)."""
        targets = list(targets)
        self.known = {target_key(t): t for t in targets}
        self.known_ids = {target_id(t): t for t in targets}
        self.monitor.set_targets(targets)
        if self.prober is not None:
            self.prober.set_targets(targets)

    def _local_report(self, region: str, views: dict[Target, RegionView]) -> None:
        status = self.prober.status() if self.prober is not None else None
        self.monitor.report(region, views, self.settings.report_interval, *([status] if status else []))

    def save(self) -> None:
        if not self.settings.state_dir:
            return
        local = self.prober.views() if self.prober is not None else {}
        combined = {t: h.state for t, h in self.monitor.published.targets.items()}
        try:
            statefile.save(self.settings.state_dir, combined, {t: (v.state, v.rtt_ms) for t, v in local.items()})
        except OSError as exc:
            log.error("cannot save the health state to %s: %s", self.settings.state_dir, exc)

    async def _tick(self) -> None:
        since_save = 0.0
        while True:
            await asyncio.sleep(self.settings.report_interval)
            self.monitor.tick()
            since_save += self.settings.report_interval
            if since_save >= SAVE_EVERY:
                since_save = 0.0
                self.save()

