"""A real HTTP server for health tests: started, stopped and restarted on a fixed loopback address.

It runs aiohttp on its own event loop in a thread. `status` sets the answer of /healthz; clients whose
source address is in `deny` get 503, which is how a test makes one prober region see a site down.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading

from aiohttp import web


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for TCP and UDP, chosen below Linux's ephemeral range (32768-60999): a port picked
    there could be taken by some client connection's source port before the test binds it."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 32000)
        try:
            with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind((host, port))
                udp.bind((host, port))
            return port
        except OSError:
            continue


class LoopThread:
    """An event loop running in a daemon thread; `run(coro)` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class HttpSite(LoopThread):
    def __init__(self, host: str, port: int):
        super().__init__()
        self.host, self.port = host, port
        self.status = 200
        self.deny: set[str] = set()
        self.seen: list[tuple[str, str | None]] = []      # (peer address, Host header)
        self.runner: web.AppRunner | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        self.seen.append((peer, request.headers.get("Host")))
        if peer in self.deny:
            return web.Response(status=503, text="denied")
        return web.Response(status=self.status, text="ok healthy")

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _start(self) -> None:
        app = self.make_app()
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def start(self) -> HttpSite:
        self.run(self._start())
        return self

    def stop(self) -> None:
        """Close the listener and every connection: the site is gone (connection refused)."""
        self.run(self._stop())

    def close(self) -> None:
        self.stop()
        super().close()
