"""`gslb check [PATH]`: validate zone files; print every problem as file:line: message."""

from __future__ import annotations

import argparse
import os

from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="validate zone files (exit 1 and print file:line for every problem)")
    p.add_argument("path", nargs="?", default="zones", help="a zone file or a directory of them (default ./zones)")
    p.add_argument("--data", default="data", metavar="DIR", help="where regions.yaml is (default ./data)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        regions = load_regions(os.path.join(args.data, "regions.yaml"))
        zones = load_zones(args.path, regions)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} found")
        return 1
    for zone in sorted(zones.values(), key=lambda z: z.origin):
        print(f"{zone.file}: ok: {zone.origin} ({len(zone.names)} names, {len(zone.pools)} pools)")
    return 0
