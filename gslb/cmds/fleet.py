"""One view of several gslb nodes (`gslb status --api URL --api URL ...`): what each node serves and
believes, side by side, and every point where they disagree.

The nodes are compared on what changes answers:
- each zone's SOA serial (same files give the same serial on every node);
- each endpoint's state and whether it is answered (keyed by zone, pool, site and address);
- the overrides in force (selector, state, source, reason, by; an `until` more than UNTIL_SLACK apart).
Prober regions live on one node and silent on another, and reports refused, are shown as warnings: they
explain a disagreement (a prober that cannot reach a node) but are not one in themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

UNTIL_SLACK = 60.0     # seconds: `gslb drain --for 1h` sent to two nodes gives untils a few ms apart


@dataclass(slots=True)
class Node:
    """What one node answered: its /v1/health and /v1/zones documents, or why it could not be read."""

    label: str                        # how the report names it: its node_id, else host:port
    url: str
    health: dict | None = None
    zones: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.health is not None and self.zones is not None


@dataclass(slots=True)
class FleetView:
    """The comparison: lines to print, and what disagrees (empty: the nodes agree)."""

    lines: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    nodes: int = 0

    @property
    def exit_status(self) -> int:
        """2 when reachable nodes disagree, else 1 when a node could not be read, else 0."""
        return 2 if self.disagreements else 1 if self.unreachable else 0


def _endpoints(health: dict) -> dict[tuple[str, str, str, str], dict]:
    return {(zone["origin"], pool["name"], site["name"], e["address"]): e
            for zone in health.get("zones", []) for pool in zone["pools"]
            for site in pool["sites"] for e in site["endpoints"]}


def _override_key(o: dict) -> tuple:
    return o.get("selector"), o.get("state"), o.get("source"), o.get("reason"), o.get("by")


def _active_overrides(health: dict) -> dict[tuple, dict]:
    return {_override_key(o): o for o in health.get("overrides", []) if o.get("active", True)}


def _describe_override(o: dict) -> str:
    where = f"{o['source']} {o['file']}:{o['line']}" if o.get("file") else o.get("source", "?")
    by = f" by {o['by']}" if o.get("by") else ""
    until = f" until {o['until_text']}" if o.get("until_text") else ""
    return f"{o.get('selector')} {str(o.get('state')).upper()} ({where}{by}{until}): {o.get('reason')}"


def _endpoint_cell(e: dict | None) -> str:
    if e is None:
        return "(absent)"
    answered = "answered" if e.get("answered") else "NOT answered"
    return f"{e.get('state', '?')} {answered}"


def _mark(differs: bool) -> str:
    return "  <- DISAGREE" if differs else ""


def compare(nodes: Sequence[Node], now: float) -> FleetView:
    """The side-by-side view of `nodes` (each read already, or failed)."""
    view = FleetView(nodes=len(nodes))
    ok = [n for n in nodes if n.ok]
    for n in nodes:
        if n.ok:
            region = n.health.get("region") or "none"
            view.lines.append(f"node {n.label}: {n.url} (region {region}, health version {n.health.get('version')})")
        else:
            view.unreachable.append(n.label)
            view.lines.append(f"node {n.label}: {n.url} UNREACHABLE: {n.error}")
    if not ok:
        return view
    _compare_serials(ok, view)
    _compare_overrides(ok, view)
    _compare_endpoints(ok, view)
    _probers(ok, view, now)
    _proxies(ok, view)
    return view


def _compare_serials(nodes: Sequence[Node], view: FleetView) -> None:
    serials: dict[str, dict[str, int | None]] = {}
    for n in nodes:
        for z in n.zones.get("zones", []):
            serials.setdefault(z["origin"], {})[n.label] = z.get("serial")
    view.lines.append("zones (SOA serial per node):")
    for origin in sorted(serials):
        per = {n.label: serials[origin].get(n.label) for n in nodes}
        differs = len(set(per.values())) > 1
        if differs:
            cells = ", ".join(f"{label} {s if s is not None else '(not served)'}" for label, s in per.items())
            view.disagreements.append(f"zone {origin}: serials differ ({cells})")
        else:
            cells = f"{next(iter(per.values()))} on all {len(per)} nodes"
        view.lines.append(f"  {origin:<32} {cells}{_mark(differs)}")


def _compare_overrides(nodes: Sequence[Node], view: FleetView) -> None:
    per_node = {n.label: _active_overrides(n.health) for n in nodes}
    keys = sorted({k for entries in per_node.values() for k in entries}, key=lambda k: tuple(map(str, k)))
    view.lines.append(f"overrides in force: {len(keys) or 'none'}")
    for key in keys:
        holders = [label for label, entries in per_node.items() if key in entries]
        entry = per_node[holders[0]][key]
        untils = [per_node[label][key].get("until") for label in holders]
        known = [u for u in untils if u is not None]
        until_differs = (len(known) not in (0, len(untils))) or (known and max(known) - min(known) > UNTIL_SLACK)
        differs = len(holders) != len(nodes) or bool(until_differs)
        on = "on all nodes" if len(holders) == len(nodes) else f"only on {', '.join(holders)}"
        view.lines.append(f"  {_describe_override(entry)} [{on}]{_mark(differs)}")
        if len(holders) != len(nodes):
            view.disagreements.append(f"override {entry.get('selector')} {entry.get('state')} "
                                      f"({entry.get('source')}) is {on}")
        elif until_differs:
            view.disagreements.append(f"override {entry.get('selector')}: its expiry differs between nodes")


def _compare_endpoints(nodes: Sequence[Node], view: FleetView) -> None:
    per_node = {n.label: _endpoints(n.health) for n in nodes}
    keys = sorted({k for eps in per_node.values() for k in eps})
    view.lines.append("endpoints (state and answered, per node):")
    width = max((len(f"{p}/{s} {a}") for _, p, s, a in keys), default=0)
    zone = None
    for key in keys:
        origin, pool, site, address = key
        if origin != zone:
            zone = origin
            view.lines.append(f"  {origin}")
        cells = {label: eps.get(key) for label, eps in per_node.items()}
        seen = {(c.get("state"), bool(c.get("answered"))) if c is not None else None for c in cells.values()}
        differs = len(seen) > 1
        row = "   ".join(f"{label}: {_endpoint_cell(c)}" for label, c in cells.items())
        view.lines.append(f"    {f'{pool}/{site} {address}':<{width}}  {row}{_mark(differs)}")
        if differs:
            view.disagreements.append(f"{origin} {pool}/{site} {address}: "
                                      + ", ".join(f"{label} {_endpoint_cell(c)}" for label, c in cells.items()))


def _probers(nodes: Sequence[Node], view: FleetView, now: float) -> None:
    regions = sorted({r for n in nodes for r in n.health.get("probers", {})})
    view.lines.append("prober regions (per node):")
    for region in regions:
        cells = {}
        for n in nodes:
            p = n.health.get("probers", {}).get(region)
            cells[n.label] = "never reported" if p is None else "live" if p.get("live") else \
                "BLIND" if p.get("blind") else f"SILENT {p.get('age', 0):.0f} s"
            if p is not None and p.get("standby"):
                cells[n.label] += ", stand-in " + ("counted" if p.get("counted") else "not counted")
        standby = all((n.health.get("probers", {}).get(region) or {}).get("standby") for n in nodes
                      if region in n.health.get("probers", {}))
        differs = len({c.split(",")[0] for c in cells.values()}) > 1 and not standby
        view.lines.append(f"  {region:<24} " + "   ".join(f"{label}: {c}" for label, c in cells.items())
                          + ("  <- differs" if differs else ""))
        if differs:
            view.warnings.append(f"prober region {region}: " + ", ".join(f"{k} {v}" for k, v in cells.items()))
    for n in nodes:
        for s in n.health.get("reports", {}).get("refused_from", []):
            if s.get("accepted_after"):
                continue
            who = f"region {s['region']}" if s.get("region") else "a prober naming no region"
            counts = ", ".join(f"{c} {r}" for r, c in sorted(s.get("refused", {}).items()))
            accepted = "none accepted since" if s.get("ever_accepted") else "never accepted"
            line = (f"node {n.label} refuses {who} from {s.get('peer') or '?'} ({accepted}; {counts}, last "
                    f"{now - s.get('last', now):.0f} s ago): {s.get('last_message', '')}")
            view.lines.append(f"  {line}")
            view.warnings.append(line)


def _proxies(nodes: Sequence[Node], view: FleetView) -> None:
    """Each regional proxy's reports as every node holds them (docs/proxy.md, "Reporting to DNS")."""
    names = sorted({p for n in nodes for p in n.health.get("proxies", {})})
    if not names:
        return
    view.lines.append("regional proxies (per node):")
    for name in names:
        cells = {}
        for n in nodes:
            x = n.health.get("proxies", {}).get(name)
            if x is None:
                cells[n.label] = "never reported"
                continue
            pools = ", ".join(f"{p} {v['healthy']}/{v['total']}" for p, v in sorted(x["pools"].items()))
            cells[n.label] = ("live" if x.get("live") else f"SILENT {x.get('age', 0):.0f} s") + f" ({pools})"
        differs = len({c.split(" ")[0] for c in cells.values()}) > 1
        view.lines.append(f"  {name:<24} " + "   ".join(f"{label}: {c}" for label, c in cells.items())
                          + ("  <- differs" if differs else ""))
        if differs:
            view.warnings.append(f"proxy {name}: " + ", ".join(f"{k} {v}" for k, v in cells.items()))


def render(view: FleetView) -> str:
    """The view as text, ending with one summary line."""
    lines = list(view.lines)
    if view.disagreements:
        lines.append(f"DISAGREE: {len(view.disagreements)} difference(s) between nodes:")
        lines += [f"  {d}" for d in view.disagreements]
    if view.warnings:
        lines.append(f"warnings: {len(view.warnings)}")
        lines += [f"  {w}" for w in view.warnings]
    if view.unreachable:
        lines.append(f"UNREACHABLE: {', '.join(view.unreachable)}")
    if not view.disagreements and not view.unreachable:
        lines.append(f"all {view.nodes} nodes agree")
    return "\n".join(lines)
