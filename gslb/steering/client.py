"""Who is asking: the client network a decision is made for (EDNS Client Subnet or source address)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Client:
    """The network an answer is decided for.

    `ecs` is True when the network came from the EDNS Client Subnet option (RFC 7871) of a zone that
    trusts it; otherwise it is the query's source address as a host network.
    """

    network: Network
    ecs: bool = False

    @property
    def address(self) -> str:
        """The address to locate in the GeoIP database."""
        return str(self.network.network_address)

    @property
    def ip(self) -> tuple[int, int]:
        """(IP version, address as an integer): what `net:` rules match (gslb/config/nets.py)."""
        return self.network.version, int(self.network.network_address)

    @property
    def affinity_key(self) -> str:
        """What `affinity: subnet` hashes: the client's /24 (IPv4) or /56 (IPv6), or its shorter ECS subnet."""
        limit = 24 if self.network.version == 4 else 56
        return str(self.network.supernet(new_prefix=min(limit, self.network.prefixlen)))

    @property
    def affinity_prefix(self) -> int:
        return min(24 if self.network.version == 4 else 56, self.network.prefixlen)


@lru_cache(maxsize=65536)
def client_for(source_ip: str, ecs: tuple[str, int] | None, trust_ecs: bool) -> Client:
    """The client of a query: its ECS subnet (address, prefix length) when present, non-empty (SOURCE
    PREFIX-LENGTH > 0, RFC 7871 7.1.2) and trusted by the zone; else its source address. Cached: a
    resolver asks many times."""
    if ecs is not None and trust_ecs and ecs[1] > 0:
        return Client(ipaddress.ip_network(f"{ecs[0]}/{ecs[1]}"), True)
    return Client(ipaddress.ip_network(source_ip))
