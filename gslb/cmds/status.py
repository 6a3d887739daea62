"""`gslb status`: the health a running server believes, per pool, site, endpoint and prober region."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

from gslb.api.health import render_text
from gslb.cmds.apiclient import api_request


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("status", help="show the health a running server believes (GET /v1/health)")
    p.add_argument("--api", default="http://127.0.0.1:8053", help="the server's API (default http://127.0.0.1:8053)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    return p


def run(args: argparse.Namespace) -> int:
    url = f"{args.api.rstrip('/')}/v1/health"
    try:
        with urllib.request.urlopen(api_request(url), timeout=5) as resp:
            health = json.load(resp)
    except (urllib.error.URLError, OSError) as exc:
        print(f"gslb status: cannot read {url}: {exc}")
        return 1
    print(json.dumps(health, indent=2) if args.json else render_text(health))
    return 0
