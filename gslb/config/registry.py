"""One registry per concept: steering policies, check types, proxy algorithms and record types, each
declared once here with a line saying what it does.

The names live in the config layer because the readers validate against them and the schemas
(gslb/schema.py) list them, and config may not import the code that implements them (steering, health,
proxy). The implementations register where they are written (`@POLICIES.implements("latency")`); a name
not declared here cannot be registered, and `complete()` (called when the implementing package is
imported, and by tests/test_registry.py) fails when a declared name has no implementation. So a name
the config accepts always has code behind it, and code behind a name is always accepted by the config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any


class Registry:
    """The names of one concept, in the order docs and messages list them, and what implements each."""

    def __init__(self, concept: str, names: dict[str, str]):
        self.concept = concept
        self.descriptions = MappingProxyType(names)       # name -> what it does (schema descriptions)
        self.names = tuple(names)
        self._impl: dict[str, Any] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.descriptions

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def implements(self, *names: str) -> Callable[[Any], Any]:
        """Decorator: the function or class implements these names."""
        def register(obj: Any) -> Any:
            for name in names:
                if name not in self.descriptions:
                    raise AssertionError(f"{self.concept} {name!r} is not declared in gslb/config/registry.py")
                if name in self._impl:
                    raise AssertionError(f"{self.concept} {name!r} is implemented twice")
                self._impl[name] = obj
            return obj
        return register

    def __getitem__(self, name: str) -> Any:
        """The implementation of `name`. The config refused unknown names, so a miss is a bug, said loudly."""
        try:
            return self._impl[name]
        except KeyError:
            raise LookupError(f"no implementation of {self.concept} {name!r} "
                              f"(known: {', '.join(self._impl)})") from None

    def complete(self) -> None:
        """Fail unless every declared name has an implementation."""
        missing = [name for name in self.names if name not in self._impl]
        if missing:
            raise AssertionError(f"{self.concept}: declared but not implemented: {', '.join(missing)}")


POLICIES = Registry("steering policy", {
    "latency": "the site with the lowest estimated RTT from the client (within latency_margin_ms/pct)",
    "geo": "sites chosen by the client's network, subdivision, country or continent (geo: rules)",
    "weighted": "every site, answers spread by site and endpoint weight",
    "failover": "the first site in `order` with an endpoint up",
})

CHECK_TYPES = Registry("check type", {
    "http": "an HTTP request; up when the status is one of `expect` (and the body has `body`)",
    "https": "an HTTPS request (tls_verify, sni); as http",
    "tcp": "a TCP connect; with send/expect, the first bytes of the reply",
    "dns": "a DNS query; up on an answer with NOERROR",
    "file": "ADDRESS STATE [reason] lines of a file another system writes",
})

ALGORITHMS = Registry("proxy algorithm", {
    "round_robin": "each backend in turn",
    "weighted_round_robin": "smooth weighted round robin (nginx)",
    "least_connections": "fewest active requests relative to weight",
    "random": "a weighted random choice",
    "power_of_two": "the less busy of two random backends",
    "ewma": "lowest smoothed latency x outstanding requests (peak EWMA)",
    "ip_hash": "the client address picks the backend",
    "consistent_hash": "a hash ring keyed by `hash:` (ip, header:NAME or cookie:NAME)",
})

RECORD_TYPES = Registry("record type", {
    "NS": "name servers (names)",
    "A": "IPv4 addresses",
    "AAAA": "IPv6 addresses",
    "CNAME": "one canonical name",
    "TXT": "text (longer than 255 bytes is split into strings)",
    "MX": "{preference, exchange} or \"10 mail.example.com.\"",
    "SRV": "{priority, weight, port, target}",
    "CAA": "{flags, tag, value}",
    "PTR": "a name",
})
