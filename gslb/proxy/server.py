"""Running the proxy: listeners (plain or TLS, SO_REUSEPORT), the admin API, reloads and draining."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import ssl
import tempfile

from aiohttp import web

from gslb.errors import ConfigError
from gslb.events import EventLog
from gslb.health.webhooks import Notifier
from gslb.proxy.admin import make_admin_app
from gslb.proxy.config import Listener, ProxyConfig, load_proxy_config
from gslb.proxy.core import Proxy
from gslb.proxy.http import ClientConnection
from gslb.proxy.reporter import ProxyReporter, routed_counts
from gslb.proxy.shared import WorkerShare, cleanup

log = logging.getLogger("gslb.proxy")


def tls_context(listener: Listener) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(listener.cert, listener.key)
    return ctx


def bind(listener: Listener) -> socket.socket:
    """A listening socket with SO_REUSEPORT, so several worker processes can share the port."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((listener.host, listener.port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class ProxyServer:
    """One process of `gslb proxy`."""

    def __init__(self, config: ProxyConfig, sockets: list[socket.socket] | None = None, admin: bool = True,
                 share: WorkerShare | None = None):
        self.config = config = with_secret(config)
        # Backend state changes (gslb/events.py): logged, kept for the admin API's /v1/events, sent to webhooks.
        self.events = EventLog(node=socket.gethostname())
        self.notifier = Notifier(config.notify)
        self.events.subscribe(self.notifier.submit)
        self.proxy = Proxy(config, self.events)
        self.proxy.share = share
        self.sockets = sockets
        self.with_admin = admin
        self.servers: list[asyncio.Server] = []
        self.admin_runner: web.AppRunner | None = None
        self.admin_address: tuple[str, int] | None = None
        self.addresses: list[tuple[str, int]] = []
        self._watch: asyncio.Task | None = None
        self._stamp = self._mtime()
        self.reporter: ProxyReporter | None = None     # report_to: pool state to DNS (the admin worker's)

    def _mtime(self) -> float | None:
        try:
            return os.stat(self.config.file).st_mtime
        except OSError:
            return None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        socks = self.sockets or [bind(listener) for listener in self.config.listen]
        for listener, sock in zip(self.config.listen, socks):
            tls = tls_context(listener) if listener.cert else None
            server = await loop.create_server(lambda tls=tls: ClientConnection(self.proxy, tls is not None),
                                              sock=sock, ssl=tls)
            self.servers.append(server)
            self.addresses.append(sock.getsockname()[:2])
            log.info("proxy listening on %s:%d%s", *sock.getsockname()[:2], " (tls)" if tls else "")
        await self.notifier.start()
        self.proxy.start_checks()
        self._sweep = asyncio.create_task(self.proxy.sweep())
        if self.with_admin:
            self.admin_runner = web.AppRunner(make_admin_app(lambda: self.proxy, lambda: self.reporter), access_log=None)
            await self.admin_runner.setup()
            site = web.TCPSite(self.admin_runner, *self.config.admin)
            await site.start()
            self.admin_address = site._server.sockets[0].getsockname()[:2]
            log.info("proxy admin on http://%s:%d", *self.admin_address)
        self._watch = asyncio.create_task(self._watch_file())
        await self._start_reporter()

    async def _start_reporter(self) -> None:
        """One process reports (with --workers, the admin worker: they all check the same backends)."""
        if self.config.report is None or not self.with_admin:
            return
        self.reporter = ProxyReporter(self.config.report, lambda: routed_counts(self.proxy.config, self.proxy.pools),
                                      self.events)
        await self.reporter.start()

    async def reload(self) -> bool:
        """Load the config file again; a broken file keeps the running config (every problem logged)."""
        try:
            config = load_proxy_config(self.config.file)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("%s", problem)
            log.error("proxy config %s not reloaded: keeping the running config", self.config.file)
            self.proxy.reopen_access_log(self.config.access_log)   # logrotate's SIGHUP still reopens it
            return False
        if not config.sticky_secret:    # keep the running random key: issued cookies stay valid
            config = dataclasses.replace(config, sticky_secret=self.config.sticky_secret)
        if config.listen != self.config.listen or config.admin != self.config.admin:
            log.warning("listen/admin changes need a restart; other changes applied")
        if config.notify != self.config.notify:       # new receivers: queued events for the old ones are dropped
            self.events.unsubscribe(self.notifier.submit)
            await self.notifier.stop()
            self.notifier = Notifier(config.notify)
            self.events.subscribe(self.notifier.submit)
            await self.notifier.start()
        report_changed = config.report != self.config.report
        self.config = config
        await self.proxy.reload(config)
        if report_changed:
            if self.reporter is not None:
                await self.reporter.stop()
                self.reporter = None
            await self._start_reporter()
        log.info("proxy config reloaded from %s", config.file)
        return True

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            stamp = self._mtime()
            if stamp != self._stamp:
                self._stamp = stamp
                await self.reload()

    async def shutdown(self) -> None:
        """Stop accepting, let requests in flight finish (up to drain_timeout), then close everything."""
        self.proxy.stopping = True
        if self.reporter is not None:          # DNS withdraws this proxy's sites before its listeners close
            await self.reporter.stop(draining=True)
        if self._watch:
            self._watch.cancel()
        self._sweep.cancel()
        for server in self.servers:
            server.close()
        deadline = asyncio.get_running_loop().time() + self.config.drain_timeout
        while any(c.exchange is not None for c in self.proxy.connections):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("drain_timeout: closing %d connections with requests in flight",
                            sum(1 for c in self.proxy.connections if c.exchange is not None))
                break
            await asyncio.sleep(0.05)
        for conn in list(self.proxy.connections):
            if conn.transport:
                conn.transport.close()
        for pool in self.proxy.pools.values():
            for backend in pool.backends:
                backend.close_idle()
        await self.proxy.stop_checks()
        await self.notifier.stop()
        if self.admin_runner:
            await self.admin_runner.cleanup()
        self.proxy.close_access_log()        # last: lines of requests answered while draining are in


