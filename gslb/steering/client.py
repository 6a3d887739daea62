"""Who is asking: the client network a decision is made for (EDNS Client Subnet or source address).

The query path builds a `Client` from integers (no `ipaddress` object), once per source address or ECS
subnet: `source_client` keeps a bounded memo of them, and the fast path keeps the ECS one with the
query's cached form (gslb/dns/fast.py).
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SOURCE_LIMIT = 65_536        # source addresses remembered (cleared when full: a spoofed flood stays bounded)


class Client:
    """The network an answer is decided for.

    `ecs` is True when the network came from the EDNS Client Subnet option (RFC 7871) of a zone that
    trusts it; otherwise it is the query's source address as a host network. Equal when the network and
    `ecs` are.
    """

    __slots__ = ("_affinity_key", "address", "affinity_prefix", "ecs", "ip", "prefixlen", "value", "version")

    def __init__(self, network: Network, ecs: bool = False):
        self._set(network.version, int(network.network_address), network.prefixlen, ecs,
                  str(network.network_address))

    @classmethod
    def of(cls, version: int, value: int, prefixlen: int, ecs: bool, address: str) -> Client:
        """A client from its parts: IP version, network address as an integer and as text, prefix length."""
        client = cls.__new__(cls)
        client._set(version, value, prefixlen, ecs, address)
        return client

    def _set(self, version: int, value: int, prefixlen: int, ecs: bool, address: str) -> None:
        self.version = version
        self.value = value
        self.prefixlen = prefixlen
        self.ecs = ecs
        self.address = address          # the address to locate in the GeoIP database
        self.ip = (version, value)      # what `net:` rules match (gslb/config/nets.py)
        # what `affinity: subnet` hashes: the client's /24 (IPv4) or /56 (IPv6), or its shorter ECS subnet
        self.affinity_prefix = min(24 if version == 4 else 56, prefixlen)
        self._affinity_key: str | None = None

    @property
    def network(self) -> Network:
        return ipaddress.ip_network((self.value, self.prefixlen)) if self.version == 4 else \
            ipaddress.IPv6Network((self.value, self.prefixlen))

    @property
    def affinity_key(self) -> str:
        """The text `affinity: subnet` hashes, e.g. "192.0.2.0/24" (made once per client)."""
        if self._affinity_key is None:
            self._affinity_key = str(self.network.supernet(new_prefix=self.affinity_prefix))
        return self._affinity_key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Client) and (self.version, self.value, self.prefixlen, self.ecs) == \
            (other.version, other.value, other.prefixlen, other.ecs)

    def __hash__(self) -> int:
        return hash((self.version, self.value, self.prefixlen, self.ecs))

    def __repr__(self) -> str:
        return f"Client({self.address}/{self.prefixlen}, ecs={self.ecs})"


_sources: dict[str, Client] = {}


def source_client(source_ip: str) -> Client:
    """The client of a query decided by its source address ("192.0.2.1", "2001:db8::1", "fe80::1%eth0").

    :raises ValueError: when `source_ip` is not an address.
    """
    found = _sources.get(source_ip)
    if found is None:
        text = source_ip.partition("%")[0]
        try:
            if ":" in text:
                found = Client.of(6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big"), 128, False,
                                  text)
            else:
                found = Client.of(4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"), 32, False, text)
        except OSError:
            raise ValueError(f"{source_ip!r} is not an IP address") from None
        if len(_sources) >= SOURCE_LIMIT:
            _sources.clear()
        _sources[source_ip] = found
    return found


def subnet_client(address: str, prefixlen: int) -> Client:
    """The client of an ECS subnet (its address has no bits beyond `prefixlen`, RFC 7871 6)."""
    if ":" in address:
        return Client.of(6, int.from_bytes(socket.inet_pton(socket.AF_INET6, address), "big"), prefixlen, True,
                         address)
    return Client.of(4, int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"), prefixlen, True, address)


@lru_cache(maxsize=65536)
def client_for(source_ip: str, ecs: tuple[str, int] | None, trust_ecs: bool) -> Client:
    """The client of a query: its ECS subnet (address, prefix length) when present, non-empty (SOURCE
    PREFIX-LENGTH > 0, RFC 7871 7.1.2) and trusted by the zone; else its source address. Cached: a
    resolver asks many times."""
    if ecs is not None and trust_ecs and ecs[1] > 0:
        return subnet_client(ecs[0], ecs[1])
    return source_client(source_ip)
