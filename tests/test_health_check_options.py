"""Check options against real servers: headers (from the environment) and User-Agent, expect ranges, tcp
send/expect, the health file (`type: file`), and what the target key holds for per-endpoint check_address."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest
from aiohttp import web
from httpsite import free_port

from gslb import __version__
from gslb.config.model import Check, Endpoint, Pool, Site, Target
from gslb.health import extfile
from gslb.health.checks import TCP_READ_LIMIT, probe
from gslb.health.report import target_id
from gslb.health.statefile import target_from_key, target_key


@pytest.fixture
async def recorder():
    """An HTTP server that records each request's headers; /status/N answers N (no redirect target)."""
    seen: list[dict[str, str]] = []

    async def status(request):
        seen.append(dict(request.headers))
        return web.Response(status=int(request.match_info["code"]), text="x")

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, seen
    await runner.cleanup()


async def test_headers_from_the_environment_and_the_default_user_agent(recorder, monkeypatch):
    port, seen = recorder
    monkeypatch.setenv("GSLB_TEST_TOKEN", "s3cret-1")
    check = Check(type="http", port=port, path="/status/200",
                  headers=(("Authorization", "Bearer ${GSLB_TEST_TOKEN}"), ("X-Plain", "cost $$5")))
    r = await probe(Target("127.0.0.1", check))
    assert r.ok, r.error
    assert seen[-1]["Authorization"] == "Bearer s3cret-1"
    assert seen[-1]["X-Plain"] == "cost $5"
    assert seen[-1]["User-Agent"] == f"gslb/{__version__}"
    # The value is read at each check: a rotated secret is sent without a reload, and it is not in the key.
    monkeypatch.setenv("GSLB_TEST_TOKEN", "s3cret-2")
    assert (await probe(Target("127.0.0.1", check))).ok
    assert seen[-1]["Authorization"] == "Bearer s3cret-2"
    assert "s3cret" not in target_key(Target("127.0.0.1", check))


async def test_user_agent_is_sent_as_given(recorder, monkeypatch):
    port, seen = recorder
    monkeypatch.setenv("GSLB_TEST_NODE", "node-7")
    r = await probe(Target("127.0.0.1", Check(type="http", port=port, path="/status/200",
                                              user_agent="Mozilla/5.0 (${GSLB_TEST_NODE})")))
    assert r.ok and seen[-1]["User-Agent"] == "Mozilla/5.0 (node-7)"


async def test_a_variable_missing_on_the_prober_is_a_prober_error_and_nothing_is_sent(recorder, monkeypatch):
    port, seen = recorder
    monkeypatch.delenv("GSLB_TEST_ABSENT", raising=False)
    check = Check(type="http", port=port, path="/status/200", headers=(("X-Token", "${GSLB_TEST_ABSENT}"),))
    r = await probe(Target("127.0.0.1", check))
    assert not r.ok and r.local
    assert r.error.endswith("environment variable GSLB_TEST_ABSENT is not set on this prober")
    assert seen == []


@pytest.mark.parametrize("expect, status, ok", [
    ((200, "3xx"), 200, True),
    ((200, "3xx"), 301, True),                # a redirect is accepted, not followed
    ((200, "3xx"), 399, True),
    ((200, "3xx"), 204, False),
    ((200, "3xx"), 404, False),
    (("2xx",), 204, True),
    (("2xx",), 300, False),
    (("200-204", 418), 203, True),
    (("200-204", 418), 205, False),
    (("200-204", 418), 418, True),
])
async def test_expect_codes_classes_and_ranges(recorder, expect, status, ok):
    port, _ = recorder
    r = await probe(Target("127.0.0.1", Check(type="http", port=port, path=f"/status/{status}", expect=expect)))
    assert r.ok is ok, r.error
    if not ok:
        shown = ", ".join(str(e) for e in expect)
        assert r.error == f"GET http://127.0.0.1:{port}/status/{status}: {status}, expected {shown}"


