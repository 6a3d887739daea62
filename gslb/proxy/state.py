"""Runtime state of upstream pools and backends: health (active and passive), draining, slow start,
active requests, latency, idle keep-alive connections. Active checks use the shared gslb.health code."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import random
import time
from collections import deque

from gslb.config.model import Check, Target
from gslb.events import EventLog
from gslb.health.checks import make_session, probe
from gslb.health.state import Ewma, RiseFall
from gslb.proxy.balancers import make_balancer
from gslb.proxy.config import Backend, UpstreamPool
from gslb.tasks import cancel_and_wait

log = logging.getLogger("gslb.proxy")
MAX_IDLE = 256
# Edges of gslb_proxy_upstream_seconds (gslb/proxy/metrics.py): a request's time at its backend.
UPSTREAM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BackendState:
    """One backend as the proxy sees it now."""

    def __init__(self, config: Backend, pool: UpstreamPool, events: EventLog | None = None):
        self.config = config
        self.pool = pool
        self.events = events if events is not None else EventLog()
        self.address = config.address
        self.address_bytes = config.address.encode()      # for the access log
        self.drain = config.drain
        self.active = 0
        self.requests = 0
        self.latency = Ewma(alpha=0.3)
        check = pool.check
        self.health = RiseFall(check.rise, check.fall) if check else None
        self.up_since = time.monotonic()
        self.failures = 0                 # consecutive 5xx / connection failures (passive check)
        self.ejected_until = 0.0
        self.ejections = 0
        self.idle: deque = deque()        # idle upstream connections (keep-alive)
        # Counters for /metrics (gslb/proxy/metrics.py), kept by the wire (http.py) as plain integers:
        self.connect_errors = 0           # connections to it that failed (refused, reset, timeout)
        self.retries = 0                  # requests moved off it to another backend after it failed
        self.upstream = [0] * (len(UPSTREAM_BUCKETS) + 1)   # request times at it, per bucket (+Inf last)
        self.upstream_sum = 0.0

    @property
    def healthy(self) -> bool:
        if self.ejected_until and time.monotonic() < self.ejected_until:    # 0.0: never ejected
            return False
        return self.health is None or self.health.state != "down"

    def usable(self) -> bool:
        limit = self.config.max_connections
        return not self.drain and self.config.weight > 0 and (not limit or self.active < limit) and self.healthy

    def effective_weight(self) -> float:
        """The weight, ramped up linearly over `slow_start` seconds after the backend came (back) up."""
        weight = float(self.config.weight)
        ramp = self.pool.slow_start
        if ramp > 0:
            age = time.monotonic() - self.up_since
            if age < ramp:
                weight *= max(0.1, age / ramp)
        return weight

    def passive(self, ok: bool) -> None:
        """Outlier detection: consecutive failures eject the backend; active checks bring it back."""
        if ok:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.pool.outlier.failures:
            self.eject(f"{self.pool.outlier.failures} consecutive failures")

    def eject(self, why: str) -> None:
        """Take the backend out for `outlier.ejection` seconds (with an active check: until `rise` passes).
        A refused connection ejects at once: nothing listens there, the next request would fail too."""
        now = time.monotonic()
        self.failures = 0
        if now < self.ejected_until:
            return                                  # already out (requests that were in flight tell again)
        self.ejected_until = now + self.pool.outlier.ejection
        self.ejections += 1
        self.up_since = self.ejected_until          # back from ejection: slow start again
        if self.health is not None:
            self.health.state = "down"              # must pass `rise` active checks to return
        self.events.emit(log, "backend.ejected", f"backend {self.address} ejected for "
                         f"{self.pool.outlier.ejection:.0f} s: {why}", pool=self.pool.name, address=self.address,
                         reason=why)

    def observe(self, seconds: float) -> None:
        """One request's time at this backend (gslb_proxy_upstream_seconds)."""
        self.upstream[bisect.bisect_left(UPSTREAM_BUCKETS, seconds)] += 1
        self.upstream_sum += seconds

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()


class PoolState:
    """A pool's backends, its balancer and its active health checks."""

    def __init__(self, config: UpstreamPool, previous: PoolState | None = None, events: EventLog | None = None):
        self.config = config
        self.events = events if events is not None else previous.events if previous is not None else EventLog()
        old = {b.address: b for b in previous.backends} if previous else {}
        self.backends = []
        for backend in config.backends:
            state = BackendState(backend, config, self.events)
            kept = old.get(backend.address)
            if kept is not None:        # a reload keeps what was learned about an unchanged backend
                state.health, state.latency, state.idle = kept.health, kept.latency, kept.idle
                state.active, state.up_since, state.ejected_until = kept.active, kept.up_since, kept.ejected_until
                # counters go on across a reload (a Prometheus counter must not go back)
                state.requests, state.ejections, state.connect_errors = kept.requests, kept.ejections, \
                    kept.connect_errors
                state.retries, state.upstream, state.upstream_sum = kept.retries, kept.upstream, kept.upstream_sum
                if previous is not None and kept.drain != kept.config.drain:
                    state.drain = kept.drain  # an admin drain outlives a reload
            self.backends.append(state)
        self.by_address = {b.address: b for b in self.backends}
        self.balancer = make_balancer(config.algorithm, config.hash)
        self.sticky_ids: tuple[str, dict[str, BackendState]] | None = None   # (secret, by ID): core._sticky_ids
        self._tasks: list[asyncio.Task] = []

    def usable(self) -> list[BackendState]:
        return [b for b in self.backends if b.usable()]

    def healthy_count(self) -> int:
        return sum(1 for b in self.backends if b.healthy and not b.drain and b.config.weight > 0)

    def start_checks(self) -> None:
        if self.config.check is None:
            return
        session = make_session()
        self._session = session
        for backend in self.backends:
            self._tasks.append(asyncio.create_task(self._check_loop(backend, session)))

    async def _check_loop(self, backend: BackendState, session) -> None:
        check = self.config.check
        target = Target(backend.config.host, _with_port(check, backend.config.port))
        await asyncio.sleep(random.uniform(0, check.interval))
        while True:
            started = time.monotonic()
            if time.monotonic() >= backend.ejected_until:
                result = await probe(target, session=session)
                before = backend.health.state
                if not result.abstain and backend.health.observe(result.ok):
                    if backend.health.state == "up":
                        backend.up_since = time.monotonic()
                    self._state_event(backend, before, result.error)
            await asyncio.sleep(max(0.0, check.interval - (time.monotonic() - started)))

    def _state_event(self, backend: BackendState, before: str, error: str | None) -> None:
        """The event of an active-check move: down (WARNING), returned (INFO: up after down), else a log line."""
        state = backend.health.state
        text = f"backend {backend.address} {before} -> {state}" + (f" ({error})" if error else "")
        if state == "down":
            self.events.emit(log, "backend.down", text, pool=self.config.name, address=backend.address,
                             reason=error or "checks failing")
        elif before == "down":
            self.events.emit(log, "backend.returned", text, pool=self.config.name, address=backend.address,
                             reason="checks passing")
        else:
            log.info("%s", text)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if getattr(self, "_session", None) is not None:
            await self._session.close()


def _with_port(check: Check, port: int) -> Check:
    """A pool check probes each backend on the backend's own port unless the check names one."""
    return check if check.port is not None else dataclasses.replace(check, port=port)
