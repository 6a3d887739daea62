"""`rrl:` in the server config: response rate limiting for DNS over UDP (docs/server.md, docs/security.md).

Like nsd's `rrl-*` options and Knot's `rate-limit`: each client prefix (/24 for IPv4, /56 for IPv6) may
get `responses_per_second` answers with a burst of `burst`; above it, every `slip`-th response goes out
as a minimal TC=1 answer (a real resolver retries over TCP, which is never limited) and the others are
dropped. A spoofed flood then reflects little: most of it is dropped, and a slipped answer is no larger
than the query.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from gslb.config.kit import NAMED, Custom, Int, Invalid, mapping_of
from gslb.config.yamlsrc import SourceList, short
from gslb.errors import Problem

# Loopback is exempt by default: a resolver, a monitor or a benchmark on the same host is one client
# address asking for many; nobody can spoof a loopback source from outside the host (the kernel drops
# such packets arriving on other interfaces, "martians"), so it cannot be used for reflection.
DEFAULT_EXEMPT = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Response rate limiting; `responses_per_second: 0` turns it off."""

    responses_per_second: int = 200          # nsd's default rrl-ratelimit
    burst: int = 200                          # responses a quiet prefix may get at once (default: one second's)
    slip: int = 2                             # every 2nd limited response is a TC=1 answer (nsd: rrl-slip 2)
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[str, ...] = DEFAULT_EXEMPT  # CIDRs never limited
    max_prefixes: int = 100_000               # prefixes remembered at once: memory stays bounded under a flood

    @property
    def enabled(self) -> bool:
        return self.responses_per_second > 0


def _networks(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    networks = []
    for i, item in enumerate(items):
        try:
            networks.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise Invalid(f"{short(item)} is not an address or CIDR like 192.0.2.0/24 or 2001:db8::/48",
                          value.line_of(i) if isinstance(value, SourceList) else None) from None
    return tuple(networks)


RRL_FIELDS = {
    "responses_per_second": Int(0, 1_000_000), "burst": Int(1, 10_000_000), "slip": Int(0, 100),
    "ipv4_prefix": Int(1, 32), "ipv6_prefix": Int(1, 128),
    "exempt": Custom("addresses or CIDRs", {"type": ["array", "string", "null"], "items": {"type": "string"}},
                     _networks),
    "max_prefixes": Int(1_000, 10_000_000),
}


def parse_rate_limit(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> RateLimitSettings:
    """Build RateLimitSettings from the `rrl:` mapping (None: defaults); problems are appended."""
    section = mapping_of(src, problems, where, "rrl", "a mapping (see docs/server.md)", label="rrl ",
                         unknown=NAMED)
    if section is None:
        return RateLimitSettings()
    values = section.read(RRL_FIELDS)
    if "burst" not in values and "responses_per_second" in values:
        values["burst"] = max(1, values["responses_per_second"])
    return RateLimitSettings(**values)
