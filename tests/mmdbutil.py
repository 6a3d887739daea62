"""Small MaxMind-format test databases in the GeoLite2-City record layout.

`write_test_mmdb(path, [("192.0.2.0/24", dict(continent="EU", country="DE", subdivision="DE-BY",
lat=48.1, lon=11.6)), ("2001:db8::/32", dict(...))])` writes one IPv6 tree holding both families, which
`geoip2.database.Reader(path).city(ip)` (and `.country(ip)`) read back. Tests build exactly the
locations they need instead of depending on the bundled registry data.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import mmdb_writer
import netaddr

DATABASE_TYPE = "GeoLite2-City"
# A fixed build time: the same entries give the same bytes, so a failing test can be reproduced exactly.
BUILD_EPOCH = 1_700_000_000


class _FixedTimeWriter(mmdb_writer.MMDBWriter):
    def _build_meta(self) -> dict:
        meta = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


def city_record(continent: str, country: str, subdivision: str | None = None,
                lat: float | None = None, lon: float | None = None) -> dict[str, Any]:
    """One City-layout record. `subdivision` may be "US-CA" or "CA"; it is stored as "CA", as MaxMind does.

    :raises ValueError: a latitude without a longitude or the other way round.
    """
    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    record: dict[str, Any] = {"continent": {"code": continent}, "country": {"iso_code": country}}
    if subdivision is not None:
        code = subdivision.split("-", 1)[1] if subdivision.startswith(country + "-") else subdivision
        record["subdivisions"] = [{"iso_code": code}]
    if lat is not None:
        record["location"] = {"latitude": float(lat), "longitude": float(lon)}
    return record


def write_test_mmdb(path: str, entries: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """Write `entries`, (cidr, dict(continent, country, subdivision=None, lat, lon)) pairs, to `path`.

    IPv4 and IPv6 networks may be mixed; IPv4 ones are reachable by plain IPv4 lookups. Where networks
    nest, the more specific one answers. Returns `path`.

    :raises ValueError: a malformed CIDR or half a coordinate pair.
    :raises TypeError: an entry without continent or country, or with an unknown field.
    """
    writer = _FixedTimeWriter(ip_version=6, database_type=DATABASE_TYPE, languages=["en"],
                              description={"en": "gslb test database"}, ipv4_compatible=True)
    networks = []
    for cidr, fields in entries:
        networks.append((ipaddress.ip_network(cidr), city_record(**fields)))  # strict: host bits are a typo
    # Nested networks: the more specific one wins whatever the order given, as in real databases;
    # mmdb-writer itself lets the later insert win, so insert from the widest down.
    for network, record in sorted(networks, key=_tree_prefix_len):
        writer.insert_network(netaddr.IPSet([str(network)]), record)
    writer.to_db_file(path)
    return path


def _tree_prefix_len(item: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, dict]) -> int:
    # IPv4 networks sit under ::/96 in the IPv6 tree.
    network = item[0]
    return network.prefixlen + (96 if network.version == 4 else 0)
