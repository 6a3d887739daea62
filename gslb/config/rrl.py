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

from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem

RRL_KEYS = {"responses_per_second", "burst", "slip", "ipv4_prefix", "ipv6_prefix", "exempt", "max_prefixes"}

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


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_rate_limit(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> RateLimitSettings:
    """Build RateLimitSettings from the `rrl:` mapping (None: defaults); problems are appended."""
    if src is None:
        return RateLimitSettings()
    if not isinstance(src, SourceMap):
        problems.append(Problem(*where, f"rrl: {short(src, 40)}, expected a mapping (see docs/server.md)"))
        return RateLimitSettings()
    values: dict[str, Any] = {}

    def bad(key: str, what: str) -> None:
        problems.append(Problem(src.file, src.line_of(key), f"rrl {key}: {what}"))

    ranges = {"responses_per_second": (0, 1_000_000), "burst": (1, 10_000_000), "slip": (0, 100),
              "ipv4_prefix": (1, 32), "ipv6_prefix": (1, 128), "max_prefixes": (1_000, 10_000_000)}
    for key, value in src.items():
        if key not in RRL_KEYS:
            bad(key, f"unknown key (known: {', '.join(sorted(RRL_KEYS))})")
        elif key in ranges:
            low, high = ranges[key]
            if _int_in(value, low, high):
                values[key] = value
            else:
                bad(key, f"{short(value, 40)}, expected a whole number {low}..{high}")
        else:                                                        # exempt
            items = value if isinstance(value, list) else [] if value is None else [value]
            networks = []
            for i, item in enumerate(items):
                line = value.line_of(i) if isinstance(value, SourceList) else src.line_of(key)
                try:
                    networks.append(str(ipaddress.ip_network(str(item), strict=False)))
                except ValueError:
                    problems.append(Problem(src.file, line, f"rrl exempt: {short(item, 40)} is not an address or "
                                                            "CIDR like 192.0.2.0/24 or 2001:db8::/48"))
            values[key] = tuple(networks)
    if "burst" not in values and "responses_per_second" in values:
        values["burst"] = max(1, values["responses_per_second"])
    return RateLimitSettings(**values)
