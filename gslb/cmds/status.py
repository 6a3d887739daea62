"""`gslb status`: the health a running server believes, per pool, site, endpoint and prober region."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("status", help="show the health a running server believes (GET /v1/health)")
    p.add_argument("--api", default="http://127.0.0.1:8053", help="the server's API (default http://127.0.0.1:8053)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    return p


def _rtt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def render(health: dict) -> str:
    """The /v1/health document as text, one line per endpoint and one per region's view."""
    lines = [f"server region {health['region']}, health version {health['version']}"
             + (", FAIL OPEN (no prober reporting)" if health["fail_open"] else "")]
    for region, p in sorted(health["probers"].items()):
        lines.append(f"  prober {region}: {'live' if p['live'] else 'SILENT'}, last report {p['age']:.1f} s ago, "
                     f"{p['targets']} targets")
    for zone in health["zones"]:
        for pool in zone["pools"]:
            lines.append(f"{zone['origin']} pool {pool['name']} ({pool['policy']}, check {pool['check'] or 'none'})")
            for site in pool["sites"]:
                lines.append(f"  site {site['name']}" + (f" status {site['status']}" if site["status"] != "auto" else ""))
                for e in site["endpoints"]:
                    answered = "answered" if e["answered"] else "NOT answered"
                    lines.append(f"    {e['address']:<24} {e['state']:<9} {answered} ({e['why']}) {e['reason']}")
                    for region, v in sorted(e["regions"].items()):
                        error = f" error: {v['error']}" if v["error"] else ""
                        lines.append(f"      {region:<20} {v['state']:<8} rtt {_rtt(v['rtt_ms'])}{error}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    url = f"{args.api.rstrip('/')}/v1/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            health = json.load(resp)
    except (urllib.error.URLError, OSError) as exc:
        print(f"gslb status: cannot read {url}: {exc}")
        return 1
    print(json.dumps(health, indent=2) if args.json else render(health))
    return 0
