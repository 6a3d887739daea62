"""`gslb check [PATH]`: validate zone files (and optionally the server config and the latency table);
`gslb check --proxy FILE`: a proxy config. Print every problem as file:line: message and exit 1."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from gslb.config.latency import load_latency_table
from gslb.config.overrides import FILE_NAME as OVERRIDES_FILE
from gslb.config.overrides import load_overrides, selector_problems
from gslb.config.regions import load_regions
from gslb.config.server import load_server_config
from gslb.config.zone import load_zones
from gslb.errors import ConfigError, Problem
from gslb.proxy.config import load_proxy_config


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="validate zone files (exit 1 and print file:line for every problem)")
    p.add_argument("path", nargs="?", default=None,
                   help="a zone file or a directory of them (default: the config's zones, else ./zones)")
    p.add_argument("--data", default=None, metavar="DIR", help="regions.yaml and latency.yaml (default ./data)")
    p.add_argument("--config", default=None, metavar="FILE", help="also check this server config")
    p.add_argument("--proxy", default=None, metavar="FILE",
                   help="check this proxy config (alone, unless a zone path or --config is given too)")
    return p


def _collect(problems: list[Problem], load, *args):
    """Run a loader; its problems join the list instead of stopping the check."""
    try:
        return load(*args)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None


def _check_proxy(path: str) -> int:
    """`gslb check --proxy FILE`: the proxy config as `gslb proxy` would read it."""
    try:
        config = load_proxy_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} found")
        return 1
    print(f"{path}: ok: {len(config.pools)} pools, {len(config.routes)} routes")
    return 0


def run(args: argparse.Namespace) -> int:
    status = _check_proxy(args.proxy) if args.proxy else 0
    if args.proxy and args.path is None and args.config is None:
        return status
    return max(status, _check_zones(args))


def _check_zones(args: argparse.Namespace) -> int:
    problems: list[Problem] = []
    config = _collect(problems, load_server_config, args.config) or load_server_config(None)
    if args.data:
        config = dataclasses.replace(config, data=args.data)
    regions = _collect(problems, load_regions, config.regions_path)
    _collect(problems, load_latency_table, config.latency_path)
    path = args.path or config.zones
    if os.path.basename(path) == OVERRIDES_FILE and os.path.isfile(path):
        path = os.path.dirname(path) or "."       # `gslb check zones/overrides.yaml`: against its zones
    zone_problems = len(problems)
    zones = _collect(problems, load_zones, path, regions, config.limits) or {}
    overrides = _check_overrides(path, zones, problems, zones_ok=len(problems) == zone_problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
        return 1
    for zone in sorted(zones.values(), key=lambda z: z.origin):
        print(f"{zone.file}: ok: {zone.origin} ({len(zone.names)} names, {len(zone.pools)} pools)")
    if overrides is not None:
        now = time.time()
        expired = [f"{o.selector} (line {o.line})" for o in overrides if not o.active(now)]
        print(f"{overrides_path(path)}: ok: {len(overrides)} overrides"
              + (f"; expired, no longer applied: {', '.join(expired)}" if expired else ""))
    _print_amplification(zones, regions, config)
    return 0


def overrides_path(zones_path: str) -> str:
    return os.path.join(zones_path, OVERRIDES_FILE)


def _check_overrides(zones_path: str, zones, problems: list[Problem], zones_ok: bool):
    """overrides.yaml of a zones directory: its own problems, and (when the zones loaded cleanly) each
    selector that matches no pool, site or endpoint. None when there is no such file."""
    if not os.path.isdir(zones_path) or not os.path.exists(overrides_path(zones_path)):
        return None
    overrides = _collect(problems, load_overrides, overrides_path(zones_path))
    if overrides is not None and zones_ok:
        problems.extend(selector_problems(overrides, zones))
    return overrides


def _print_amplification(zones, regions, config) -> None:
    """The largest UDP answer over its query, and what RRL lets one prefix reflect (docs/security.md)."""
    from gslb.dns.amplification import worst_answer
    worst = worst_answer(zones, regions) if zones else None
    if worst is None:
        return
    asked = "EDNS payload 1232" if worst.edns else "no EDNS"
    rrl = config.rrl
    limit = (f"rrl: at most {rrl.responses_per_second} answers/s per /{rrl.ipv4_prefix} (IPv4), "
             f"{rrl.responses_per_second * worst.answer_size // 1000} kB/s" if rrl.enabled else "rrl: off")
    print(f"largest UDP answer: {worst.name} {worst.qtype} ({asked}): {worst.answer_size} bytes for a "
          f"{worst.query_size}-byte query, amplification {worst.factor:.1f}x ({worst.names_checked} names checked; "
          f"{limit})")
