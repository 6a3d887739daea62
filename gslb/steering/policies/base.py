"""What every policy reads (`Context`) and returns (`Tier`)."""

from __future__ import annotations

from dataclasses import dataclass

from gslb.config.latency import LatencyTable
from gslb.config.model import Pool, Site
from gslb.config.regions import Regions
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.latency import Estimate
from gslb.steering.location import ClientLocation


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a policy may look at. Policies are pure: no I/O, no clock, no randomness."""

    pool: Pool
    location: ClientLocation
    health: HealthSnapshot
    regions: Regions
    latency: LatencyTable
    prober_region: str | None       # reporting prober region nearest the client (latency source 1)
    net_rule: str | None = None     # the pool's `net:` geo rule holding the client, if any


@dataclass(frozen=True, slots=True)
class Tier:
    """Sites answered together; `why` is the word `gslb explain` prints for this step."""

    sites: tuple[Site, ...]
    why: str
    estimate: Estimate | None = None
