"""Latency estimates between a client and a site, from the best source available.

In order: (1) `probe`: live RTT measured by the probers of the region nearest the client, (2) `table`:
the operator's latency table (data/latency.yaml), (3) `distance`: great-circle distance turned into
milliseconds (table: gslb/config/latency.py). `gslb explain` prints the source word next to each estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from gslb.config.latency import LatencyTable
from gslb.config.model import Pool, Site
from gslb.config.regions import Regions
from gslb.health.rttstep import rtt_step
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.location import ClientLocation, great_circle_km

# Light in fibre covers about 200 km per ms; a round trip is twice the path, and real paths run about
# 1.5 times the great-circle distance. So 1 ms of RTT per ~67 km, plus a few ms of last-mile time.
KM_PER_RTT_MS = 200 / 2 / 1.5
BASE_RTT_MS = 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    ms: float | None          # None: nothing is known (unknown client location, no coordinates)
    source: str               # "probe" | "table" | "distance" | "none"
    detail: str = ""


def nearest_prober_region(location: ClientLocation, health: HealthSnapshot, regions: Regions,
                          local_region: str | None = None) -> str | None:
    """The reporting prober region closest to the client (regions must be in regions.yaml), leaving out
    this server's embedded prober (`local_region`): what it measures no other server sees."""
    if location.lat is None or location.lon is None:
        return None
    best, best_km = None, float("inf")
    for name in sorted(health.regions()):
        region = regions.get(name)
        if region is None or name == local_region:
            continue
        km = great_circle_km(location.lat, location.lon, region.lat, region.lon)
        if km < best_km:
            best, best_km = name, km
    return best


def estimate(site: Site, pool: Pool, location: ClientLocation, health: HealthSnapshot,
             table: LatencyTable, prober_region: str | None) -> Estimate:
    """The expected RTT from this client to this site, from the best source that knows it."""
    if prober_region is not None and pool.check is not None:
        rtts = [r for e in site.endpoints
                if (r := health.of(pool.target_of(e)).rtt_from(prober_region)) is not None]  # type: ignore[arg-type]
        if rtts:
            # Counted in steps (gslb/health/rttstep.py): every server holds the same step for a report.
            return Estimate(rtt_step(min(rtts)), "probe",
                            f"{min(rtts):.2f} ms measured from {prober_region}, counted in its step")
    row = table.lookup((location.subdivision, location.country, location.continent), site.region)
    if row is not None:
        return Estimate(row[0], "table", f"{row[1]} -> {site.region}")
    if location.lat is not None and location.lon is not None and site.lat is not None and site.lon is not None:
        km = great_circle_km(location.lat, location.lon, site.lat, site.lon)
        return Estimate(BASE_RTT_MS + km / KM_PER_RTT_MS, "distance", f"{km:.0f} km")
    return Estimate(None, "none", "client location unknown" if not location.known else "site has no coordinates")
