"""Webhooks (notify:) against a real receiver on loopback: events delivered as signed JSON, retried once the
receiver comes back, DNS answered as fast while the receiver hangs, a full queue dropping its oldest; and
the config's mistakes reported with file:line."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import time

import pytest
from aiohttp import web
from httpsite import LoopThread, free_port
from test_events import TOKEN, api

from gslb.config.notify import NotifyTarget
from gslb.config.server import load_server_config
from gslb.errors import ConfigError
from gslb.events import EventLog
from gslb.health.signing import HEADER, verify
from gslb.health.webhooks import Notifier

SECRET = "webhook-secret-0123456789"
ZONE = """\
origin: wh.test.
soa: {mname: ns1.wh.test., rname: h.wh.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {pool: web}
pools:
  web:
    policy: failover
    check: null
    sites:
      a: {lat: 0, lon: 0, endpoints: [10.0.1.1]}
      b: {lat: 0, lon: 0, endpoints: [10.0.2.1]}
"""


class Receiver(LoopThread):
    """A webhook receiver: records each POST; `hang` makes it never answer."""

    def __init__(self, port: int):
        super().__init__()
        self.port = port
        self.hang = False
        self.got: list[tuple[dict, bytes]] = []
        self.runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            await asyncio.sleep(3600)
        self.got.append((dict(request.headers), body))
        return web.Response(text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    def start(self) -> Receiver:
        self.run(self._start())
        return self

    def close(self) -> None:
        if self.runner is not None:
            self.run(self.runner.cleanup())
        super().close()


@pytest.fixture
def receiver_port():
    return free_port()


@pytest.fixture
def receivers():
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def config(port: int, events: str = "[override.*]", timeout: float = 5) -> str:
    return (f"api: {{token: {TOKEN}}}\nhealth: {{report_interval: 30}}\nnotify:\n"
            f"  - {{url: 'http://127.0.0.1:{port}/hook', events: {events}, secret: {SECRET}, timeout: {timeout}}}\n")


def drain(srv, site: str = "b", reason: str = "CHG-1 hook test", state: str = "down") -> None:
    status, body = api(srv, "/v1/overrides", {"selector": f"web/{site}", "state": state, "reason": reason})
    assert status == 200, body


def wait(condition, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {limit} s: {what}")


def test_an_event_is_posted_as_signed_json_to_the_receiver(serve, receiver_port, receivers):
    receivers.append(receiver := Receiver(receiver_port).start())
    srv = serve({"wh.yaml": ZONE}, config_yaml=config(receiver_port))
    drain(srv)
    wait(lambda: receiver.got, 5, "the override.set event delivered")
    headers, body = receiver.got[0]
    event = json.loads(body)
    assert (event["kind"], event["pool"], event["site"], event["reason"]) == ("override.set", "web", "b", "CHG-1 hook test")
    assert headers["X-Gslb-Event"] == "override.set" and headers["X-Gslb-Event-Id"] == str(event["id"])
    assert verify(SECRET, body, headers[HEADER]) is None                 # signed like a prober report
    assert verify("another-secret-0123456789", body, headers[HEADER]) == "bad signature"
    assert event["node"] == srv.server.config.node_id
    # The receiver asked for override.* only: zone.loaded (at start) and others never reach it.
    assert {json.loads(b)["kind"] for _, b in receiver.got} == {"override.set"}


def test_a_dead_receiver_gets_the_event_once_it_is_back(serve, receiver_port, receivers, caplog):
    caplog.set_level(logging.WARNING, logger="gslb.notify")
    srv = serve({"wh.yaml": ZONE}, config_yaml=config(receiver_port))
    hook = srv.server.notifier.receivers[0]
    drain(srv, "b", "first")
    drain(srv, "a", "second")
    wait(lambda: hook.failed >= 2, 5, "two failed attempts (nothing listens)")
    assert hook.delivered == 0 and len(hook.queue) == 2
    failures = [r for r in caplog.records if r.name == "gslb.notify"]
    assert len(failures) == 1 and "retrying" in failures[0].getMessage()      # one line, not one per attempt
    receivers.append(receiver := Receiver(receiver_port).start())
    wait(lambda: len(receiver.got) == 2, 10, "both events delivered after the receiver came back")
    assert [json.loads(b)["reason"] for _, b in receiver.got] == ["first", "second"]       # in order
    assert all(verify(SECRET, b, h[HEADER]) is None for h, b in receiver.got)        # re-stamped on each attempt
    assert hook.delivered == 2 and not hook.queue


def test_dns_is_answered_as_fast_while_the_receiver_hangs(serve, receiver_port, receivers):
    receivers.append(receiver := Receiver(receiver_port).start())
    receiver.hang = True
    srv = serve({"wh.yaml": ZONE}, config_yaml=config(receiver_port, events="['*']", timeout=30))
    for i in range(20):
        drain(srv, "b", f"flap {i}", "down" if i % 2 else "up")       # site a keeps answering
    hook = srv.server.notifier.receivers[0]
    wait(lambda: len(hook.queue) >= 20, 5, "events queued behind the hanging request")
    slowest = 0.0
    for _ in range(200):
        started = time.monotonic()
        assert srv.query("www.wh.test", "A").answer
        slowest = max(slowest, time.monotonic() - started)
    print(f"slowest of 200 DNS queries while the receiver hangs: {slowest * 1000:.1f} ms")
    assert slowest < 0.5
    assert receiver.got == [] and hook.delivered == 0


async def test_a_full_queue_drops_its_oldest_and_counts_it():
    port = free_port()
    notifier = Notifier((NotifyTarget(f"http://127.0.0.1:{port}/hook", ("zone.*",), None, 0.2),), queue_size=3)
    await notifier.start()
    try:
        events = EventLog()
        events.subscribe(notifier.submit)
        for i in range(6):
            events.emit(logging.getLogger("gslb.test"), "zone.loaded", f"z{i}", zone=f"z{i}.")
        events.emit(logging.getLogger("gslb.test"), "endpoint.withdrawn", "not wanted", address="192.0.2.1")
        hook = notifier.receivers[0]
        assert [e.zone for e in hook.queue][-2:] == ["z4.", "z5."]
        assert hook.dropped >= 3 and len(hook.queue) <= 3
        assert all(e.kind == "zone.loaded" for e in hook.queue)
    finally:
        await notifier.stop()


@pytest.mark.parametrize(("notify", "message"), [
    ("  - {url: 'ftp://x/'}", "3: notify url: 'ftp://x/', expected http://HOST[:PORT]/PATH"),
    ("  - {url: 'http://x/', events: [endpoint.gone]}", "3: notify events: 'endpoint.gone' matches no event kind"),
    ("  - {url: 'http://x/', secret: '${GSLB_TEST_UNSET_SECRET}'}",
     "3: notify secret: environment variable GSLB_TEST_UNSET_SECRET is not set"),
    ("  - {url: 'http://x/', retries: 3}", "3: notify: unknown key 'retries'"),
])
def test_notify_mistakes_are_reported_with_file_and_line(tmp_path, notify, message):
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent("api: {listen: off}\nnotify:\n") + notify + "\n")
    with pytest.raises(ConfigError) as caught:
        load_server_config(str(path))
    assert f"{path}:{message}" in str(caught.value)


def test_notify_reads_a_secret_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GSLB_TEST_HOOK_SECRET", "s3cret")
    path = tmp_path / "server.yaml"
    path.write_text("notify:\n  - {url: 'https://hooks.example/x', events: endpoint.*, secret: '${GSLB_TEST_HOOK_SECRET}'}\n")
    (target,) = load_server_config(str(path)).notify
    assert (target.secret, target.events, target.wants("endpoint.withdrawn"), target.wants("zone.loaded")) == \
        ("s3cret", ("endpoint.*",), True, False)
