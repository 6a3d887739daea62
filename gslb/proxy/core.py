"""The proxy's policy: routes, backend choice (balancers, sticky cookies, canary splits), rate limits,
retry budget, metrics, the access log. The wire lives in http.py and sees this side only through
policy.Policy (begin, retry, finish); the admin API lives in admin.py."""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections import defaultdict
from typing import Any

from gslb.events import EventLog
from gslb.proxy import sticky
from gslb.proxy.accesslog import AccessLog
from gslb.proxy.config import AccessLogConfig, ProxyConfig, Route
from gslb.proxy.policy import Pick, Refusal
from gslb.proxy.request import Request
from gslb.proxy.shared import WorkerShare
from gslb.proxy.state import BackendState, PoolState

log = logging.getLogger("gslb.proxy")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: int):
        self.tokens, self.stamp = float(burst), time.monotonic()


class RetryBudget:
    """Retries may add at most 20 % to the request rate (plus 3 per second), like Envoy's budgets."""

    def __init__(self, ratio: float = 0.2, floor: float = 3.0):
        self.ratio, self.floor = ratio, floor
        self.tokens = floor
        self.stamp = time.monotonic()

    def request(self) -> None:
        self.tokens = min(self.tokens + self.ratio, 100.0)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.tokens + (now - self.stamp) * self.floor, 100.0)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def host_matches(pattern: str, host: str) -> bool:
    """Exact host, or `*.example.com` for any name below example.com; the port is ignored."""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def open_access_log(config: AccessLogConfig | None) -> AccessLog | None:
    """The access log a config asks for (None: off); OSError when its file cannot be opened."""
    return None if config is None else AccessLog(config.path, config.buffer, config.flush)