@pytest.fixture
async def tcp_service():
    """A line service: PING -> +PONG, anything else -> -ERR; a banner port; a mute port; a flood port."""
    received: list[bytes] = []

    async def pinger(reader, writer):
        line = await reader.readline()
        received.append(line)
        writer.write(b"+PONG\r\n" if line.strip() == b"PING" else b"-ERR unknown command\r\n")
        await writer.drain()
        writer.close()

    async def banner(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    async def mute(reader, writer):
        await asyncio.sleep(5)
        writer.close()

    async def flood(reader, writer):
        try:
            for _ in range(100):
                writer.write(b"x" * 1024)
                await writer.drain()
        except OSError:
            pass
        writer.close()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (pinger, banner, mute, flood)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    yield ports, received
    for s in servers:
        s.close()


async def test_tcp_send_and_expect_text(tcp_service):
    (pinger, *_), received = tcp_service
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=pinger, send="PING\r\n", expect_text="+PONG")))
    assert r.ok, r.error
    assert received == [b"PING\r\n"] and r.rtt_ms is not None
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=pinger, send="HELLO\r\n", expect_text="+PONG")))
    assert not r.ok
    assert r.error == f"tcp 127.0.0.1:{pinger}: reply b'-ERR unknown command\\r\\n' does not contain '+PONG'"


async def test_tcp_expect_regex_on_a_banner_without_send(tcp_service):
    (_, banner, *_), _ = tcp_service
    start = time.monotonic()
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=banner, expect_regex=r"^SSH-2\.0-", timeout=2)))
    assert r.ok, r.error
    assert time.monotonic() - start < 1.0          # done at the match, not when the peer closes
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=banner, expect_regex=r"^220 ", timeout=0.3)))
    assert not r.ok and r.timed_out and "no reply matching '^220 ' within 0.3 s" in r.error


async def test_tcp_expect_reads_a_bounded_amount(tcp_service):
    (_, _, mute, flood), _ = tcp_service
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=flood, expect_text="READY", timeout=2)))
    assert not r.ok and not r.timed_out
    assert "does not contain 'READY'" in r.error and r.error.count("x") <= 70   # quoted briefly
    assert TCP_READ_LIMIT == 8192
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=mute, send="PING\r\n", expect_text="+PONG",
                                              timeout=0.3)))
    assert not r.ok and r.timed_out


async def test_tcp_send_without_expect_only_needs_the_connection(tcp_service):
    (pinger, *_), received = tcp_service
    r = await probe(Target("127.0.0.1", Check(type="tcp", port=pinger, send="PING\r\n")))
    assert r.ok
    deadline = time.monotonic() + 2
    while not received and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert received == [b"PING\r\n"]


def _file_check(path, **kw) -> Check:
    return Check(type="file", path=str(path), rise=1, fall=1, **kw)


async def test_file_source_states_reasons_and_missing_addresses(tmp_path):
    path = tmp_path / "health.txt"
    path.write_text("# from the monitoring system\n192.0.2.10 up\n192.0.2.11 DOWN  disk full on db-2\n"
                    "2001:DB8::10 up\n")
    up = await probe(Target("192.0.2.10", _file_check(path)))
    down = await probe(Target("192.0.2.11", _file_check(path)))
    six = await probe(Target("2001:db8::10", _file_check(path)))
    assert up.ok and six.ok
    assert not down.ok and not down.local and down.error == f"health file {path}:3: 192.0.2.11 down: disk full on db-2"
    keep = await probe(Target("192.0.2.99", _file_check(path)))
    assert not keep.ok and keep.abstain and not keep.local
    assert (await probe(Target("192.0.2.99", _file_check(path, missing="up")))).ok
    gone = await probe(Target("192.0.2.99", _file_check(path, missing="down")))
    assert not gone.ok and not gone.abstain


async def test_file_source_keeps_the_last_good_contents(tmp_path, caplog):
    path = tmp_path / "health.txt"
    never = await probe(Target("192.0.2.10", _file_check(tmp_path / "absent.txt")))
    assert not never.ok and never.local and "absent.txt: no such file or directory" in never.error
    path.write_text("192.0.2.10 down\n")
    assert not (await probe(Target("192.0.2.10", _file_check(path)))).ok
    caplog.set_level(logging.WARNING, "gslb.health")
    _rewrite(path, "192.0.2.10 up\n192.0.2.11 sideways\n")
    r = await _probe_after_refresh(Target("192.0.2.10", _file_check(path)))
    assert not r.ok and "the file's newer version is not used" in r.error      # the last good state holds
    assert f"{path}:2: state 'sideways', expected up or down" in caplog.text
    os.unlink(path)
    r = await _probe_after_refresh(Target("192.0.2.10", _file_check(path)))
    assert not r.ok and "no such file" in r.error
    _rewrite(path, "192.0.2.10 up\n")
    assert (await _probe_after_refresh(Target("192.0.2.10", _file_check(path)))).ok


