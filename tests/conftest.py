"""Shared fixtures: a real gslb DNS server on loopback, running in a background thread.

`run_server(zones={"name.yaml": text}, ...)` writes the zone files into a temp dir and starts the same
`gslb.server.Server` that `gslb serve` runs, on ephemeral UDP/TCP ports; tests talk to it with real
clients (dnspython, dig) over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from gslb.config.server import ServerConfig, load_server_config
from gslb.server import Server

REPO = Path(__file__).resolve().parent.parent

REGIONS_YAML = """\
regions:
  us-east-1: {lat: 38.9, lon: -77.4, continent: NA, country: US}
  us-west-2: {lat: 45.8, lon: -119.7, continent: NA, country: US}
  eu-west-1: {lat: 53.3, lon: -6.3, continent: EU, country: IE}
  ap-southeast-1: {lat: 1.35, lon: 103.82, continent: AS, country: SG}
"""


class RunningServer:
    """A started Server plus helpers to query it."""

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop, zone_dir: Path):
        self.server = server
        self.loop = loop
        self.zone_dir = zone_dir
        self.host, self.port = server.dns_addresses[0]
        self.api = server.api_address

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False, ecs: str | None = None,
              use_edns: int | bool = 0, payload: int = 1232, source: str | None = None,
              timeout: float = 2.0, **kw) -> dns.message.Message:
        """One query with dnspython; `ecs` is a subnet like "193.0.0.0/24"."""
        options = []
        if ecs is not None:
            address, prefix = ecs.split("/")
            options.append(dns.edns.ECSOption(address, int(prefix)))
        q = dns.message.make_query(name, rdtype, use_edns=use_edns if not options else 0, payload=payload,
                                   options=options, **kw)
        q.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout)
        return dns.query.udp(q, self.host, port=self.port, timeout=timeout, source=source,
                             ignore_trailing=False)

    def call(self, fn, *args):
        """Run a plain function on the server's event loop thread and return its result."""
        return asyncio.run_coroutine_threadsafe(_as_coro(fn, *args), self.loop).result(10)


async def _as_coro(fn, *args):
    return fn(*args)


def write_zones(directory: Path, zones: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in zones.items():
        (directory / name).write_text(textwrap.dedent(text))


@contextlib.contextmanager
def running_server(tmp: Path, zones: dict[str, str], *, config_yaml: str | None = None,
                   geoip: str | None = None, listen: tuple[str, ...] = ("127.0.0.1:0",),
                   regions_yaml: str = REGIONS_YAML, latency_yaml: str | None = None) -> Iterator[RunningServer]:
    zone_dir, data_dir = tmp / "zones", tmp / "data"
    write_zones(zone_dir, zones)
    data_dir.mkdir(exist_ok=True)
    (data_dir / "regions.yaml").write_text(regions_yaml)
    if latency_yaml is not None:
        (data_dir / "latency.yaml").write_text(latency_yaml)
    config = ServerConfig()
    if config_yaml is not None:
        (tmp / "server.yaml").write_text(textwrap.dedent(config_yaml))
        config = load_server_config(str(tmp / "server.yaml"))
    if config.health.state_dir == "state":       # the default is relative to the working directory
        config = dataclasses.replace(config, health=dataclasses.replace(config.health, state_dir=str(tmp / "state")))
    config = dataclasses.replace(config, zones=str(zone_dir), data=str(data_dir), listen=listen,
                                 api="127.0.0.1:0", geoip=geoip or os.path.join(data_dir, "none.mmdb"),
                                 reload_interval=0.2)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = Server(config)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield RunningServer(server, loop, zone_dir)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture
def serve(tmp_path):
    """Start servers for a test: `srv = serve({"z.yaml": TEXT}, ...)`; stopped after the test."""
    stack = contextlib.ExitStack()
    counter = iter(range(1000))

    def start(zones: dict[str, str], **kw) -> RunningServer:
        return stack.enter_context(running_server(tmp_path / f"s{next(counter)}", zones, **kw))

    with stack:
        yield start


@pytest.fixture
def backends():
    """Start real HTTP backends for proxy tests: `a, b = backends("a", "b")`; closed after the test."""
    from proxyharness import Backend
    made = []

    def make(*names: str) -> list:
        new = [Backend(n) for n in names]
        made.extend(new)
        return new

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def proxy(tmp_path):
    """Run `gslb proxy` configurations in this process: `px = proxy(yaml_text)`; shut down after the test."""
    from proxyharness import ProxyRunner
    runners = []

    def make(yaml_text: str):
        runner = ProxyRunner(tmp_path, yaml_text)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.close()


EXAMPLE_ZONE = (REPO / "zones" / "gslb.example.com.yaml").read_text()


def rrset_texts(msg: dns.message.Message, section: str = "answer") -> list[str]:
    """Records of a section as sorted 'name ttl type rdata' strings, for exact comparisons."""
    out = []
    for rrset in getattr(msg, section):
        for rd in rrset:
            out.append(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}")
    return sorted(out)
