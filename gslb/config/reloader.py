"""Zone files parsed in a separate process, so that a big reload does not hold the answering process's GIL.

Parsing and validating YAML is pure Python work: in a thread of the serving process it competes with the
event loop for the GIL, and a 100,000-name reload made answers wait for seconds. `ZoneParser` hands each
file to one worker process (started on first use with the 'forkserver' method, so the server's threads
and sockets are not forked) and takes the frozen `Zone` back pickled: unpickling it costs a tenth of the
parse, with the garbage collector paused while it runs.

The worker's address space is capped (`limits: reload_memory_mb`): a file that needs more fails in the
worker with MemoryError, not in the server. A worker that dies is replaced on the next file; after a big
file, or running out of memory, the worker is retired so that the memory it took goes back to the system.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from types import MappingProxyType

from gslb.config.model import Zone, ZoneLimits
from gslb.config.regions import Regions
from gslb.config.yamlsrc import short
from gslb.config.zone import load_zone_file
from gslb.errors import ConfigError, Problem

log = logging.getLogger("gslb.zones")

RELOAD_SWITCH_INTERVAL = 0.0002  # seconds a reloading thread may hold the GIL while DNS waits for it
RETIRE_BYTES = 8_000_000        # a file at least this big gets a fresh worker afterwards
RELOAD_NICE = 10                # niceness of the reload parser: DNS answers first when the cores are busy
FREEZE_NAMES = 10_000           # a zone this big is kept out of the garbage collector's walks
SLICE_NAMES = 100               # names unpickled between two turns of the event loop (~0.2 ms)


@contextlib.contextmanager
def yielding_gil(interval: float = RELOAD_SWITCH_INTERVAL):
    """While a reload unpickles and builds the answer table in a thread, hand the GIL to the answering
    thread after `interval` instead of the default 5 ms: a query arriving meanwhile waits about that
    long, not up to 5 ms (the p99 of answers during a 100,000-name reload was 25x the idle one)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, interval))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


class ZoneParser:
    """Loads zone files in a worker process; `load(path)` blocks (call it from a thread) and returns a
    `Zone` or raises `ConfigError`, like `load_zone_file`."""

    def __init__(self, regions: Regions, limits: ZoneLimits, nice: int = RELOAD_NICE):
        """`nice`: added to the worker's niceness, so that on a busy machine the answering process gets
        the CPU before a reload's parse does (0 at start-up, when there is nothing to answer yet)."""
        self.regions = regions
        self.limits = limits
        self.nice = nice
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.busy = threading.Event()    # set while a file is being parsed (for the API and tests)

    loop: asyncio.AbstractEventLoop | None = None   # where a zone is unpickled when `load` runs in a thread

    def _get(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                methods = multiprocessing.get_all_start_methods()
                context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
                if context.get_start_method() == "forkserver":
                    # The fork server imports the parser once; each worker then starts in milliseconds.
                    context.set_forkserver_preload(["gslb.config.reloader"])
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=_init_worker,
                    initargs=(self.regions, self.limits, self.nice))
            return self._executor

    @property
    def pid(self) -> int | None:
        """The worker process's id, when one runs."""
        executor = self._executor
        processes = list(getattr(executor, "_processes", None) or {}) if executor is not None else []
        return processes[0] if processes else None

    def retire(self) -> None:
        """Stop the worker (even in the middle of a file); the next `load` starts a new one."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        # A parse can take minutes: end the worker rather than wait for it.
        for process in list(getattr(executor, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)

    close = retire

    def load(self, path: str) -> Zone:
        """Parse and validate one zone file in the worker process.

        :raises ConfigError: when the file is invalid, over a limit, or the worker failed on it.
        """
        self.busy.set()
        try:
            try:
                kind, payload = self._get().submit(_parse, path).result()
            except BrokenProcessPool:
                self.retire()
                raise ConfigError([Problem(path, 1, "the process parsing zone files died on this file "
                                                    "(killed, or out of memory: see limits: reload_memory_mb "
                                                    "in the server config)")]) from None
            if kind == "zone":
                if _size(path) >= RETIRE_BYTES:
                    self.retire()
                loop = self.loop
                if loop is not None and loop.is_running() and not _on_a_loop():
                    # On the loop, a slice at a time between queries (no GIL contest with this thread).
                    return asyncio.run_coroutine_threadsafe(_unpickle_async(*payload), loop).result()
                return _last(_unpickle(*payload))
            if kind == "memory":
                self.retire()
                raise ConfigError([Problem(path, 1, f"parsing this file needs more than {self.limits.reload_memory_mb} "
                                                    "MiB of memory (limits: reload_memory_mb in the server config)")])
            raise ConfigError([Problem(*p) for p in payload])
        finally:
            self.busy.clear()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _unpickle(head: bytes, slices: list[bytes]) -> Iterator[Zone | None]:
    """The zone of `_pickle`'s parts: None after each slice, then the zone."""
    # Unpickling makes millions of objects; with the collector on, it scans them again and again
    # (10x slower) while holding the GIL the answering thread needs.
    enabled = gc.isenabled()
    gc.disable()
    try:
        zone = pickle.loads(head)
        rrsets: dict = {}
        pool_names: dict = {}
        nodes = set(zone.nodes)
        for part in slices:
            rr, pn = pickle.loads(part)
            rrsets.update(rr)
            pool_names.update(pn)
            nodes.update(rr)
            nodes.update(pn)
            yield None
        zone = dataclasses.replace(zone, rrsets=MappingProxyType(rrsets), pool_names=MappingProxyType(pool_names),
                                   nodes=frozenset(nodes))
        if len(rrsets) + len(pool_names) >= FREEZE_NAMES:
            # Without this, the next full collection (due after so many new objects) walks every object
            # of the zone in one go, holding the GIL: 0.6 s for 100,000 names, and DNS waits. Frozen
            # objects are never walked; a zone has no reference cycles, so when it is replaced it is
            # freed all the same. (Cyclic garbage alive at this moment stays: big reloads are rare.)
            gc.freeze()
        yield zone
    finally:
        if enabled:
            gc.enable()


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _last(steps: Iterator[Zone | None]) -> Zone:
    zone = None
    for zone in steps:
        pass
    return zone  # type: ignore[return-value]


