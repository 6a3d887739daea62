"""`gslb serve` assembled: zone store + health + steering data -> answer table -> DNS sockets + HTTP API.

Data flows one way. The zone store and the health service publish immutable snapshots; every change
builds a new `AnswerTable` (zones) or hands the table a new health snapshot (health), and the DNS
handler swaps to it in one assignment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gslb.config.latency import load_latency_table
from gslb.config.model import Target, Zone
from gslb.config.overrides import FILE_NAME as OVERRIDES_FILE
from gslb.config.regions import load_regions
from gslb.config.reloader import ZoneParser, yielding_gil
from gslb.config.server import ServerConfig
from gslb.config.store import ZoneStore
from gslb.config.zone import zone_files
from gslb.dns.identity import Identity
from gslb.dns.rrl import RateLimiter
from gslb.dns.server import Handler, parse_listen, start_dns
from gslb.dns.stats import DnsStats, add_rows, handler_counters, stats_enabled
from gslb.dns.table import AnswerTable
from gslb.dns.tcpguard import TcpGuard
from gslb.dns.workerstats import CounterCollector, CounterReporter
from gslb.errors import ConfigError
from gslb.events import EventLog
from gslb.health.feed import HealthFeed, SnapshotSender
from gslb.health.service import HealthService
from gslb.health.snapshot import HealthSnapshot
from gslb.health.webhooks import Notifier
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

log = logging.getLogger("gslb.server")

FIRST_LOAD_SUBPROCESS_BYTES = 1_000_000   # zone files this big are parsed in a subprocess at start-up too


def overrides_path(zones: str) -> str | None:
    """overrides.yaml of the zones directory (None when `zones` is a single file)."""
    return os.path.join(zones, OVERRIDES_FILE) if os.path.isdir(zones) else None


def target_places(zones: Mapping[str, Zone]) -> dict[Target, list[tuple[str, str, str, str]]]:
    """Every probed target -> the (zone, pool, site, address) it stands for: what its events name."""
    places: dict[Target, list[tuple[str, str, str, str]]] = {}
    for zone in zones.values():
        for pool in zone.pools.values():
            for site in pool.sites:
                for endpoint in site.endpoints:
                    target = pool.target_of(endpoint)
                    if target is not None:
                        places.setdefault(target, []).append((zone.origin, pool.name, site.name, endpoint.address))
    return places


def zone_targets(zones: Any) -> list[Target]:
    """Every (address, check) the zones' pools want probed, without repeats."""
    seen: dict[Target, None] = {}
    for zone in zones.values():
        for pool in zone.pools.values():
            for target in pool.targets():
                seen[target] = None
    return list(seen)


