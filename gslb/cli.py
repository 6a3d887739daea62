"""The `gslb` command: one function per verb (serve, check, explain, probe, status, proxy)."""

from __future__ import annotations

import argparse
import sys


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the authoritative DNS server (and the embedded prober)")
    p.add_argument("--zones", default=None, help="directory of zone YAML files (default ./zones)")
    p.add_argument("--listen", action="append", default=None, metavar="ADDR:PORT",
                   help="DNS address, UDP and TCP; repeatable; IPv6 as [::1]:5353 (default 127.0.0.1:5353)")
    p.add_argument("--api", default=None, metavar="ADDR:PORT", help="HTTP API address (default 127.0.0.1:8053)")
    p.add_argument("--data", default=None, metavar="DIR", help="GeoIP database and region data (default ./data)")
    p.add_argument("--config", default=None, metavar="FILE", help="server config YAML (see docs/server.md)")


def _add_proxy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="run the regional L7 HTTP reverse proxy")
    p.add_argument("--config", required=True, metavar="FILE", help="proxy YAML (see docs/proxy.md)")
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gslb", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True)
    _add_serve(sub)
    _add_proxy(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gslb` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.verb == "proxy":
        from gslb.proxy.server import main as proxy_main
        return proxy_main(args)
    if args.verb == "serve":
        from gslb.server import serve
        return serve(args)
    print(f"gslb: unknown verb {args.verb}", file=sys.stderr)
    return 2