async def _unpickle_async(head: bytes, slices: list[bytes]) -> Zone:
    zone = None
    for zone in _unpickle(head, slices):
        if zone is None:
            await asyncio.sleep(0)
    return zone  # type: ignore[return-value]


def _pickle(zone: Zone) -> tuple[bytes, list[bytes]]:
    """A zone as a head (the zone without its names) and slices of SLICE_NAMES names each: unpickled a
    slice at a time, between queries, by the answering process (one pickle of a 100,000-name zone took
    0.2 s to load in one go, a GIL hold DNS waits for)."""
    rrsets, pool_names = zone.rrsets, zone.pool_names
    head = dataclasses.replace(zone, rrsets={}, pool_names={},
                               nodes=frozenset(n for n in zone.nodes if n not in rrsets and n not in pool_names))
    slices = []
    names = list(rrsets.items())
    for i in range(0, len(names), SLICE_NAMES):
        slices.append(pickle.dumps((dict(names[i:i + SLICE_NAMES]), {}), protocol=pickle.HIGHEST_PROTOCOL))
    names = list(pool_names.items())
    for i in range(0, len(names), SLICE_NAMES):
        slices.append(pickle.dumps(({}, dict(names[i:i + SLICE_NAMES])), protocol=pickle.HIGHEST_PROTOCOL))
    return pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL), slices


# --- in the worker process ---

_regions: Regions | None = None
_limits: ZoneLimits = ZoneLimits()


def _init_worker(regions: Regions, limits: ZoneLimits, nice: int = 0) -> None:
    global _regions, _limits
    _regions, _limits = regions, limits
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    if limits.reload_memory_mb:
        import resource
        want = limits.reload_memory_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def _parse(path: str) -> tuple[str, object]:
    """("zone", pickled Zone) | ("problems", [(file, line, what)]) | ("memory", None)."""
    # The parse builds millions of objects and frees them at the end: the collector only slows it down.
    gc.disable()
    try:
        zone = load_zone_file(path, _regions or Regions.empty(), _limits)
        return "zone", _pickle(zone)
    except ConfigError as exc:
        return "problems", [(p.file, p.line, p.what) for p in exc.problems]
    except MemoryError:
        return "memory", None
    except Exception as exc:  # noqa: BLE001 -- a bug on one file must read as a problem of that file
        return "problems", [(path, 1, f"cannot load: {type(exc).__name__}: {short(str(exc), 200)}")]
    finally:
        gc.enable()
