"""`gslb serve`: run the authoritative DNS server, the embedded prober and the HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal

from gslb.config.server import load_server_config
from gslb.errors import ConfigError

log = logging.getLogger("gslb.serve")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="run the authoritative DNS server (and the embedded prober)")
    p.add_argument("--zones", metavar="DIR", help="directory of zone YAML files (default ./zones)")
    p.add_argument("--listen", action="append", metavar="ADDR:PORT",
                   help="DNS address, UDP and TCP; repeatable; IPv6 as [::1]:5353 (default 127.0.0.1:5353)")
    p.add_argument("--api", metavar="ADDR:PORT", help="HTTP API address, or 'off' (default 127.0.0.1:8053)")
    p.add_argument("--data", metavar="DIR", help="GeoIP database, regions.yaml, latency.yaml (default ./data)")
    p.add_argument("--config", metavar="FILE", help="server config YAML (docs/server.md)")
    p.add_argument("--query-log", action="store_true", help="log one line per query")
    return p


def _install_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(config) -> int:
    from gslb.server import Server
    server = Server(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        config = load_server_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    overrides = {k: v for k, v in {
        "zones": args.zones, "data": args.data, "api": args.api,
        "listen": tuple(args.listen) if args.listen else None,
        "query_log": True if args.query_log else None}.items() if v is not None}
    if overrides.get("api") == "off":
        overrides["api"] = None
    config = dataclasses.replace(config, **overrides)
    log.info("event loop: %s", _install_loop())
    try:
        return asyncio.run(_run(config))
    except (OSError, ValueError, ConfigError) as exc:
        log.error("cannot start: %s", exc)
        return 1
