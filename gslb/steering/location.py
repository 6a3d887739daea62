"""Where a client is: GeoIP lookup of an address or subnet, and distances on the globe."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import maxminddb

from gslb.steering.client import Client


@dataclass(frozen=True, slots=True)
class ClientLocation:
    """What the GeoIP database says about a client's network; every field may be unknown (None).

    `prefix_len` is the length of the database network that holds the address: every address in it
    gets the same location, so it is the ECS scope a location-based answer can claim.
    """

    continent: str | None = None
    country: str | None = None
    subdivision: str | None = None        # "US-CA": country + "-" + ISO 3166-2 code
    lat: float | None = None
    lon: float | None = None
    prefix_len: int = 0

    @property
    def known(self) -> bool:
        return self.country is not None or self.continent is not None or self.lat is not None

    @property
    def bucket(self) -> tuple:
        """Clients with the same bucket get the same site ranking (precomputed per bucket)."""
        return (self.continent, self.country, self.subdivision,
                None if self.lat is None else round(self.lat, 1),
                None if self.lon is None else round(self.lon, 1))

    def describe(self) -> str:
        if not self.known:
            return "unknown"
        parts = [p for p in (self.subdivision or self.country, self.continent) if p]
        if self.lat is not None and self.lon is not None:
            parts.append(f"{self.lat:.2f},{self.lon:.2f}")
        return " ".join(parts)


UNKNOWN = ClientLocation()
BLOCK_LIMIT = 65_536          # /24 and /56 blocks whose location is remembered (cleared when full)
_V6_BLOCK = 1 << 64           # IPv6 block keys carry this bit so they never meet an IPv4 one


class Locator:
    """Looks up client locations in a MaxMind-format (City or Country layout) database.

    The reader is the `maxminddb` C extension (what geoip2 uses underneath); raw records are read
    directly because the per-query path cannot afford geoip2's model objects. Results are cached per
    address text (`locate`) and, for the query path, per /24 or /56 block (`locate_client`).
    """

    def __init__(self, path: str | None):
        self.path = path
        self._reader = maxminddb.open_database(path) if path else None
        self.locate = lru_cache(maxsize=65536)(self._locate)
        self._blocks: dict[int, ClientLocation] = {}

    def locate_client(self, client: Client) -> ClientLocation:
        """The location of a `gslb.steering.client.Client`, remembered per /24 (IPv4) or /56 (IPv6) block.

        A block is remembered only when the database network holding the address spans the whole block
        (its prefix is no longer than /24 or /56), so every address in the block has this location and
        the answer is exact; addresses in longer database networks go to `locate` each time.
        """
        if client.version == 4:
            key, width = client.value >> 8, 24
        else:
            key, width = (client.value >> 72) | _V6_BLOCK, 56
        found = self._blocks.get(key)
        if found is None:
            found = self.locate(client.address)
            if found.prefix_len <= width:
                if len(self._blocks) >= BLOCK_LIMIT:
                    self._blocks.clear()
                self._blocks[key] = found
        return found

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def _locate(self, address: str) -> ClientLocation:
        if self._reader is None:
            return UNKNOWN
        try:
            record, prefix_len = self._reader.get_with_prefix_len(address)
        except ValueError:
            return UNKNOWN
        if not record:
            return ClientLocation(prefix_len=prefix_len)
        country = (record.get("country") or record.get("registered_country") or {}).get("iso_code")
        continent = (record.get("continent") or {}).get("code")
        subdivisions = record.get("subdivisions") or []
        subdivision = None
        if subdivisions and country and subdivisions[0].get("iso_code"):
            subdivision = f"{country}-{subdivisions[0]['iso_code']}"
        loc = record.get("location") or {}
        return ClientLocation(continent, country, subdivision, loc.get("latitude"), loc.get("longitude"),
                              prefix_len)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance between two points on the Earth (haversine, mean radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(a)))