class Server:
    """One running gslb DNS server. `start()` binds everything; `stop()` releases it."""

    def __init__(self, config: ServerConfig, *, feed: socket.socket | None = None,
                 workers: list[socket.socket] | None = None):
        """`feed`: this is a DNS worker process, fed health snapshots by the main one (no prober, no API).
        `workers`: this is the main process of `--workers N`, sending snapshots to the others."""
        self.config = config
        self.is_worker = feed is not None
        regions = load_regions(config.regions_path)
        # The embedded prober's RTTs are this node's alone: latency steering uses the shared reports only.
        self.steering = SteeringData(regions, load_latency_table(config.latency_path),
                                     config.health.region if config.health.embedded else None)
        self.locator = Locator(config.geoip_path)
        # State changes (gslb/events.py): logged, kept for GET /v1/events and the dashboard, sent to webhooks.
        self.events = EventLog(node=config.node_id)
        self.notifier = Notifier(config.notify if feed is None else ())
        self.events.subscribe(self.notifier.submit)
        # The automatic serials are remembered next to the health state (gslb/config/serials.py).
        self.store = ZoneStore(config.zones, regions, config.limits, state_dir=config.health.state_dir or None,
                               events=self.events)
        self.parser = ZoneParser(regions, config.limits)   # reloads parse in a subprocess (started on first use)
        self.health_service = HealthFeed(feed, self._on_health) if feed is not None \
            else HealthService(config.health, self._on_health, overrides_path(config.zones), events=self.events)
        self.sender = SnapshotSender(workers) if workers else None
        # Query counters (gslb/dns/stats.py; None with GSLB_DNS_STATS=off); with --workers N each worker
        # sends its counters to the first process over the feed socket (gslb/dns/workerstats.py).
        self.dns_stats = DnsStats() if stats_enabled() else None
        self.counter_reporter = CounterReporter(feed, self.counter_rows) if feed is not None else None
        self.worker_counters = CounterCollector(workers) if workers else None
        self.reloads = {"ok": 0, "failed": 0}     # zone reload attempts by result (gslb_zone_reload_total)
        self.last_reload_success = 0.0            # unix time of the last reload with every file good
        self.reuse_port = feed is not None or bool(workers)
        self.handler: Handler | None = None
        self.dns_addresses: list[tuple[str, int]] = []
        self.tcp_guard = TcpGuard(config.tcp)     # one per process, over every listen address
        self.api_address: tuple[str, int] | None = None
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task] = []
        self._runner: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self.worker_pids: tuple[int, ...] = ()    # `--workers N`: the DNS processes to tell about a reload

    @property
    def health(self) -> HealthSnapshot:
        return self.health_service.snapshot

    @property
    def served_zones(self) -> Mapping[str, Zone]:
        """The zones queries are answered from now: during a reload the store already holds the new
        ones while their answer table is being built, and the API must not report them early."""
        return self.handler.table.zones if self.handler is not None else {}

    def _table_args(self) -> tuple:
        return (self.store.zones, self.health, self.steering, self.locator,
                Identity(self.config.node_id, self.config.version), self.dns_stats)

    def _build_table(self) -> AnswerTable:
        return AnswerTable(*self._table_args())

    async def _build_table_async(self) -> AnswerTable:
        return await AnswerTable.build_async(*self._table_args())

    def _rate_limiter(self) -> RateLimiter | None:
        """The UDP response rate limiter of the `rrl:` config, or None when it is off."""
        return RateLimiter(self.config.rrl) if self.config.rrl.enabled else None

    def _on_health(self, snapshot: HealthSnapshot) -> None:
        if self.handler is not None:
            self.handler.table.set_health(snapshot)
        if self.sender is not None:
            self.sender.publish(snapshot)

    def _load(self, force: bool, parse: Any = None) -> bool:
        try:
            changed = self.store.load(force=force, parse=parse)
        except Exception as exc:  # noqa: BLE001 -- a reload must never take the server down
            log.error("reload failed: %s", exc)
            self.reloads["failed"] += 1
            return False
        if all(status.ok for status in self.store.status.values()):
            self.reloads["ok"] += 1
            self.last_reload_success = time.time()
        else:
            self.reloads["failed"] += 1
        return changed

    def counter_rows(self) -> dict[str, list[list]]:
        """This process's DNS counters as rows (gslb/dns/stats.py)."""
        rows = self.dns_stats.counters() if self.dns_stats is not None else {}
        if self.handler is not None:
            rows.update(handler_counters(self.handler, self.tcp_guard))
        return rows

    def dns_totals(self) -> dict[str, dict[tuple, float]]:
        """The DNS counters of every process of this server: this one's plus each worker's latest."""
        total: dict[str, dict[tuple, float]] = {}
        add_rows(total, self.counter_rows())
        if self.worker_counters is not None:
            for rows in list(self.worker_counters.counters.latest.values()):
                add_rows(total, rows)
        return total

    def reload(self, force: bool = False) -> bool:
        """Reload changed zone files and swap in a new answer table (at start-up, when nothing is being
        answered yet); a broken file keeps its last good zone. Zone files of FIRST_LOAD_SUBPROCESS_BYTES
        or more in all are parsed in the parser subprocess: the YAML tree (for a 100,000-name zone about
        80 MB at its peak, and memory this process would keep in fragments) never exists here."""
        first = ZoneParser(self.parser.regions, self.parser.limits, nice=0) \
            if self._zone_bytes() >= FIRST_LOAD_SUBPROCESS_BYTES else None
        try:
            changed = self._load(force, first.load if first is not None else None)
        finally:
            if first is not None:
                first.close()         # a one-off: its worker would sit on the memory of the parse
        if changed:
            self._swap_table()
        return changed

    def _zone_bytes(self) -> int:
        """The size of the zone files, in all."""
        total = 0
        with contextlib.suppress(ConfigError):
            for path in zone_files(self.config.zones) if os.path.isdir(self.config.zones) else [self.config.zones]:
                with contextlib.suppress(OSError):
                    total += os.stat(path).st_size
        return total

    async def reload_async(self, force: bool = False) -> bool:
        """`reload` while serving: each file is parsed in the parser subprocess (the answering process's
        GIL stays free) and unpickled on the loop in slices (gslb/config/reloader.py); the answer table
        is built on the loop in steps between queries (AnswerTable.build_async), then swapped in."""
        async with self._reload_lock:
            started = time.monotonic()
            self.parser.loop = asyncio.get_running_loop()
            with yielding_gil():
                changed = await asyncio.get_running_loop().run_in_executor(
                    None, self._load, force, self.parser.load)
            if not changed:
                return False
            table = await self._build_table_async()
            self._swap_table(table)
            log.info("zones reloaded in %.2f s", time.monotonic() - started)
            return True

    def signal_workers_reload(self) -> None:
        """Make every DNS worker process reload its zones too (what SIGHUP to the main process does)."""
        for pid in self.worker_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def _swap_table(self, table: AnswerTable | None = None) -> None:
        """Make `table` (default: one built now for the current zones) the one queries use."""
        table = self._build_table() if table is None else table
        if table.health is not self.health:     # health moved on while the table was being built
            table.set_health(self.health)
        if self.handler is None:
            self.handler = Handler(table, self.config.query_log, self._rate_limiter(), self.config.query_log_sample)
        else:
            self.handler.table = table
        monitor = getattr(self.health_service, "monitor", None)
        if monitor is not None:
            monitor.places = target_places(self.store.zones)
        self.health_service.set_targets(zone_targets(self.store.zones))
        self.health_service.set_zones(self.store.zones)
        log.info("serving %d zones: %s", len(self.store.zones), ", ".join(sorted(self.store.zones)) or "none")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            # The store is only read here between reloads: a reload in a worker thread changes it.
            try:
                # The overrides file is small: read on the loop, it applies at once.
                self.health_service.reload_overrides()
                if not self._reload_lock.locked() and self.store.changed():
                    await self.reload_async()
            except Exception:
                log.exception("reload failed; the last good answers keep serving, edits are still watched")

    async def start(self) -> None:
        """Load zones, bind DNS (UDP+TCP on every listen address) and the API, start probers and watchers."""
        self.reload(force=True)
        if self.handler is None:
            self.handler = Handler(self._build_table(), self.config.query_log, self._rate_limiter(),
                                   self.config.query_log_sample)
        for text in self.config.listen:
            host, port = parse_listen(text)
            udp, tcp = await start_dns(self.handler, host, port, self.reuse_port, self.tcp_guard)
            self._closers += [udp, tcp]
            bound = udp.get_extra_info("sockname")
            self.dns_addresses.append((host, bound[1]))
            log.info("DNS on %s port %d (udp, tcp)", host, bound[1])
        log.info("%s", self.tcp_guard.describe())
        await self.notifier.start()
        await self.health_service.start()
        if self.sender is not None:
            self._tasks.append(asyncio.create_task(self.sender.run()))
            self.sender.publish(self.health)
        if self.worker_counters is not None:
            self.worker_counters.start()
        if self.counter_reporter is not None:
            self.counter_reporter.start()
        if self.config.api and not self.is_worker:
            await self._start_api()
        self._tasks.append(asyncio.create_task(self._watch()))
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        except (NotImplementedError, RuntimeError):
            pass

    def _on_hup(self) -> None:
        """SIGHUP: read the overrides file and every zone file again."""
        try:
            self.health_service.reload_overrides(force=True)
        except Exception:
            log.exception("reading the overrides file failed; the last good overrides stay in force")
        asyncio.ensure_future(self.reload_async(force=True))

    async def _start_api(self) -> None:
        from gslb.api.app import make_api_app
        host, port = parse_listen(self.config.api, default_port=8053)
        # auto_decompress=False: a gzipped prober report is checked (signature) before it is inflated,
        # and inflated off the loop with a bound (gslb/api/health.py), never by the HTTP parser.
        self._runner = web.AppRunner(make_api_app(self), access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()
        self.api_address = (host, bound[1])
        log.info("HTTP API on http://%s:%d", host if ":" not in host else f"[{host}]", bound[1])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for closer in self._closers:
            closer.close()
        if self.counter_reporter is not None:
            await self.counter_reporter.stop()
        if self.worker_counters is not None:
            await self.worker_counters.stop()
        await self.health_service.stop()
        await self.notifier.stop()
        self.parser.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.locator.close()