def _rewrite(path, text: str) -> None:
    """Write and rename, as a monitoring system should (a reader never sees half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _probe_after_refresh(target: Target):
    await asyncio.sleep(extfile.STAT_EVERY * 1.5)     # the file is looked at most every STAT_EVERY s
    return await probe(target)


@pytest.mark.parametrize("text, line, what", [
    ("192.0.2.1 up\nnot-an-ip up\n", 2, "'not-an-ip' is not an IP address"),
    ("192.0.2.1\n", 1, "expected ADDRESS STATE [reason], got '192.0.2.1'"),
    ("\n# c\n192.0.2.1 up\n192.0.2.1 down\n", 4, "192.0.2.1 is listed twice (also line 3)"),
    ("192.0.2.1 maybe\n", 1, "state 'maybe', expected up or down"),
])
def test_file_problems_name_the_line(text, line, what):
    with pytest.raises(extfile.FileProblem) as info:
        extfile.parse(text, "/h.txt")
    assert str(info.value) == f"/h.txt:{line}: {what}"


def test_check_address_is_part_of_the_target_key():
    check = Check(type="http", port=80, path="/healthz")
    plain = Endpoint("192.0.2.1")
    via = Endpoint("192.0.2.2", check_address="10.0.0.2", check_port=8080)
    other_port = Endpoint("192.0.2.3", check_address="10.0.0.2", check_port=8081)
    pool = Pool("web", (Site("a", (plain, via, other_port)),), check=check)
    targets = pool.targets()
    assert [(t.address, t.check.effective_port) for t in targets] == [
        ("192.0.2.1", 80), ("10.0.0.2", 8080), ("10.0.0.2", 8081)]
    assert len({target_id(t) for t in targets}) == 3
    assert pool.target_of(via) == targets[1] and target_from_key(target_key(targets[1])) == targets[1]


def test_new_fields_at_their_defaults_keep_the_old_target_key():
    """A prober of the previous release computes ids without the new fields: the ids must not move."""
    check = Check(type="http", port=80, path="/healthz")
    old = ('{"address": "192.0.2.1", "check": {"body": null, "expect": [200], "fall": 2, "host": null, '
           '"interval": 1.0, "method": "GET", "path": "/healthz", "port": 80, "query": null, "query_type": "A", '
           '"rise": 2, "sni": null, "timeout": 1.0, "tls_verify": true, "type": "http"}}')
    assert target_key(Target("192.0.2.1", check)) == old
    with_headers = Target("192.0.2.1", Check(type="http", port=80, headers=(("X-A", "${B}"),)))
    assert target_from_key(target_key(with_headers)) == with_headers


async def test_an_address_the_file_does_not_list_keeps_its_state_and_the_prober_still_votes(tmp_path):
    """missing: keep is no news: not a failure (the state holds) and not a prober error (not blind)."""
    from gslb.health.prober import Prober

    path = tmp_path / "health.txt"
    path.write_text("192.0.2.10 up\n")
    listed = Target("192.0.2.10", Check(type="file", path=str(path), interval=0.2, rise=1, fall=1))
    unlisted = Target("192.0.2.11", Check(type="file", path=str(path), interval=0.2, rise=1, fall=1))
    prober = Prober("test", lambda region, views: None, report_interval=0.1)
    await prober.start()
    try:
        prober.set_targets([listed, unlisted])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and prober.views()[unlisted].error is None:
            await asyncio.sleep(0.02)
        await asyncio.sleep(prober.blind_after() + 0.2)
        views = prober.views()
        assert views[listed].state == "up"
        assert views[unlisted].state == "unknown" and views[unlisted].error == f"192.0.2.11 is not in {path}"
        assert views[unlisted].prober_error is None and prober.status().blind is None
        _rewrite(path, "192.0.2.10 up\n192.0.2.11 down maintenance\n")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and prober.views()[unlisted].state != "down":
            await asyncio.sleep(0.02)
        assert prober.views()[unlisted].state == "down"
    finally:
        await prober.stop()
