"""`gslb proxy`: the regional L7 HTTP reverse proxy (docs/proxy.md)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("proxy", help="run the regional L7 HTTP reverse proxy")
    p.add_argument("--config", required=True, metavar="FILE", help="proxy YAML (docs/proxy.md)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the listeners with SO_REUSEPORT (default 1; the first serves the admin API)")
    return p


def run(args: argparse.Namespace) -> int:
    from gslb.proxy.server import run as run_proxy
    return run_proxy(args.config, args.workers)
