"""Load-balancing algorithms behind one interface: `balancer.pick(backends, request) -> BackendState | None`.

`backends` are the usable ones (healthy, not drained, not ejected, under their connection limit);
`request` gives what some algorithms key on (client address, headers, cookies).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import Any, Protocol

from gslb.config.registry import ALGORITHMS


class BackendState(Protocol):
    """What balancers read of a backend (state.BackendState; a Protocol, so this module imports no state)."""

    address: str
    active: int
    config: Any          # .weight
    latency: Any         # .value: EWMA milliseconds, or None

    def effective_weight(self) -> float: ...


class RequestInfo(Protocol):
    client: str

    def header(self, name: str) -> str | None: ...

    def cookie(self, name: str) -> str | None: ...


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@ALGORITHMS.implements("round_robin")
class RoundRobin:
    """Each backend in turn."""

    def __init__(self) -> None:
        self.n = 0

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        self.n += 1
        return backends[self.n % len(backends)]


@ALGORITHMS.implements("weighted_round_robin")
class WeightedRoundRobin:
    """nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a, never a burst of one backend."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        total, best = 0.0, None
        for b in backends:
            w = b.effective_weight()
            self.current[b.address] = self.current.get(b.address, 0.0) + w
            total += w
            if best is None or self.current[b.address] > self.current[best.address]:
                best = b
        self.current[best.address] -= total
        return best


@ALGORITHMS.implements("least_connections")
class LeastConnections:
    """Fewest active requests relative to weight; ties broken at random."""

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        return min(backends, key=lambda b: ((b.active + 1) / max(b.effective_weight(), 1e-9), random.random()))


@ALGORITHMS.implements("random")
class Random:
    """A weighted random choice."""

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        return random.choices(backends, weights=[b.effective_weight() for b in backends])[0]


@ALGORITHMS.implements("power_of_two")
class PowerOfTwo:
    """Two random backends, the one with fewer outstanding requests wins."""

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if len(backends) < 2:
            return backends[0] if backends else None
        a, b = random.sample(list(backends), 2)
        return a if a.active <= b.active else b


@ALGORITHMS.implements("ewma")
class Ewma:
    """Lowest smoothed latency x (outstanding requests + 1): peak-EWMA, as Finagle and Linkerd do it."""

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        return min(backends, key=lambda b: ((b.latency.value or 0.0) + 0.001) * (b.active + 1) / max(b.effective_weight(), 1e-9))


@ALGORITHMS.implements("ip_hash")
class IpHash:
    """The client address picks the backend: same client, same backend (while the set does not change)."""

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        return backends[_hash(request.client) % len(backends)]


@ALGORITHMS.implements("consistent_hash")
class ConsistentHash:
    """A hash ring with 100 points per unit of weight: adding or removing one of N backends moves only
    about 1/N of the keys. The key is the client address, a header or a cookie (`hash:`)."""

    POINTS = 100

    def __init__(self, key: str = "ip") -> None:
        self.key = key
        self._ring: tuple[tuple[int, ...], tuple[str, ...]] | None = None
        self._members: tuple = ()

    def _key(self, request: RequestInfo) -> str:
        if self.key.startswith("header:"):
            return request.header(self.key[7:]) or request.client
        if self.key.startswith("cookie:"):
            return request.cookie(self.key[7:]) or request.client
        return request.client

    def pick(self, backends: Sequence[BackendState], request: RequestInfo) -> BackendState | None:
        if not backends:
            return None
        members = tuple((b.address, b.config.weight) for b in backends)
        if members != self._members:
            points = sorted((_hash(f"{address}#{i}"), address) for address, weight in members
                            for i in range(self.POINTS * max(weight, 1)))
            self._ring = (tuple(p for p, _ in points), tuple(a for _, a in points))
            self._members = members
        hashes, owners = self._ring
        index = bisect.bisect(hashes, _hash(self._key(request))) % len(hashes)
        by_address = {b.address: b for b in backends}
        return by_address[owners[index]]


ALGORITHMS.complete()


def make_balancer(algorithm: str, hash_key: str = "ip"):
    """A new balancer for a pool's `algorithm` (a name of gslb/config/registry.py; the proxy config refused
    any other, so an unknown one raises LookupError rather than quietly hashing)."""
    factory = ALGORITHMS[algorithm]
    return factory(hash_key) if factory is ConsistentHash else factory()
