"""Real backends and a real `gslb proxy` for proxy tests, each on its own event loop thread.

`Backend(name)` is an aiohttp server answering `name` on every path, with knobs: `status`, `delay`,
`/big/N` streams N bytes, `/echo` returns the request body's length and sha256, `/headers` returns the
request headers as JSON, `/ws` is a WebSocket echo. `ProxyRunner(yaml_text)` runs ProxyServer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from aiohttp import WSMsgType, web
from httpsite import HttpSite, LoopThread, free_port

from gslb.proxy.config import load_proxy_config
from gslb.proxy.server import ProxyServer


class Backend(HttpSite):
    """A backend answering its name; see the module docstring for its paths and knobs."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int | None = None):
        super().__init__(host, port or free_port(host))
        self.name = name
        self.health_status = 200
        self.delay = 0.0
        self.hits = 0
        self.peers: set[tuple] = set()      # the proxy's connections that brought requests (source address, port)
        self.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _any(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if self.delay:
            await asyncio.sleep(self.delay)
        path = request.path
        if path.startswith("/big/"):
            size = int(path.split("/")[2])
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            block = b"y" * 65536
            sent = 0
            while sent < size:
                piece = block[:min(65536, size - sent)]
                await resp.write(piece)
                sent += len(piece)
            await resp.write_eof()
            return resp
        if path == "/echo":
            digest, total = hashlib.sha256(), 0
            async for piece in request.content.iter_any():
                digest.update(piece)
                total += len(piece)
            return web.json_response({"length": total, "sha256": digest.hexdigest(), "backend": self.name})
        if path == "/headers":
            return web.json_response({"backend": self.name, "headers": dict(request.headers)})
        return web.Response(status=self.status, text=self.name)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health_status, text="health")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(f"hello from {self.name}")
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"echo {msg.data}")
        return ws

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/ws", self._ws)
        app.router.add_route("*", "/{tail:.*}", self._any)
        return app


class ProxyRunner(LoopThread):
    def __init__(self, tmp: Path, yaml_text: str):
        super().__init__()
        self.path = tmp / "proxy.yaml"
        self.path.write_text(yaml_text)
        self.server = ProxyServer(load_proxy_config(str(self.path)))
        self.run(self.server.start())
        self.host, self.port = self.server.addresses[0]
        self.admin = self.server.admin_address

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin[0]}:{self.admin[1]}"

    def reload(self, yaml_text: str) -> bool:
        self.path.write_text(yaml_text)
        return self.run(self.server.reload())

    def close(self) -> None:
        self.run(self.server.shutdown())
        super().close()


def config(backends: list[Backend], *, algorithm: str = "round_robin", extra_pool: str = "", top: str = "",
           routes: str = "  - {default: true, pool: app}\n") -> str:
    """A proxy YAML with one pool `app` over the given backends, listening on free ports."""
    items = ", ".join(f'{{address: "{b.address}"}}' for b in backends)
    return (f"listen: [127.0.0.1:{free_port()}]\nadmin: 127.0.0.1:{free_port()}\naccess_log: false\n"
            f"admin_token: tok\n{top}pools:\n  app:\n    algorithm: {algorithm}\n    backends: [{items}]\n"
            f"{extra_pool}routes:\n{routes}")


def as_json(text: str) -> dict:
    return json.loads(text)


class RawBackend(LoopThread):
    """A backend that speaks raw bytes: `handler(reader, writer)` runs for each connection, so a test can
    send what no HTTP server would (headers without end, a reset before any byte)."""

    def __init__(self, handler):
        super().__init__()

        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass                      # the proxy gave up on us (or the test ended): what these tests want
            finally:
                writer.close()

        self.connections = 0
        self.server = self.run(asyncio.start_server(guarded, "127.0.0.1", 0))
        self.host, self.port = self.server.sockets[0].getsockname()[:2]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for task in asyncio.all_tasks():        # handlers still running (a backend sending forever)
                if task is not asyncio.current_task():
                    task.cancel()

        self.run(stop())
        super().close()
