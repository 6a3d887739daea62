"""The zone store: the zones being served, reloaded file by file, never half-way.

Each file is loaded on its own; a file that fails keeps its last good zone serving and its problems
are kept for `GET /v1/zones` and the log. SOA serials are automatic unless a file gives one: derived
from the file's git commit time or modification time, the same on every node that serves the same
file, and kept monotonic per node (gslb/config/serials.py).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from gslb.config.model import Zone, ZoneLimits
from gslb.config.regions import Regions
from gslb.config.serials import Derived, SerialKeeper, file_digest
from gslb.config.zone import load_zone_file, pool_problems, zone_files
from gslb.errors import ConfigError, Problem
from gslb.events import EventLog

log = logging.getLogger("gslb.zones")


@dataclass(frozen=True, slots=True)
class FileStatus:
    file: str
    origin: str | None
    ok: bool
    loaded_at: float
    problems: tuple[Problem, ...] = ()


class ZoneStore:
    """Loads the zone directory and reloads what changed; `zones` is an immutable origin -> Zone map."""

    def __init__(self, directory: str, regions: Regions, limits: ZoneLimits = ZoneLimits(),  # noqa: B008
                 state_dir: str | None = None, events: EventLog | None = None):
        """`state_dir`: where the automatic serials are remembered across restarts (None: not kept).
        `events`: where zone.loaded / zone.refused are recorded (default a log of its own)."""
        self.directory = directory
        self.events = events if events is not None else EventLog()
        self.regions = regions
        self.limits = limits
        self.zones: MappingProxyType = MappingProxyType({})
        self.status: dict[str, FileStatus] = {}
        self._by_file: dict[str, Zone] = {}
        self._stamps: dict[str, tuple[float, int]] = {}
        self._serials = SerialKeeper(state_dir)
        self.last_reload: float = 0.0

    def _stamp(self, path: str) -> tuple[float, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_mtime, st.st_size

    def changed(self) -> bool:
        """True when a zone file was added, removed or modified since the last load."""
        try:
            files = zone_files(self.directory)
        except ConfigError:
            return False
        if set(files) != set(self._stamps):
            return True
        return any(self._stamp(f) != stamp for f, stamp in self._stamps.items())

    def load(self, force: bool = False, parse: Callable[[str], Zone] | None = None) -> bool:
        """(Re)load changed files; returns True when the served zones changed. `parse(path)` loads one
        file (default: in this process; gslb.config.reloader.ZoneParser.load parses in a subprocess).

        :raises ConfigError: only when the zone directory itself cannot be read.
        """
        if parse is None:
            def parse(path: str) -> Zone:
                # A big zone is millions of new objects and no cycles: with the collector on, each
                # threshold crossing walks all of them again (a 100,000-name zone loaded 3x slower).
                paused = gc.isenabled()
                gc.disable()
                try:
                    return load_zone_file(path, self.regions, self.limits)
                finally:
                    if paused:
                        gc.enable()
        files = zone_files(self.directory)
        status = dict(self.status)     # copy on write: the API may be reading the old one
        by_file = {f: z for f, z in self._by_file.items() if f in files}
        changed = len(by_file) != len(self._by_file)
        for gone in set(self._stamps) - set(files):
            self._stamps.pop(gone, None)
            status.pop(gone, None)
            log.info("zone file %s removed", gone)
        for path in files:
            stamp = self._stamp(path)
            if not force and stamp == self._stamps.get(path):
                continue
            self._stamps[path] = stamp
            try:
                # Before parsing: a file that changes meanwhile is loaded again, with a newer digest.
                digest, derived = file_digest(path), self._serials.derive(path, stamp[0])
            except (OSError, TypeError):
                digest, derived = "", None          # gone or unreadable: the parse says why
            try:
                zone = parse(path)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("%s", problem)
                kept = by_file.get(path)
                self.events.emit(log, "zone.refused", f"zone file {path} not loaded ({len(exc.problems)} problems); "
                                 + (f"still serving {kept.origin} serial {kept.soa.serial}" if kept
                                    else "nothing served from it"),
                                 zone=kept.origin if kept else None, reason=str(exc.problems[0]) if exc.problems
                                 else "not loaded")
                status[path] = FileStatus(path, kept.origin if kept else None, False, time.time(), exc.problems)
                continue
            clash = next((f for f, z in by_file.items() if z.origin == zone.origin and f != path), None)
            if clash is not None:
                problem = Problem(path, 1, f"zone {zone.origin} is already defined in {clash}")
                self.events.emit(log, "zone.refused", str(problem), zone=zone.origin, reason=problem.what)
                status[path] = FileStatus(path, None, False, time.time(), (problem,))
                continue
            zone = self._with_serial(zone, digest, derived)
            by_file[path] = zone
            changed = True
            status[path] = FileStatus(path, zone.origin, True, time.time())
            self.events.emit(log, "zone.loaded", f"loaded zone {zone.origin} from {path}, serial {zone.soa.serial} "
                             f"({'given' if zone.serial_given else derived.source if derived else '?'})",
                             zone=zone.origin, reason=f"serial {zone.soa.serial}")
        if changed:
            # Pools borrowed across zone files can only be checked on the whole set.
            served = {z.origin: z for z in by_file.values()}
            for path, zone in by_file.items():
                problems = pool_problems(zone, served)
                for problem in problems:
                    log.error("%s", problem)
                if problems:
                    status[path] = FileStatus(path, zone.origin, False, time.time(), tuple(problems))
        self.status = status
        if changed:
            self._by_file = by_file
            self.zones = MappingProxyType({z.origin: z for z in by_file.values()})
        self.last_reload = time.time()
        return changed

    def _with_serial(self, zone: Zone, digest: str, derived: Derived | None) -> Zone:
        """The zone with its SOA serial: the file's own, or the automatic one (gslb/config/serials.py)."""
        if derived is None and not zone.serial_given:     # read failed after the parse: use the load time
            derived = Derived(int(time.time()) % 2**32, "load time")
        serial = self._serials.serial(zone.origin, digest, derived,
                                      zone.soa.serial if zone.serial_given else None)
        return dataclasses.replace(zone, soa=dataclasses.replace(zone.soa, serial=serial))
