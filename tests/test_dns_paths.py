"""The two DNS paths keep one contract: the fast path answers like the slow path or hands over, and
neither ever raises, whatever the bytes (style: aiohttp's parser twins, dnspython's fuzz tests)."""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.message
import pytest
from conftest import EXAMPLE_ZONE, REGIONS_YAML
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.dns.fast import answer_fast
from gslb.dns.slow import answer_slow
from gslb.dns.table import AnswerTable
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

NAMES = ["gslb.example.com", "www.gslb.example.com", "static.gslb.example.com", "alias.gslb.example.com",
         "nope.gslb.example.com", "a.wild.gslb.example.com", "wild.gslb.example.com", "ns2.gslb.example.com",
         "_sip._tcp.gslb.example.com", "mail.gslb.example.com", "example.org", "api.gslb.example.com"]
TYPES = ["A", "AAAA", "NS", "SOA", "TXT", "MX", "SRV", "CAA", "CNAME", "PTR", "HINFO", "DS"]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> AnswerTable:
    root = tmp_path_factory.mktemp("paths")
    (root / "zones").mkdir()
    (root / "zones" / "example.yaml").write_text(EXAMPLE_ZONE)
    (root / "regions.yaml").write_text(REGIONS_YAML)
    regions = load_regions(str(root / "regions.yaml"))
    return AnswerTable(load_zones(str(root / "zones"), regions), HealthSnapshot(), SteeringData(regions),
                       Locator(None))


def mixed_case(name: str, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NAMES), rdtype=st.sampled_from(TYPES), seed=st.integers(0, 2**16 - 1),
       edns=st.sampled_from([None, 0]), payload=st.sampled_from([512, 1232, 4096]), do=st.booleans(),
       ecs=st.sampled_from([None, "193.0.0.0/24", "2001:db8::/48", "0.0.0.0/0"]))
def test_fast_path_answers_exactly_like_the_slow_path(table, name, rdtype, seed, edns, payload, do, ecs):
    options = []
    if ecs and edns is not None:
        address, prefix = ecs.split("/")
        options = [dns.edns.ECSOption(address, int(prefix))]
    q = dns.message.make_query(mixed_case(name, seed), rdtype, use_edns=edns, payload=payload,
                               want_dnssec=do and edns is not None, options=options)
    q.id = seed
    wire = q.to_wire()
    fast = answer_fast(table, wire, "127.0.0.1", False)
    slow = answer_slow(table, wire, "127.0.0.1", False)
    assert slow is not None
    if fast is not None:
        if name.startswith(("www.", "api.")) and rdtype in ("A", "AAAA"):
            # pool answers draw at random: compare everything but the chosen records
            fr, sr = dns.message.from_wire(fast), dns.message.from_wire(slow)
            assert (fr.id, fr.flags, fr.rcode(), len(fr.answer), fr.question) == \
                   (sr.id, sr.flags, sr.rcode(), len(sr.answer), sr.question)
        else:
            assert fast == slow
    response = dns.message.from_wire(slow)
    assert response.id == seed and response.question[0].name.to_text().rstrip(".") == mixed_case(name, seed)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_random_bytes_never_raise(table, data):
    for handler in (answer_fast, answer_slow):
        out = handler(table, data, "127.0.0.1", False)
        assert out is None or (isinstance(out, bytes) and len(out) >= 12)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flip=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
       name=st.sampled_from(NAMES), rdtype=st.sampled_from(TYPES))
def test_mutated_queries_never_raise_and_responses_parse(table, flip, name, rdtype):
    q = dns.message.make_query(name, rdtype, use_edns=0,
                               options=[dns.edns.ECSOption("193.0.0.0", 24)]).to_wire()
    data = bytearray(q)
    for pos, value in flip:
        if pos < len(data):
            data[pos] = value
    data = bytes(data)
    for handler in (answer_fast, answer_slow):
        out = handler(table, data, "127.0.0.1", False)
        if out is not None:
            header = struct.unpack_from("!HHHHHH", out)
            assert header[0] == struct.unpack_from("!H", data)[0]     # the ID is echoed
            assert header[1] & 0x8000                                 # QR set: it is a response
            if (out[2] >> 3) & 0xF == 0:
                # well formed (dnspython reads other opcodes, e.g. UPDATE, with rules of their own)
                dns.message.from_wire(out, ignore_trailing=False)
