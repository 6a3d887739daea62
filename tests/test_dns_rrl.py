"""Response rate limiting over real UDP/TCP sockets from several loopback sources (issue 13, item 5):
a burst from one /24 is limited with some TC=1 answers, TCP never is, another /24 and exempt sources
are unaffected; plus the limiter's arithmetic, bounded memory and the `rrl:` config."""

from __future__ import annotations

import socket
import time
import urllib.request

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from conftest import EXAMPLE_ZONE
from metricsutil import samples, value

from gslb.config.rrl import DEFAULT_EXEMPT, RateLimitSettings
from gslb.config.server import load_server_config
from gslb.dns.rrl import DROP, PASS, SLIP, RateLimiter
from gslb.errors import ConfigError

RRL = """\
rrl:
  responses_per_second: 5
  burst: 5
  slip: 2
  exempt: [127.0.0.3/32]
"""


@pytest.fixture
def srv(serve):
    return serve({"example.yaml": EXAMPLE_ZONE}, config_yaml=RRL)


def burst(srv, source: str, count: int) -> list[dns.message.Message]:
    """Send `count` queries at once from `source`, wait until the server has handled them all, and
    return the replies that came (dropped ones do not)."""
    handler = srv.server.handler
    rrl = handler.rate_limit

    def handled() -> int:
        return sum(handler.responses[0]) + rrl.dropped

    before = handled()
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)   # room for every reply
        sock.bind((source, 0))
        for i in range(count):
            q = dns.message.make_query("static.gslb.example.com", "A", use_edns=0)
            q.id = i
            sock.sendto(q.to_wire(), (srv.host, srv.port))
        deadline = time.monotonic() + 5
        while handled() - before < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handled() - before == count, "the server did not handle every query in time"
        sock.settimeout(0.5)
        for _ in range(count):
            try:
                replies.append(dns.message.from_wire(sock.recv(65535)))
            except TimeoutError:
                break
    return replies


def test_a_burst_from_one_prefix_is_limited_with_some_truncated_answers(srv):
    """40 queries at once from 127.0.0.2 with 5/s and burst 5: about 5 full answers; of the rest every
    2nd is a TC=1 answer without records (no larger than the query), the others get nothing."""
    rrl = srv.server.handler.rate_limit
    replies = burst(srv, "127.0.0.2", 40)
    full = [r for r in replies if not r.flags & dns.flags.TC]
    slipped = [r for r in replies if r.flags & dns.flags.TC]
    assert 5 <= len(full) <= 7                  # the burst, plus what 5/s refills while the test sends
    assert len(slipped) == rrl.slipped and len(slipped) >= 15
    assert rrl.dropped + rrl.slipped == 40 - len(full) and rrl.dropped >= 15
    for r in slipped:
        assert not r.answer and not r.authority and r.question[0].name.to_text() == "static.gslb.example.com."
        assert len(r.to_wire()) <= 52
    assert all(len(r.answer[0]) == 2 for r in full)


def test_tcp_is_never_limited(srv):
    """A prefix over its UDP limit still gets every answer over TCP (where slipped clients retry)."""
    burst(srv, "127.0.0.2", 30)
    for _ in range(20):
        q = dns.message.make_query("static.gslb.example.com", "A")
        r = dns.query.tcp(q, srv.host, port=srv.port, timeout=2, source="127.0.0.2")
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0]) == 2
    assert srv.server.handler.responses[1][0] >= 20


def test_another_prefix_is_not_affected(srv):
    """While 127.0.0.0/24 is limited, 127.0.1.0/24 gets its full burst of full answers."""
    burst(srv, "127.0.0.2", 30)
    replies = burst(srv, "127.0.1.2", 5)
    assert len(replies) == 5 and not any(r.flags & dns.flags.TC for r in replies)


def test_an_exempt_source_is_never_limited(srv):
    """127.0.0.3/32 is exempt: 60 queries, 60 full answers, even beside a limited neighbour."""
    burst(srv, "127.0.0.2", 30)
    replies = burst(srv, "127.0.0.3", 60)
    assert len(replies) == 60 and not any(r.flags & dns.flags.TC for r in replies)


def test_metrics_show_dropped_and_slipped(srv):
    burst(srv, "127.0.0.2", 30)
    rrl = srv.server.handler.rate_limit
    host, port = srv.api
    text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    s = samples(text)
    assert value(s, "gslb_dns_rrl_limited_total", action="dropped") == rrl.dropped
    assert value(s, "gslb_dns_rrl_limited_total", action="slipped") == rrl.slipped
    assert rrl.dropped > 0 and rrl.slipped > 0
    assert ("gslb_dns_malformed_total", frozenset()) in s and value(s, "gslb_dns_malformed_total") == 0


def test_loopback_is_exempt_by_default(serve):
    """Default config: RRL on (200/s), loopback exempt, so a local benchmark is not limited."""
    srv = serve({"example.yaml": EXAMPLE_ZONE})
    rrl = srv.server.handler.rate_limit
    assert rrl is not None and rrl.settings.exempt == DEFAULT_EXEMPT
    replies = burst(srv, "127.0.0.2", 250)                  # more than the default burst of 200
    assert (rrl.dropped, rrl.slipped) == (0, 0)
    assert len(replies) == 250 and not any(r.flags & dns.flags.TC for r in replies)


def test_off_when_responses_per_second_is_zero(serve):
    srv = serve({"example.yaml": EXAMPLE_ZONE}, config_yaml="rrl: {responses_per_second: 0}\n")
    assert srv.server.handler.rate_limit is None


# --- the limiter on its own, with a clock we move ---------------------------------------------------