def tune_gc() -> None:
    """Every request makes a few container objects (request, exchange, lists): with Python's default
    thresholds the cyclic collector runs every ~100 requests and scans everything made at start-up too.
    Freeze what exists once serving (config, app, modules: never garbage) and collect the young
    generation every 20,000 allocations instead of 700; about 6 % of the request path's CPU."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def with_secret(config: ProxyConfig) -> ProxyConfig:
    """Without `sticky_secret` (or `admin_token`), sticky cookies are signed with a random key per start."""
    if config.sticky_secret:
        return config
    return dataclasses.replace(config, sticky_secret=os.urandom(16).hex())


async def serve(config: ProxyConfig, sockets: list[socket.socket] | None = None, admin: bool = True,
                share: WorkerShare | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads."""
    server = ProxyServer(config, sockets, admin, share)
    await server.start()
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(server.reload()))
    await stop.wait()
    log.info("draining (up to %g s)", config.drain_timeout)
    await server.shutdown()
    return 0


def run(config_path: str, workers: int = 1) -> int:
    """`gslb proxy`: one process, or `workers` processes sharing the listeners with SO_REUSEPORT."""
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        config = load_proxy_config(config_path)
    except ConfigError as exc:
        print(exc)
        return 1
    if config.access_log is not None and config.access_log.path is not None:
        try:                                 # each worker opens it for itself; fail here, once, clearly
            os.close(os.open(config.access_log.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
        except OSError as exc:
            print(f"{config.file}: access_log {config.access_log.path}: cannot open it: {exc.strerror}")
            return 1
    if workers <= 1:
        return asyncio.run(serve(config))
    config = with_secret(config)          # before the fork: every worker accepts every worker's cookies
    directory = tempfile.mkdtemp(prefix="gslb-proxy-")
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            with contextlib.suppress(KeyboardInterrupt):
                code = asyncio.run(serve(config, admin=index == 0, share=WorkerShare(directory, index)))
            os._exit(code)
        children.append(pid)

    def forward(sig, _frame):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    cleanup(directory)
    return status
