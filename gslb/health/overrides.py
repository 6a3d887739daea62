"""The overrides in force: entries of overrides.yaml (source `file`) and of the API (source `api`, kept in
state_dir/overrides.json), resolved to one deciding entry per endpoint (docs/overrides.md).

Precedence, strongest first, when several entries select the same endpoint:
  1. the API over the file (the operator acting now over the committed plan);
  2. the more specific selector: an address over a site over a pool; a single address over a CIDR holding
     it, a longer prefix over a shorter one; then a named site, pool, zone (in that order) over `*`;
  3. `down` over `up`.
An entry past its `until` no longer applies: an API entry is then removed (and the file rewritten), a
file entry stays in the file but is ignored; either is logged once. `OverrideSet.next_expiry` tells the
caller when to call `expire()`, so that an expiry takes effect on time without waiting for a report.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from gslb.config.model import Zone
from gslb.config.overrides import Override, Selector, endpoints, format_time, load_overrides, selector_problem
from gslb.errors import ConfigError
from gslb.events import EventLog
from gslb.health import overridefile

log = logging.getLogger("gslb.overrides")
Key = tuple[str, str, str, str]             # (zone origin, pool, site, address)
Resolved = Mapping[Key, Override]


def strength(entry: Override) -> tuple:
    """The sort key of the precedence in the module docstring: greater wins."""
    return entry.source == "api", entry.selector.rank, entry.state == "down"


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def resolve(entries: Iterable[Override], zones: Mapping[str, Zone], now: float) -> dict[Key, Override]:
    """The deciding active entry of every endpoint that at least one entry selects."""
    by_pool: dict[str, list[Key]] = {}
    by_address: dict[str, list[Key]] = {}
    every: list[Key] = []
    for key in endpoints(zones):
        every.append(key)
        by_pool.setdefault(key[1], []).append(key)
        by_address.setdefault(_normal(key[3]), []).append(key)
    out: dict[Key, Override] = {}
    for entry in entries:
        if not entry.active(now):
            continue
        sel = entry.selector
        if sel.pool is not None:
            candidates = by_pool.get(sel.pool, ())
        elif sel.network is not None and sel.network.prefixlen == sel.network.max_prefixlen:
            candidates = by_address.get(str(sel.network.network_address), ())
        else:
            candidates = every
        for key in candidates:
            if sel.matches(*key):
                held = out.get(key)
                if held is None or strength(entry) > strength(held):
                    out[key] = entry
    return out


class OverrideSet:
    """File and API overrides, the zones they apply to, and their resolution.

    `on_change(resolved)` is called with the new resolution whenever it changes (an entry set, cleared or
    expired, the file or the zones reloaded). Runs on the server's event loop; nothing here blocks but the
    small file writes.
    """

    def __init__(self, file_path: str | None, state_dir: str | None, on_change: Callable[[Resolved], None],
                 clock: Callable[[], float] = time.time, events: EventLog | None = None):
        self.file_path = file_path
        self.events = events if events is not None else EventLog()
        self.state_dir = state_dir
        self.on_change = on_change
        self.clock = clock
        self.file_entries: tuple[Override, ...] = ()
        self.file_problems: tuple[str, ...] = ()     # the last load's problems (the last good entries serve)
        self.api: dict[Selector, Override] = {}
        self.zones: Mapping[str, Zone] = MappingProxyType({})
        self.resolved: Resolved = MappingProxyType({})
        self._stamp: tuple[float, int] | None = None
        self._expired_logged: set[tuple[Selector, float | None, str]] = set()
        if state_dir:
            for entry in overridefile.load(state_dir):
                self.api[entry.selector] = entry
        else:
            log.warning("health.state_dir is off: runtime (API) overrides will not survive a restart")
        self._drop_expired_api(self.clock())

    # --- sources ---------------------------------------------------------------------------------------

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.file_path) if self.file_path else None
        except OSError:
            return None
        return (st.st_mtime, st.st_size) if st is not None else None

    def file_changed(self) -> bool:
        """True when overrides.yaml appeared, went away or was modified since it was last read."""
        return self.file_path is not None and self._file_stamp() != self._stamp

    def reload_file(self, force: bool = False) -> bool:
        """Read overrides.yaml again if it changed (or `force`). A broken file is logged with file:line
        and the last good entries stay in force. Returns True when the entries changed."""
        if self.file_path is None or (not force and not self.file_changed()):
            return False
        self._stamp = self._file_stamp()
        try:
            entries = load_overrides(self.file_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            self.file_problems = tuple(str(p) for p in exc.problems)
            log.error("overrides file %s not loaded (%d problems); the last good one stays in force (%d entries)",
                      self.file_path, len(exc.problems), len(self.file_entries))
            return False
        self.file_problems = ()
        if entries == self.file_entries:
            return False
        def key(e: Override) -> tuple:          # an entry moved to another line is the same entry
            return e.selector, e.state, e.reason, e.until, e.by
        before = {key(e): e for e in self.file_entries}
        self.file_entries = entries
        log.info("loaded %d overrides from %s", len(entries), self.file_path)
        for entry in entries:
            if key(entry) not in before:
                self._event("override.set", entry, f"override set in {entry.where}: {entry.selector} {entry.state}"
                            + (f" until {format_time(entry.until)}" if entry.until else "") + f": {entry.reason}")
        now = {key(e) for e in entries}
        for entry in [e for k, e in before.items() if k not in now]:
            self._event("override.cleared", entry, f"override removed from {self.file_path}: {entry.selector} "
                        f"(was {entry.state}: {entry.reason})")
        self._warn_unmatched(entries)
        self.recompute()
        return True

    def _warn_unmatched(self, entries: Iterable[Override]) -> None:
        if not self.zones:
            return
        for entry in entries:
            what = selector_problem(entry.selector, self.zones)
            if what is not None:
                log.warning("%s: override %s: it applies to nothing", entry.where, what)

    def set_zones(self, zones: Mapping[str, Zone]) -> None:
        """The zones served now (after every zone load)."""
        first = not self.zones
        self.zones = zones
        if first:
            self._warn_unmatched(self.file_entries)
        self.recompute()

    def put(self, entry: Override) -> Override | None:
        """Set an API override (replacing the API entry of the same selector); saved before it applies.
        Returns the entry it replaced. :raises OSError: when the state file cannot be written (not set)."""
        before = self.api.get(entry.selector)
        api = dict(self.api)
        api[entry.selector] = entry
        self._save(api)
        self.api = api
        self._event("override.set", entry, "override set over the API: {} {}{}{}: {}".format(
            entry.selector, entry.state, f" by {entry.by}" if entry.by else "",
            f" until {format_time(entry.until)}" if entry.until else "", entry.reason))
        self.recompute()
        return before

    def clear(self, selector: Selector) -> Override | None:
        """Remove the API override of `selector`; returns it, or None when there is none.
        :raises OSError: when the state file cannot be written (nothing is cleared)."""
        entry = self.api.get(selector)
        if entry is None:
            return None
        api = {s: e for s, e in self.api.items() if s != selector}
        self._save(api)
        self.api = api
        self._event("override.cleared", entry, f"override cleared over the API: {selector} (was {entry.state}: "
                    f"{entry.reason})")
        self.recompute()
        return entry

    def _save(self, api: Mapping[Selector, Override]) -> None:
        if self.state_dir:
            overridefile.save(self.state_dir, list(api.values()))

    # --- time ------------------------------------------------------------------------------------------

    def next_expiry(self) -> float | None:
        """The earliest `until` still ahead, of any entry (when `expire()` should next run)."""
        now = self.clock()
        times = [e.until for e in self.entries() if e.until is not None and e.until > now]
        return min(times) if times else None

    def expire(self) -> None:
        """Apply the passing of time: drop API entries past their `until`, log file entries past theirs
        (once each), and resolve again."""
        now = self.clock()
        self._drop_expired_api(now)
        for entry in self.file_entries:
            if not entry.active(now):
                self._log_expired(entry)
        self.recompute()

    def _drop_expired_api(self, now: float) -> None:
        gone = [e for e in self.api.values() if not e.active(now)]
        if not gone:
            return
        for entry in gone:
            self._log_expired(entry)
        api = {s: e for s, e in self.api.items() if e.active(now)}
        try:
            self._save(api)
        except OSError as exc:
            log.error("cannot rewrite the runtime overrides file in %s: %s", self.state_dir, exc)
        self.api = api

    def _log_expired(self, entry: Override) -> None:
        key = (entry.selector, entry.until, entry.source)
        if key not in self._expired_logged:
            self._expired_logged.add(key)
            self._event("override.expired", entry, f"override {entry.selector} {entry.state} ({entry.where}) "
                        f"expired at {format_time(entry.until)}: it no longer applies ({entry.reason})")

    def _event(self, kind: str, entry: Override, message: str) -> None:
        sel = entry.selector
        address = None
        if sel.network is not None:
            address = str(sel.network.network_address) if sel.network.prefixlen == sel.network.max_prefixlen \
                else str(sel.network)
        self.events.emit(log, kind, message, zone=sel.zone, pool=sel.pool, site=sel.site, address=address,
                         reason=entry.reason)

    # --- the result ------------------------------------------------------------------------------------

    def entries(self) -> list[Override]:
        """Every entry, API ones first, each source in its own order."""
        return list(self.api.values()) + list(self.file_entries)

    def file_entry(self, selector: Selector) -> Override | None:
        """The file's entry of this selector, if any."""
        return next((e for e in self.file_entries if e.selector == selector), None)

    def recompute(self) -> None:
        """Resolve again; `on_change` when the result differs."""
        now = self.clock()
        resolved = resolve(self.entries(), self.zones, now)
        if resolved != dict(self.resolved):
            self.resolved = MappingProxyType(resolved)
            self.on_change(self.resolved)