def limiter(**kw) -> tuple[RateLimiter, list[int]]:
    now = [10**12]
    settings = RateLimitSettings(**{"exempt": (), **kw})
    return RateLimiter(settings, clock=lambda: now[0]), now


def test_gcra_allows_the_burst_then_the_rate():
    rrl, now = limiter(responses_per_second=10, burst=3, slip=2)
    assert [rrl.verdict("192.0.2.1") for _ in range(7)] == [PASS] * 3 + [DROP, SLIP, DROP, SLIP]
    now[0] += 100_000_000                                       # 1/10 s later: exactly one more
    assert [rrl.verdict("192.0.2.200") for _ in range(2)] == [PASS, DROP]   # same /24
    now[0] += 10**9                                             # a quiet second refills the burst
    assert [rrl.verdict("192.0.2.9") for _ in range(4)] == [PASS, PASS, PASS, SLIP]
    assert (rrl.dropped, rrl.slipped) == (3, 3)


def test_prefix_lengths_and_ipv6():
    rrl, _ = limiter(responses_per_second=1, burst=1, slip=0, ipv4_prefix=16, ipv6_prefix=56)
    assert [rrl.verdict(ip) for ip in ("198.51.1.1", "198.51.2.2")] == [PASS, DROP]          # same /16
    assert [rrl.verdict(ip) for ip in ("2001:db8:0:1::1", "2001:db8:0:ff::2")] == [PASS, DROP]  # same /56
    assert rrl.verdict("2001:db8:0:100::1") == PASS                                          # next /56
    assert rrl.verdict("fe80::1%eth0") == PASS


def test_buckets_are_per_question_case_folded():
    """Like nsd and BIND: the same answer to the same network is limited, not every answer to it; a
    query that differs only in ID or letter case (0x20) shares the bucket."""
    rrl, _ = limiter(responses_per_second=1, burst=1, slip=0)
    www = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01"
    www_again = b"\x56\x78" + www[2:12] + www[12:].replace(b"www", b"WwW")
    mail = www[:12] + www[12:].replace(b"www", b"mx1")
    assert [rrl.verdict("192.0.2.1", www), rrl.verdict("192.0.2.2", www_again)] == [PASS, DROP]
    assert rrl.verdict("192.0.2.3", mail) == PASS                # another question: its own bucket


def test_exempt_networks():
    rrl, _ = limiter(responses_per_second=1, burst=1, slip=0, exempt=("192.0.2.0/28", "2001:db8::/32"))
    assert {rrl.verdict("192.0.2.5") for _ in range(5)} == {PASS}
    assert {rrl.verdict("2001:db8:1::5") for _ in range(5)} == {PASS}
    assert [rrl.verdict("192.0.2.17") for _ in range(2)] == [PASS, DROP]


def test_memory_stays_bounded_under_a_spoofed_flood():
    """300,000 different /24s (a spoofed flood) with room for 1,000: the table never grows past it."""
    rrl, now = limiter(responses_per_second=1, burst=1, max_prefixes=1000)
    peak = 0
    for i in range(300_000):
        rrl.verdict(f"{10 + i % 200}.{(i // 200) % 256}.{i // 51200}.1")
        now[0] += 1000
        peak = max(peak, len(rrl.buckets), len(rrl._keys))
    assert peak <= 1000


# --- config -----------------------------------------------------------------------------------------

def test_config_keys(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text("rrl:\n  responses_per_second: 50\n  slip: 1\n  ipv4_prefix: 32\n  ipv6_prefix: 64\n"
                    "  exempt: [10.0.0.0/8, '2001:db8::/32']\n  max_prefixes: 5000\n")
    rrl = load_server_config(str(path)).rrl
    assert rrl == RateLimitSettings(50, 50, 1, 32, 64, ("10.0.0.0/8", "2001:db8::/32"), 5000)


def test_config_problems_name_file_and_line(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text("rrl:\n  responses_per_second: -1\n  slip: yes\n  exempt: [10.0.0.0/8, nonsense]\n  burstt: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_server_config(str(path))
    text = str(exc.value)
    for expected in (":2: rrl responses_per_second: -1, expected a whole number 0..1000000",
                     ":3: rrl slip: True, expected a whole number 0..100",
                     ":4: rrl exempt: 'nonsense' is not an address or CIDR",
                     ":5: rrl burstt: unknown key"):
        assert expected in text, text


# --- amplification: what RRL bounds -----------------------------------------------------------------

BIG_TXT_ZONE = """\
origin: amp.example.
ttl: 300
soa: {mname: ns1.amp.example., rname: hostmaster.amp.example., minimum: 60}
records:
  "@": {NS: [ns1.amp.example.]}
  ns1: {A: 192.0.2.53}
  t: {TXT: [AAAA, BBBB, CCCC, DDDD]}
""".replace("AAAA", "a" * 250).replace("BBBB", "b" * 250).replace("CCCC", "c" * 250).replace("DDDD", "d" * 250)


def test_gslb_check_prints_the_worst_amplification(tmp_path):
    """`gslb check` names the largest UDP answer and its factor: a 1 kB TXT set under EDNS 1232 answers a
    ~30-byte query with ~1,050 bytes (over 25x); without EDNS it would be truncated to 512."""
    import subprocess
    import sys
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "amp.yaml").write_text(BIG_TXT_ZONE)
    from conftest import REGIONS_YAML
    (tmp_path / "regions.yaml").write_text(REGIONS_YAML)
    out = subprocess.run([sys.executable, "-m", "gslb", "check", str(zones), "--data", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("largest UDP answer"))
    assert line.startswith("largest UDP answer: t.amp.example. TXT (EDNS payload 1232): ")
    factor = float(line.split("amplification ")[1].split("x")[0])
    assert 25 < factor < 40 and "rrl: at most 200 answers/s per /24" in line
