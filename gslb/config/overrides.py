"""Operator overrides as data: `overrides.yaml` in the zones directory, and the selectors and entries that
the API's runtime overrides share with it (docs/overrides.md).

```yaml
overrides:
  - selector: www/eu-west             # POOL, POOL/SITE or POOL/SITE/ADDRESS (an address may be a CIDR)
    state: down                       # down: drain; up: answer it even when its checks fail
    reason: "CHG-1234 rack move"      # required
    until: 2025-06-01T18:00:00Z       # optional, RFC 3339; afterwards the entry no longer applies
    by: alice                         # optional
```

A selector is `[ZONE:]POOL[/SITE[/ADDRESS]]`. A bare POOL selects the pool of that name in every zone that
defines one; `ZONE:POOL` (the zone's origin, with or without the final dot) narrows it to one zone.
`*` stands for any pool or any site (`*/*/192.0.2.10`: that address wherever it serves), but a selector
must name a pool or an address. Entries are frozen values, validated once when the file is read; whether
a selector matches pools, sites and endpoints that exist is checked against the loaded zones
(`selector_problems`, used by `gslb check` and the API).
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gslb.config.kit import NAMED, Choice, Custom, Invalid, Section
from gslb.config.model import Zone
from gslb.config.yamlsrc import SourceList, SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem

FILE_NAME = "overrides.yaml"
MAX_FILE_BYTES = 1_000_000
MAX_ENTRIES = 10_000
MAX_REASON = 500
MAX_BY = 100
ANY = "*"

OverrideState = Literal["up", "down"]
Source = Literal["file", "api"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Selector:
    """What an override applies to: `[ZONE:]POOL[/SITE[/ADDRESS|CIDR]]`; None for a part not given or `*`."""

    zone: str | None = None              # an origin, lower case with the final dot
    pool: str | None = None
    site: str | None = None
    network: Network | None = None       # an address is a /32 or /128
    depth: int = 1                       # 1 pool, 2 site, 3 address: how specific it is

    def __str__(self) -> str:
        parts = [self.pool or ANY]
        if self.depth >= 2:
            parts.append(self.site or ANY)
        if self.network is not None:
            single = self.network.prefixlen == self.network.max_prefixlen
            parts.append(str(self.network.network_address) if single else str(self.network))
        return (f"{self.zone}:" if self.zone else "") + "/".join(parts)

    @property
    def rank(self) -> tuple[int, int, bool, bool, bool]:
        """Greater is more specific: depth, then the prefix length (an address beats a CIDR holding it),
        then a named site, pool, zone (in that order) over `*` or none."""
        prefix = self.network.prefixlen if self.network is not None else 0
        return self.depth, prefix, self.site is not None, self.pool is not None, self.zone is not None

    def matches(self, zone: str, pool: str, site: str, address: str) -> bool:
        """Whether the endpoint `address` of site `site` in pool `pool` of zone `zone` is selected."""
        if self.zone is not None and self.zone != zone:
            return False
        if self.pool is not None and self.pool != pool:
            return False
        if self.site is not None and self.site != site:
            return False
        if self.network is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return ip.version == self.network.version and ip in self.network


def parse_selector(text: Any) -> Selector:
    """A `Selector` from its text. :raises SelectorError: saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SelectorError(f"selector {short(text)}: expected POOL, POOL/SITE or POOL/SITE/ADDRESS")
    text = text.strip()
    if len(text) > 300:
        raise SelectorError(f"selector {short(text)}: longer than 300 characters")
    parts = text.split("/", 2)            # the address part may be a CIDR, with a '/' of its own
    zone = None
    if ":" in parts[0]:
        zone, parts[0] = parts[0].split(":", 1)
        zone = zone.lower().rstrip(".") + "."
        if zone == ".":
            raise SelectorError(f"selector {short(text)}: an empty zone before ':'")
    if any(not p for p in parts):
        raise SelectorError(f"selector {short(text)}: an empty part; expected POOL, POOL/SITE or POOL/SITE/ADDRESS")
    pool = None if parts[0] == ANY else parts[0]
    site = None if len(parts) < 2 or parts[1] == ANY else parts[1]
    network = None
    if len(parts) == 3:
        if "%" in parts[2]:
            raise SelectorError(f"selector {short(text)}: a scoped IPv6 address (with %zone) is not an endpoint")
        try:
            network = ipaddress.ip_network(parts[2], strict=False)
        except ValueError:
            raise SelectorError(f"selector {short(text)}: {short(parts[2])} is not an IP address or a CIDR "
                                "network") from None
    if pool is None and network is None:
        raise SelectorError(f"selector {short(text)}: name a pool, or an address (*/*/ADDRESS)")
    return Selector(zone, pool, site, network, len(parts))


