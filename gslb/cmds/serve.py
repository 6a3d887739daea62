"""`gslb serve`: run the authoritative DNS server, the embedded prober and the HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket

from gslb import logs
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
    p.add_argument("--query-log", action="store_true",
                   help="log one line per query: client, name, type, rcode, ECS subnet, country, addresses answered")
    p.add_argument("--query-log-sample", type=int, metavar="N",
                   help="with --query-log: log one query in N (default 1, every query)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="DNS processes sharing the ports (default 1); the first also probes and serves the API")
    return p


def _install_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _run(config, children: tuple[int, ...] = (), **roles) -> int:
    from gslb.server import Server
    server = Server(config, **roles)
    server.worker_pids = children         # POST /v1/reload reaches the workers too
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if children:
        def reload_all() -> None:                # SIGHUP: every worker reloads its zones too
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)
            asyncio.ensure_future(server.reload_async(force=True))
        loop.add_signal_handler(signal.SIGHUP, reload_all)
    await stop.wait()
    log.info("stopping")
    await server.stop()
    return 0


def _run_workers(config) -> int:
    """Fork `workers - 1` DNS-only processes; this one probes, serves the API and feeds them health."""
    from gslb.dns.server import parse_listen
    if any(parse_listen(text)[1] == 0 for text in config.listen):
        raise ValueError("--workers needs fixed ports in --listen (port 0 cannot be shared)")
    pairs = [socket.socketpair() for _ in range(config.workers - 1)]
    children = []
    for _, worker_end in pairs:
        pid = os.fork()
        if pid == 0:
            for other_main, other_worker in pairs:
                other_main.close()
                if other_worker is not worker_end:
                    other_worker.close()
            code = 1
            try:
                code = asyncio.run(_run(config, feed=worker_end))
            except BaseException:
                log.exception("DNS worker failed")
            finally:
                os._exit(code)
        children.append(pid)
        worker_end.close()

    try:
        return asyncio.run(_run(config, tuple(children), workers=[main for main, _ in pairs]))
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_server_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 1
    overrides = {k: v for k, v in {
        "zones": args.zones, "data": args.data, "api": args.api,
        "listen": tuple(args.listen) if args.listen else None,
        "query_log": True if args.query_log else None, "workers": args.workers,
        "query_log_sample": args.query_log_sample}.items() if v is not None}
    if overrides.get("query_log_sample", 1) < 1:
        print("--query-log-sample: expected N >= 1 (one query in N is logged)")
        return 1
    if overrides.get("api") == "off":
        overrides["api"] = None
    config = dataclasses.replace(config, **overrides)
    logs.set_node(config.node_id)          # JSON log lines name this node
    log.info("event loop: %s", _install_loop())
    try:
        if config.workers > 1:
            return _run_workers(config)
        return asyncio.run(_run(config))
    except (OSError, ValueError, ConfigError) as exc:
        log.error("cannot start: %s", exc)
        return 1
