"""Batched UDP (gslb/dns/udpbatch.py): the C twin, the pure-Python twin and asyncio's datagram path
answer the same bytes over real UDP, with the same rate limiting, counters and query log; and each twin
on its own (empty socket, several senders, a 5,000-byte query, None replies)."""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import pytest
from conftest import EXAMPLE_ZONE

from gslb.dns import udpbatch, udpbatch_py
from gslb.dns.udpbatch import BATCH, BATCHES_PER_EVENT, UdpModeError, udp_mode

MODES = [pytest.param("c", marks=pytest.mark.skipif(not udpbatch.C_AVAILABLE, reason="C twin not built")),
         "python", "asyncio"]
TWINS = [pytest.param("c", marks=pytest.mark.skipif(not udpbatch.C_AVAILABLE, reason="C twin not built")),
         "python"]
NAMES = ["static.gslb.example.com", "gslb.example.com", "nope.gslb.example.com", "mail.gslb.example.com"]


def twin(name: str):
    return udpbatch._c.Batch if name == "c" else udpbatch_py.Batch


def queries(count: int) -> list[bytes]:
    """`count` deterministic queries (no pool name: a pool's pick is random), IDs 0..count-1, some with
    EDNS and ECS, one in ten a junk datagram (FORMERR or dropped)."""
    out = []
    for i in range(count):
        if i % 10 == 9:
            out.append(struct.pack("!H", i) + b"\x00\x00\x00\x01" + bytes(i % 7))   # header cut short
            continue
        options = [dns.edns.ECSOption(f"193.0.{i % 256}.0", 24)] if i % 3 == 0 else []
        q = dns.message.make_query(NAMES[i % len(NAMES)], "A" if i % 2 else "SOA", use_edns=0 if i % 4 else None,
                                   options=options)
        q.id = i
        out.append(q.to_wire())
    return out


def handled(srv) -> int:
    h = srv.server.handler
    rrl = h.rate_limit
    return sum(h.responses[0]) + h.dropped + (rrl.dropped if rrl else 0)