@dataclass(frozen=True, slots=True)
class Override:
    """One override entry, from overrides.yaml (`source` file, with its `file`:`line`) or the API."""

    selector: Selector
    state: OverrideState
    reason: str
    source: Source = "file"
    until: float | None = None          # unix time; None: until cleared
    by: str | None = None
    created: float | None = None        # unix time the API took it (None for the file)
    file: str | None = None
    line: int = 0

    def active(self, now: float) -> bool:
        """Whether it still applies at `now` (its `until`, if any, is later)."""
        return self.until is None or now < self.until

    @property
    def where(self) -> str:
        """Where it comes from, as messages say it: `zones/overrides.yaml:7` or `api`."""
        return f"{self.file}:{self.line}" if self.file else "api"

    def as_json(self) -> dict:
        return {"selector": str(self.selector), "state": self.state, "reason": self.reason,
                "source": self.source, "by": self.by, "until": self.until, "until_text": format_time(self.until),
                "created": self.created, "file": self.file, "line": self.line or None}


def format_time(when: float | None) -> str | None:
    """Unix time as RFC 3339 in UTC, to the second."""
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float:
    """An RFC 3339 time (`2025-06-01T18:00:00Z`, `...+02:00`; YAML may hand it over as a datetime) as
    unix time. :raises ValueError: without a time zone or not a time."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            raise ValueError(f"{short(value)}: expected an RFC 3339 time like 2025-06-01T18:00:00Z") from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{short(str(value))}: give the time zone (Z for UTC, or an offset like +02:00)")
        return value.timestamp()
    why = f"{value}: a date without a time; write a time and zone, like {value}T00:00:00Z" \
        if isinstance(value, datetime.date) else f"{short(value)}: expected an RFC 3339 time like 2025-06-01T18:00:00Z"
    raise ValueError(why)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """Seconds from `30m`, `2h`, `1d`, `90s`, `1w` or a number of seconds. :raises ValueError:"""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip().lower())):
        seconds = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ValueError(f"duration {short(value)}: expected a number with s, m, h, d or w, like 30m or 2h")
    if not math.isfinite(seconds) or not 0 < seconds <= 366 * 86400:
        raise ValueError(f"duration {short(value)}: expected more than 0 and at most a year")
    return seconds


def _selector(value: Any) -> Selector:
    try:
        return parse_selector(value)
    except SelectorError as exc:
        raise Invalid(str(exc)) from None


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("required: a few words saying why (a ticket, the work being done)")
    if len(value) > MAX_REASON:
        raise Invalid(f"longer than {MAX_REASON} characters")
    return value.strip()


def _by(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_BY:
        raise Invalid
    return value.strip()


def _until(value: Any) -> float:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


# The keys of one entry, in the order messages list them; `until` and `by` may be left out (or null).
ENTRY_FIELDS = {
    "selector": Custom("[ZONE:]POOL[/SITE[/ADDRESS|CIDR]]", {"type": "string", "minLength": 1}, _selector),
    "state": Choice(("down", "up"), expected="down (drain) or up (answer it over failing checks)"),
    "reason": Custom("a few words saying why", {"type": "string", "minLength": 1, "maxLength": MAX_REASON}, _reason),
    "until": Custom("RFC 3339 time with a zone, like 2025-06-01T18:00:00Z", {"type": "string"}, _until),
    "by": Custom(f"a name of at most {MAX_BY} characters", {"type": "string", "minLength": 1, "maxLength": MAX_BY},
                 _by),
}
_OPTIONAL = ("until", "by")


def entry_fields(src: Mapping, bad: Callable[[str, str], None]) -> dict[str, Any] | None:
    """The fields of one override (YAML entry or API body) checked; `bad(key, what)` collects problems.
    Returns None when any field is wrong. `until` may be any time, past included (the caller decides)."""
    values: dict[str, Any] = dict.fromkeys(_OPTIONAL)
    ok = True
    for key, field in ENTRY_FIELDS.items():
        value = src.get(key)
        if value is None and key in _OPTIONAL:
            continue
        try:
            values[key] = field.convert(value)
        except Invalid as exc:
            ok = False
            bad(key, field.problem(value, exc))
    return values if ok else None


def parse_overrides(src: Any, file: str) -> tuple[Override, ...]:
    """Entries from a loaded overrides.yaml (`overrides:` a list of mappings).

    :raises ConfigError: listing every problem with file:line.
    """
    if src is None:
        return ()
    problems: list[Problem] = []
    if not isinstance(src, SourceMap) or set(src) - {"overrides"}:
        raise ConfigError([Problem(file, getattr(src, "line", 1) or 1,
                                   "expected a mapping with one key, overrides: a list of entries "
                                   "(see docs/overrides.md)")])
    items = src.get("overrides")
    if items is None:
        return ()
    if not isinstance(items, SourceList):
        raise ConfigError([Problem(file, src.line_of("overrides"), "overrides: expected a list of entries")])
    if len(items) > MAX_ENTRIES:
        raise ConfigError([Problem(file, items.line, f"{len(items)} entries, more than {MAX_ENTRIES}")])
    out: list[Override] = []
    seen: dict[Selector, int] = {}
    for i, item in enumerate(items):
        line = items.line_of(i)
        if not isinstance(item, SourceMap):
            problems.append(Problem(file, line, f"entry {i + 1}: expected a mapping with selector, state and reason"))
            continue

        sec = Section(item, problems, file, f"entry {i + 1}: ", unknown=NAMED)
        sec.unknown(ENTRY_FIELDS)
        values = entry_fields(item, sec.bad)
        if values is None:
            continue
        selector = values["selector"]
        if selector in seen:
            sec.bad("selector", f"{selector} is already set on line {seen[selector]}; one entry per selector")
            continue
        seen[selector] = item.line
        out.append(Override(source="file", file=file, line=item.line, **values))
    if problems:
        raise ConfigError(problems)
    return tuple(out)


def load_overrides(path: str) -> tuple[Override, ...]:
    """The entries of an overrides file; none when it does not exist.

    :raises ConfigError: with file:line for every problem (syntax, keys, values, repeated selectors).
    """
    if not os.path.exists(path):
        return ()
    return parse_overrides(load_yaml_file(path, MAX_FILE_BYTES), path)


def endpoints(zones: Mapping[str, Zone]) -> Iterable[tuple[str, str, str, str]]:
    """Every (zone origin, pool, site, address) of the zones."""
    for zone in zones.values():
        for pool in zone.pools.values():
            for site in pool.sites:
                for endpoint in site.endpoints:
                    yield zone.origin, pool.name, site.name, endpoint.address


def selected(selector: Selector, zones: Mapping[str, Zone]) -> list[tuple[str, str, str, str]]:
    """The endpoints of `zones` a selector applies to."""
    return [e for e in endpoints(zones) if selector.matches(*e)]


def selector_problem(selector: Selector, zones: Mapping[str, Zone]) -> str | None:
    """Why a selector matches nothing in `zones` (naming the part that does not exist), or None."""
    if selected(selector, zones):
        return None
    scope = [z for z in zones.values() if selector.zone is None or z.origin == selector.zone]
    if selector.zone is not None and not scope:
        return f"{selector}: zone {selector.zone} is not loaded (zones: {', '.join(sorted(zones)) or 'none'})"
    pools = [p for z in scope for p in z.pools.values() if selector.pool is None or p.name == selector.pool]
    if not pools:
        known = sorted({p for z in scope for p in z.pools})
        return f"{selector}: no pool {short(selector.pool)} (pools: {', '.join(known) or 'none'})"
    sites = [s for p in pools for s in p.sites if selector.site is None or s.name == selector.site]
    if not sites:
        known = sorted({s.name for p in pools for s in p.sites})
        return f"{selector}: no site {short(selector.site)} in pool {selector.pool} (sites: {', '.join(known)})"
    addresses = sorted({e.address for s in sites for e in s.endpoints})
    shown = ", ".join(addresses[:8]) + (", ..." if len(addresses) > 8 else "")
    return f"{selector}: no endpoint in {selector.network} there (endpoints: {shown or 'none'})"


def selector_problems(overrides: Iterable[Override], zones: Mapping[str, Zone]) -> list[Problem]:
    """A problem (file:line) for each entry whose selector matches no endpoint of the loaded zones."""
    problems = []
    for entry in overrides:
        what = selector_problem(entry.selector, zones)
        if what is not None:
            problems.append(Problem(entry.file or "api", entry.line, f"override {what}"))
    return problems