class Proxy:
    """One proxy configuration, live. `reload(config)` swaps routes and pools for new requests only.
    Implements policy.Policy for the wire (http.py)."""

    def __init__(self, config: ProxyConfig, events: EventLog | None = None):
        self.config = config
        self.events = events if events is not None else EventLog()   # backend state changes (gslb/events.py)
        self.limits, self.timeouts = config.limits, config.timeouts
        self.pools = {name: PoolState(p, events=self.events) for name, p in config.pools.items()}
        self.connections: set[Any] = set()       # http.ClientConnection
        self.inflight: set[Any] = set()          # http.Exchange
        self.stopping = False
        self.access_log = open_access_log(config.access_log)
        self.retry_budget = RetryBudget()
        self.buckets: dict[str, TokenBucket] = {}
        self.requests: dict[tuple[str, str, str, int], int] = defaultdict(int)   # route, pool, backend, status
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.share: WorkerShare | None = None      # set when one of several --workers

    # -- lifecycle --------------------------------------------------------------------------------
    async def sweep(self) -> None:
        """Timeouts without a timer per request: read/total deadlines every 0.1 s, idle clients every 1 s."""
        tick = 0
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for exchange in list(self.inflight):
                exchange.check_deadlines(now)
            if self.access_log is not None:
                self.access_log.tick(now)
            tick += 1
            if self.share is not None:
                if tick % 2 == 0:
                    drains = self.share.drains_if_changed()
                    if drains:
                        self.apply_drains(drains)
                if tick % 10 == 0:
                    self.share.publish_stats(self)
            if tick % 10 == 0:
                idle = self.config.timeouts.idle
                for conn in list(self.connections):
                    if conn.idle_for(now) > idle and conn.transport is not None:
                        conn.transport.close()

    def apply_drains(self, drains: dict[str, bool]) -> None:
        """Admin drains made in another worker (see shared.py)."""
        for pool in self.pools.values():
            for backend in pool.backends:
                if backend.address in drains:
                    backend.drain = drains[backend.address]

    def start_checks(self) -> None:
        for pool in self.pools.values():
            pool.start_checks()

    async def stop_checks(self) -> None:
        for pool in self.pools.values():
            await pool.stop()

    async def reload(self, config: ProxyConfig) -> None:
        """New routes and pools for new requests; requests in flight finish on what they started with."""
        old = self.pools
        self.pools = {name: PoolState(p, old.get(name), self.events) for name, p in config.pools.items()}
        self.config = config
        self.limits, self.timeouts = config.limits, config.timeouts
        self.reopen_access_log(config.access_log)
        if self.share is not None:
            self.apply_drains(self.share.drains())
        for pool in old.values():
            await pool.stop()
        for name, pool in old.items():
            if name not in self.pools:
                for backend in pool.backends:
                    backend.close_idle()
        self.start_checks()

    def reopen_access_log(self, config: AccessLogConfig | None) -> None:
        """Flush and reopen the access log (a reload: logrotate moved the file, or the settings changed)."""
        old = self.access_log
        try:
            self.access_log = open_access_log(config)
        except OSError as exc:
            log.error("access log %s cannot be opened: %s; keeping the previous one", config.path, exc)
            if old is not None:
                old.reopen()
            return
        if old is not None:
            old.close()

    def close_access_log(self) -> None:
        """Write every line still buffered (shutdown)."""
        if self.access_log is not None:
            self.access_log.close()
            self.access_log = None

    # -- per request ------------------------------------------------------------------------------
    def route(self, req: Request) -> Route | None:
        for route in self.config.routes:
            if route.default:
                return route
            if route.host is not None and not host_matches(route.host, req.host):
                continue
            if not req.path.startswith(route.path):
                continue
            if route.header is not None and req.header(route.header[0]) != route.header[1]:
                continue
            return route
        return None

    def _rate_limited(self, client: str) -> bool:
        limit = self.config.rate_limit
        if limit is None:
            return False
        bucket = self.buckets.get(client)
        now = time.monotonic()
        if bucket is None:
            if len(self.buckets) > 100_000:
                self.buckets.clear()
            bucket = self.buckets[client] = TokenBucket(limit.burst)
        bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.stamp) * limit.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return True
        bucket.tokens -= 1
        return False

    def pick(self, pool: PoolState, req: Request, exclude: list[BackendState] | None = None) -> BackendState | None:
        usable = pool.usable()
        if exclude:
            usable = [b for b in usable if b not in exclude]
        if not usable and pool.config.fail_open:
            usable = [b for b in pool.backends if not b.drain and b.config.weight > 0 and not (exclude and b in exclude)]
        return pool.balancer.pick(usable, req)

    def _sticky(self, pool: PoolState, req: Request, secure: bool) -> tuple[BackendState | None, bytes]:
        """The pinned backend if the cookie is valid and it is usable; else a new pick and a new cookie."""
        value = req.cookie(pool.config.sticky.cookie)
        if value:
            ident = sticky.verify(self.config.sticky_secret, value)
            backend = self._sticky_ids(pool).get(ident) if ident else None
            if backend is not None and backend.usable():
                return backend, b""
        backend = self.pick(pool, req)
        if backend is None:
            return None, b""
        return backend, self.sticky_cookie(pool, backend, secure)

    def _sticky_ids(self, pool: PoolState) -> dict[str, BackendState]:
        """Backend by its cookie ID; made once per pool state and secret (a reload makes new pool states)."""
        secret = self.config.sticky_secret
        if pool.sticky_ids is None or pool.sticky_ids[0] != secret:
            pool.sticky_ids = (secret, {sticky.backend_id(secret, b.address): b for b in pool.backends})
        return pool.sticky_ids[1]

    def sticky_cookie(self, pool: PoolState, backend: BackendState, secure: bool) -> bytes:
        """The Set-Cookie header line (without its CRLF) pinning this pool's clients to `backend` (opaque,
        signed)."""
        config = pool.config.sticky
        secret = self.config.sticky_secret
        value = sticky.sign(secret, sticky.backend_id(secret, backend.address), config.ttl)
        return (f"Set-Cookie: {config.cookie}={value}; Max-Age={config.ttl}; Path=/; HttpOnly; SameSite=Lax"
                f"{'; Secure' if secure else ''}").encode()

    def begin(self, req: Request) -> Pick | Refusal:
        """Route a request whose head has arrived and pick its backend, or answer it from the proxy."""
        if self.config.rate_limit is not None and self._rate_limited(req.client):
            return Refusal(429, "too many requests", extra=b"Retry-After: 1\r\n")
        route = self.route(req)
        if route is None:
            return Refusal(404, "no route for this request")
        name = route.pools[0][0] if len(route.pools) == 1 else \
            random.choices([n for n, _ in route.pools], weights=[w for _, w in route.pools])[0]
        req.route, req.pool = route.name, name
        pool = self.pools[name]
        self.retry_budget.request()
        if pool.config.sticky is not None:
            backend, cookie = self._sticky(pool, req, req.secure)
        else:
            backend, cookie = self.pick(pool, req), b""
        if backend is None:
            return Refusal(503, f"no healthy backend in pool {name}", close=not req.keep_alive)
        return Pick(pool, backend, cookie)

    def retry(self, req: Request, pick: Pick, tried: list[BackendState], retried: int | None) -> Pick | None:
        """Another backend of the pool for a request whose backend failed (see policy.Policy.retry):
        budgeted retries stop at `retries` and at the retry budget; a sticky client is re-pinned."""
        if retried is not None and (retried >= self.config.retries or not self.retry_budget.take()):
            return None
        pool = pick.pool
        other = self.pick(pool, req, exclude=tried)
        if other is None:
            return None
        cookie = self.sticky_cookie(pool, other, req.secure) if pool.config.sticky is not None else b""
        return Pick(pool, other, cookie)

    def finish(self, req: Request, backend: BackendState | None, status: int, elapsed: float | None) -> None:
        """Count an answered request in the metrics and write its access-log line."""
        elapsed = time.monotonic() - req.started if elapsed is None else elapsed
        address = backend.address if backend is not None else "-"
        pool = req.pool
        self.requests[(req.route, pool, address, status)] += 1
        self.latency[pool][bisect.bisect_left(BUCKETS, elapsed)] += 1
        self.latency_sum[pool] += elapsed
        access_log = self.access_log
        if access_log is not None:
            # AccessLog.write inlined: this runs for every request
            line = b'%s %s "%s %s%s" %d %s %.1fms\n' % (
                access_log.now, req.client_bytes, req.method, req.host_bytes, req.url, status,
                backend.address_bytes if backend is not None else b"-", elapsed * 1000)
            access_log.lines.append(line)
            access_log.size += len(line)
            if access_log.size >= access_log.limit:
                access_log.flush()