def exchange(srv, packets: list[bytes], source: str = "127.0.0.1", chunk: int = 200) -> dict[int, bytes]:
    """Send the packets from one socket in chunks (each waited for), return the replies by ID."""
    replies: dict[int, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((source, 0))
        for start in range(0, len(packets), chunk):
            before = handled(srv)
            part = packets[start:start + chunk]
            for p in part:
                sock.sendto(p, (srv.host, srv.port))
            deadline = time.monotonic() + 5
            while handled(srv) - before < len(part) and time.monotonic() < deadline:
                time.sleep(0.005)
            assert handled(srv) - before == len(part), "the server did not handle every query in time"
        sock.settimeout(0.3)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            replies[struct.unpack_from("!H", data)[0]] = data
    return replies


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_answers_the_same_bytes_and_counts_alike(serve, monkeypatch, caplog, mode):
    """600 queries (every tenth junk) in bursts of 200: each well-formed one is answered with exactly the
    bytes the Handler gives for it, junk is answered FORMERR or dropped like on every path, and the
    response counters, the per-query counters and the query log see each query once."""
    monkeypatch.setenv("GSLB_DNS_UDP", mode)
    caplog.set_level("INFO", logger="gslb.query")
    srv = serve({"example.yaml": EXAMPLE_ZONE}, config_yaml="query_log: true\nhealth: {report_interval: 30}\n")
    assert isinstance(srv.server._closers[0], udpbatch.BatchedUdp) == (mode != "asyncio")
    packets = queries(600)
    replies = exchange(srv, packets)
    h = srv.server.handler
    expected = {}
    for i, p in enumerate(packets):
        out = srv.call(h, p, "127.0.0.1", False)     # the same handler, called directly afterwards
        if out is not None:
            expected[i] = out
    assert replies == expected
    assert len(expected) >= 540
    assert sum(h.responses[0]) == 2 * len(expected) and h.dropped == 2 * (600 - len(expected))
    logged = [r for r in caplog.records if r.name == "gslb.query"]
    assert len(logged) == 2 * len(expected)
    stats = srv.server.dns_stats
    assert sum(n for key, n in stats.queries.items() if not key & 1) >= 2 * 540


@pytest.mark.parametrize("mode", MODES)
def test_rate_limiting_is_the_same_in_every_mode(serve, monkeypatch, mode):
    """40 identical queries at once from 127.0.0.2 with 5/s, burst 5, slip 2: about 5 answers, every
    second limited one slipped (TC=1), the rest dropped; 127.0.0.3 (exempt) is never limited."""
    monkeypatch.setenv("GSLB_DNS_UDP", mode)
    srv = serve({"example.yaml": EXAMPLE_ZONE},
                config_yaml="rrl: {responses_per_second: 5, burst: 5, slip: 2, exempt: [127.0.0.3/32]}\n")
    q = dns.message.make_query("static.gslb.example.com", "A", use_edns=0)
    packets = []
    for i in range(40):
        q.id = i
        packets.append(q.to_wire())
    got = [dns.message.from_wire(r) for r in exchange(srv, packets, source="127.0.0.2").values()]
    full = [r for r in got if not r.flags & dns.flags.TC]
    rrl = srv.server.handler.rate_limit
    assert 5 <= len(full) <= 7
    assert len(got) - len(full) == rrl.slipped >= 15
    assert rrl.dropped + rrl.slipped == 40 - len(full)
    assert len(exchange(srv, packets, source="127.0.0.3")) == 40


@pytest.mark.parametrize("mode", MODES)
def test_replies_go_to_their_own_sender_and_a_big_query_is_whole(serve, monkeypatch, mode):
    """Three senders interleaved in one burst each get exactly their own IDs back; a 5,000-byte query
    (EDNS padding) is read whole, not cut at a buffer's size, and answered."""
    monkeypatch.setenv("GSLB_DNS_UDP", mode)
    srv = serve({"example.yaml": EXAMPLE_ZONE})
    socks = []
    for n in (1, 4, 5):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{n}", 0))
        s.settimeout(2)
        socks.append(s)
    try:
        q = dns.message.make_query("static.gslb.example.com", "A")
        for i in range(150):
            q.id = i
            socks[i % 3].sendto(q.to_wire(), (srv.host, srv.port))
        for k, s in enumerate(socks):
            ids = sorted(struct.unpack_from("!H", s.recv(512))[0] for _ in range(50))
            assert ids == list(range(k, 150, 3))
        big = dns.message.make_query("static.gslb.example.com", "A", use_edns=0, payload=1232,
                                     options=[dns.edns.GenericOption(12, bytes(5000))])
        big.id = 4242
        socks[0].sendto(big.to_wire(max_size=65535), (srv.host, srv.port))
        r = dns.message.from_wire(socks[0].recv(2048))
        assert r.id == 4242 and r.rcode() == 0 and r.answer
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("which", TWINS)
def test_each_twin_on_its_own(which):
    """recv() on an empty socket is [], replies follow the senders of the last recv() (None skipped),
    more replies than queries is a ValueError, IPv6 senders are named like asyncio names them."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    batch = twin(which)(server.fileno(), 8)
    a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    try:
        assert batch.recv() == []
        for i in range(10):
            (a if i % 2 else b).sendto(bytes([i]) * 20, server.getsockname())
        deadline = time.monotonic() + 2
        got = []
        while len(got) < 10 and time.monotonic() < deadline:
            part = batch.recv()
            assert len(part) <= 8
            got += part
            assert batch.send([data[:1] if data[0] != 4 else None for data, _ in part]) == \
                sum(1 for data, _ in part if data[0] != 4)
        assert sorted(data[0] for data, _ in got) == list(range(10))
        assert {ip for _, ip in got} == {"127.0.0.1"}
        a.settimeout(1)
        b.settimeout(1)
        assert sorted(a.recv(10)[0] for _ in range(5)) == [1, 3, 5, 7, 9]
        assert sorted(b.recv(10)[0] for _ in range(4)) == [0, 2, 6, 8]       # 4 had no reply
        with pytest.raises(ValueError):
            batch.send([b"x"] * 11)
        with pytest.raises(ValueError):
            twin(which)(server.fileno(), 0)
    finally:
        if which == "python":
            batch.detach()
        for s in (server, a, b):
            s.close()
    six = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    six.bind(("::1", 0))
    batch = twin(which)(six.fileno(), 4)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as c:
        c.sendto(b"hello", six.getsockname())
        deadline = time.monotonic() + 2
        got = []
        while not got and time.monotonic() < deadline:
            got = batch.recv()
        assert got == [(b"hello", "::1")]
        batch.send([b"back"])
        c.settimeout(1)
        assert c.recv(10) == b"back"
    if which == "python":
        batch.detach()
    six.close()


def test_a_flood_is_drained_in_bounded_turns_and_fully_answered(serve, monkeypatch):
    """More queries than one readiness event takes (BATCH x BATCHES_PER_EVENT) are all answered."""
    monkeypatch.setenv("GSLB_DNS_UDP", "c" if udpbatch.C_AVAILABLE else "python")
    srv = serve({"example.yaml": EXAMPLE_ZONE})
    q = dns.message.make_query("static.gslb.example.com", "A")
    count = BATCH * BATCHES_PER_EVENT + 300
    packets = []
    for i in range(count):
        q.id = i
        packets.append(q.to_wire())
    assert len(exchange(srv, packets, chunk=count)) == count


def test_udp_mode_names_a_bad_value(monkeypatch):
    monkeypatch.setenv("GSLB_DNS_UDP", "turbo")
    with pytest.raises(UdpModeError, match="GSLB_DNS_UDP='turbo' is not one of auto, c, python, asyncio") as caught:
        udp_mode()
    assert isinstance(caught.value, ValueError)     # gslb serve: "cannot start: ...", exit 1
    monkeypatch.setenv("GSLB_DNS_UDP", "auto")
    assert udp_mode() == ("c" if udpbatch.C_AVAILABLE else "asyncio")
