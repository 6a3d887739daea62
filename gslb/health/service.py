"""The health room as `gslb serve` uses it: embedded prober + aggregator + state file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from gslb.config.health import HealthSettings
from gslb.config.model import Target
from gslb.health import statefile
from gslb.health.intake import ReportIntake
from gslb.health.monitor import HealthMonitor
from gslb.health.prober import Prober
from gslb.health.report import target_id
from gslb.health.snapshot import HealthSnapshot, RegionView
from gslb.health.statefile import target_key

log = logging.getLogger("gslb.health")
SAVE_EVERY = 10.0


class HealthService:
    """Runs the embedded prober, combines all regions' reports and publishes snapshots."""

    def __init__(self, settings: HealthSettings, on_change: Callable[[HealthSnapshot], None]):
        self.settings = settings
        self.monitor = HealthMonitor(settings, on_change)
        self.prober: Prober | None = None
        self.known: dict[str, Target] = {}         # target_key -> target (GET /v1/targets)
        self.known_ids: dict[str, Target] = {}     # target_id -> target (prober reports)
        self.intake = ReportIntake(settings.secret, settings.region_keys)   # who may report, what was refused
        self._tasks: list[asyncio.Task] = []
        saved = statefile.load(settings.state_dir, settings.state_max_age) if settings.state_dir \
            else statefile.SavedHealth()
        self.monitor.overrides.update(saved.overrides)
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

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
            statefile.save(self.settings.state_dir, combined, {t: (v.state, v.rtt_ms) for t, v in local.items()},
                           self.monitor.overrides)
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

