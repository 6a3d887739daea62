"""The health snapshot: an immutable view of what the probers believe, read by steering.

The health room (probers, rise/fall, quorum, overrides) publishes a new `HealthSnapshot` whenever
anything changes; steering and the DNS answer cache only ever read snapshots, so a decision never sees
half an update. An empty snapshot (nothing probed yet) has every endpoint `unknown`, which answers count as up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gslb.config.model import Target
from gslb.config.overrides import Override

HealthState = Literal["unknown", "up", "down"]
_EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RegionView:
    """What the prober of one region last concluded about one target."""

    state: HealthState
    rtt_ms: float | None = None      # EWMA of the check's round-trip time, from that region
    error: str | None = None         # last failure, e.g. "GET http://192.0.2.5:80/healthz: 503, expected 200"
    updated: float = 0.0             # unix time of the last report
    # Set while the last check could not be made for a reason of the prober's own (no file descriptors,
    # no source address, its loop overloaded): it did not count toward rise or fall, `state` holds.
    prober_error: str | None = None


@dataclass(frozen=True, slots=True)
class ProberStatus:
    """How well the prober itself is doing, sent along with its views."""

    errors_total: int = 0               # prober errors since start
    last_error: str | None = None       # the latest one, e.g. "tcp connect ...: too many open files"
    last_error_at: float = 0.0          # unix time
    blind: str | None = None            # set while every recent check was a prober error: why


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """The combined (quorum) state of one target, plus each region's view of it."""

    state: HealthState = "unknown"
    since: float = 0.0
    reason: str = ""
    regions: Mapping[str, RegionView] = field(default_factory=lambda: _EMPTY)

    def rtt_from(self, region: str) -> float | None:
        view = self.regions.get(region)
        return view.rtt_ms if view is not None else None


_UNKNOWN = EndpointHealth()


@dataclass(frozen=True, slots=True)
class ProxyPoolView:
    """What a regional proxy last reported of one of its pools (gslb/health/proxyreport.py). Only fresh
    reports are in a snapshot: a silent proxy's pools drop out and the probers alone decide again."""

    healthy: int                     # backends healthy (not drained, weight > 0)
    total: int                       # backends configured
    healthy_weight: int              # summed weight of the healthy ones
    total_weight: int                # summed weight of all of them
    updated: float = field(default=0.0, compare=False)   # unix time the report was signed

    @property
    def fraction(self) -> float:
        """The healthy share of the pool's backend weight (of its backends, when every weight is 0)."""
        if self.total_weight > 0:
            return self.healthy_weight / self.total_weight
        return self.healthy / self.total if self.total else 0.0

    def describe(self) -> str:
        return (f"{self.healthy} of {self.total} backends healthy, weight {self.healthy_weight}/"
                f"{self.total_weight}")


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Every target's health and the operator's overrides in force: (zone origin, pool, site, address) ->
    the entry that decides that endpoint (gslb/health/overrides.py resolves the precedence)."""

    targets: Mapping[Target, EndpointHealth] = field(default_factory=lambda: _EMPTY)
    overrides: Mapping[tuple[str, str, str, str], Override] = field(default_factory=lambda: _EMPTY)
    version: int = 0
    proxies: Mapping[str, ProxyPoolView] = field(default_factory=lambda: _EMPTY)   # "PROXY/POOL" -> fresh view

    def forced(self, zone: str, pool: str, site: str, address: str) -> Override | None:
        """The override deciding this endpoint of `pool`/`site` in `zone`, if any."""
        return self.overrides.get((zone, pool, site, address)) if self.overrides else None

    def proxy(self, key: str | None) -> ProxyPoolView | None:
        """The fresh report of a proxy pool ("PROXY/POOL"), or None (not reported, or its proxy went silent)."""
        return self.proxies.get(key) if key is not None and self.proxies else None

    def of(self, target: Target) -> EndpointHealth:
        """Health of a target; `unknown` if it was never probed."""
        return self.targets.get(target, _UNKNOWN)

    def regions(self) -> frozenset[str]:
        """The prober regions that reported anything in this snapshot."""
        return frozenset(r for h in self.targets.values() for r in h.regions)

