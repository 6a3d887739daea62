"""`gslb explain`: the decision for one name and client, step by step, made by the server's own code.

Both the CLI (offline, from zone files) and the API (`GET /v1/explain`, with the live health) call
`explain`, which runs `authority.lookup` and steering's `plan`/`choose` exactly as a query would.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE

from gslb.config.model import Zone
from gslb.config.overrides import format_time
from gslb.dns.authority import lookup
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.decide import SteeringData, choose, ecs_scope, plan
from gslb.steering.location import Locator


@dataclass
class Explanation:
    name: str
    type: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def as_json(self) -> dict:
        return {"name": self.name, "type": self.type, "rcode": self.rcode, "answer": self.answer,
                "lines": self.lines}


def explain(zones: Mapping[str, Zone], name: str, qtype: str, client: Client, health: HealthSnapshot,
            data: SteeringData, locator: Locator, rand=None) -> Explanation:
    """Explain the answer to (name, qtype) for this client; `rand` draws the weighted pick."""
    qname = name.lower() if name.endswith(".") else name.lower() + "."
    out = Explanation(qname, qtype.upper())
    how = "ECS subnet" if client.ecs else "source address"
    out.lines.append(f"query: {qname} {out.type} from {client.network} ({how})")
    result = lookup(zones, qname, getattr(QTYPE, out.type))
    out.rcode = RCODE.get(result.rcode)
    for rr in result.answer:
        out.answer.append(f"{rr.rname} {rr.ttl} {QTYPE.get(rr.rtype)} {rr.rdata}")
    if result.pool is None:
        out.lines.append("static answer (no pool): " + (out.rcode if not out.answer else ""))
        out.lines += [f"  {a}" for a in out.answer]
        if not out.answer and result.authority:
            out.lines.append(f"  authority: {result.authority[0].rname} SOA (negative answer)")
        return out
    ref = result.pool
    out.lines += [f"  {a}" for a in out.answer]      # the CNAME chain leading to the pool, if any
    location = locator.locate(client.address)
    p = plan(ref.zone, ref.pool, ref.family, location, health, data, client.ip)
    out.lines += list(p.trace)
    out.lines += _prober_errors(ref.zone.pools.get(ref.pool), health)
    out.lines += _override_notes(ref.zone, health)
    if p.outcome != "answer":
        out.rcode = "SERVFAIL" if p.outcome == "servfail" else out.rcode
        out.lines.append(f"answer: {p.outcome.upper()}")
        return out
    total = sum(c.weight for c in p.candidates)
    for c in p.candidates:
        out.lines.append(f"  candidate {c.address} (site {c.site}) weight {c.weight:g} share {c.weight / total:.0%}")
    chosen = [p.candidates[i].address for i in choose(p, client, rand or random.random)]
    rtype = "A" if ref.family == 4 else "AAAA"
    out.answer += [f"{ref.owner} {p.ttl} {rtype} {address}" for address in chosen]
    mode = "rendezvous hash of " + client.affinity_key if p.affinity else "weighted random"
    out.lines.append(f"answer ({mode}, ttl {p.ttl}, ecs scope /{ecs_scope(p, client)}): " + ", ".join(chosen))
    return out


def _override_notes(zone: Zone, health: HealthSnapshot) -> list[str]:
    """A note per override deciding endpoints of the zone's pools: selector, state, source, by, expiry, reason."""
    seen: dict[int, tuple] = {}
    for (origin, pool, site, address), entry in health.overrides.items():
        if origin == zone.origin:
            seen.setdefault(id(entry), (entry, []))[1].append(f"{pool}/{site}/{address}")
    lines = []
    for entry, where in seen.values():
        by = f" by {entry.by}" if entry.by else ""
        until = f" until {format_time(entry.until)}" if entry.until else ""
        lines.append(f"  note: override {entry.selector} {entry.state} ({entry.where}{by}{until}): {entry.reason} "
                     f"[{', '.join(sorted(where)[:5])}{', ...' if len(where) > 5 else ''}]")
    return lines


def _prober_errors(pool, health: HealthSnapshot) -> list[str]:
    """A note per endpoint a prober region could not check itself: its state is held, not voted."""
    if pool is None or pool.check is None:
        return []
    lines = []
    for site in pool.sites:
        for endpoint in site.endpoints:
            for region, view in sorted(health.of(pool.target_of(endpoint)).regions.items()):
                if view.prober_error:
                    lines.append(f"  note: prober {region} could not check {endpoint.address} itself (prober "
                                 f"error, not a vote; its last state {view.state} holds): {view.prober_error}")
    return lines
