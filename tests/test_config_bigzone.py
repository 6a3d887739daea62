"""Big zones: records in wire form, the zone handed over from the parser in slices, the table built in
steps. Each path must give what the one-go path gives."""

from __future__ import annotations

import asyncio

import dnslib
import pytest

from gslb.config import rdata, reloader
from gslb.config.regions import Regions
from gslb.config.zone import load_zone_file
from gslb.dns.table import BUILD_STEP, AnswerTable
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

NAMES = 3 * reloader.SLICE_NAMES + 7    # several slices and a partial one


def write_zone(path, names: int = NAMES) -> str:
    lines = ["origin: big.test.", "soa: {mname: ns1.big.test., rname: hostmaster.big.test.}",
             "pools:", "  web: {policy: weighted, check: null, sites: {a: {endpoints: [192.0.2.10, 2001:db8::10]}}}",
             "records:", '  "@": {NS: [ns1], MX: ["10 mail"], CAA: {flags: 0, tag: issue, value: ca.test}}',
             "  ns1: {A: 192.0.2.53}", "  mail: {A: 192.0.2.25, AAAA: 2001:DB8::25}",
             '  _sip._tcp: {SRV: {priority: 1, weight: 2, port: 5060, target: sip}}', "  sip: {A: 192.0.2.26}",
             "  alias: {CNAME: www}", "  www: {pool: web}", "  ptr: {PTR: host.example.}",
             f'  long: {{TXT: "{"x" * 300}"}}']
    for n in range(names):
        lines.append(f"  h{n}: {{pool: web}}" if n % 10 == 0 else f'  h{n}: {{A: 10.0.{n >> 8}.{n & 255}, TXT: "n {n}"}}')
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("rd, rtype", [
    (dnslib.A("192.0.2.1"), "A"), (dnslib.AAAA("2001:db8::1"), "AAAA"), (dnslib.NS("ns1.big.test."), "NS"),
    (dnslib.CNAME("www.big.test."), "CNAME"), (dnslib.PTR("host.example."), "PTR"),
    (dnslib.TXT([b"a" * 255, b"b"]), "TXT"), (dnslib.MX("mail.big.test.", 10), "MX"),
    (dnslib.SRV(1, 2, 5060, "sip.big.test."), "SRV"), (dnslib.CAA(0, "issue", "ca.test"), "CAA")])
def test_wire_form_gives_back_the_same_records(rd, rtype):
    wire = rdata.join([rdata.encode(rd), rdata.encode(rd)])
    assert rdata.decode(rtype, wire) == (rd, rd)
    assert [len(r) for r in rdata.records(wire)] == [2 + len(rdata.encode(rd))] * 2


def test_zone_records_read_as_written(tmp_path):
    zone = load_zone_file(write_zone(tmp_path / "z.yaml"), Regions.empty())
    rr = zone.rrsets
    assert rr["mail.big.test."]["AAAA"].rdatas == (dnslib.AAAA("2001:db8::25"),)   # written in capitals
    assert rr["h1.big.test."]["A"].rdatas == (dnslib.A("10.0.0.1"),)
    assert rr["long.big.test."]["TXT"].rdatas == (dnslib.TXT([b"x" * 255, b"x" * 45]),)
    assert rr["big.test."]["MX"].rdatas == (dnslib.MX("mail.big.test.", 10),)
    assert rr["_sip._tcp.big.test."]["SRV"].rdatas == (dnslib.SRV(1, 2, 5060, "sip.big.test."),)


@pytest.mark.parametrize("bad, says", [("010.0.0.1", "is not an IPv4 address"), ("10.0.0.256", "is not an IPv4"),
                                       ("10.0.0", "is not an IPv4")])
def test_addresses_the_fast_reading_refuses_are_still_judged(tmp_path, bad, says):
    path = tmp_path / "z.yaml"
    path.write_text("origin: big.test.\nsoa: {mname: ns1.big.test., rname: h.big.test.}\nrecords:\n"
                    f'  "@": {{NS: [ns1]}}\n  ns1: {{A: 192.0.2.53}}\n  www: {{A: "{bad}"}}\n')
    from gslb.errors import ConfigError
    with pytest.raises(ConfigError) as info:
        load_zone_file(str(path), Regions.empty())
    assert says in str(info.value.problems[0]) and info.value.problems[0].line == 6


def test_zone_in_slices_equals_the_zone(tmp_path):
    zone = load_zone_file(write_zone(tmp_path / "z.yaml"), Regions.empty())
    head, slices = reloader._pickle(zone)
    assert len(slices) > 3
    steps = list(reloader._unpickle(head, slices))
    assert steps[:-1] == [None] * len(slices)
    assert steps[-1] == zone
    assert asyncio.run(reloader._unpickle_async(head, slices)) == zone


def test_table_built_in_steps_answers_like_one_built_at_once(tmp_path):
    zone = load_zone_file(write_zone(tmp_path / "z.yaml"), Regions.empty())
    args = ({zone.origin: zone}, HealthSnapshot(), SteeringData(Regions.empty()), Locator(None))
    whole = AnswerTable(*args)
    steps = AnswerTable(*args, build=False)
    assert sum(1 for _ in steps.build_steps()) > NAMES // BUILD_STEP
    stepped = asyncio.run(AnswerTable.build_async(*args))
    for table in (steps, stepped):
        assert set(table._entries) == set(whole._entries) and len(whole._entries) > NAMES
        for key, entry in whole._entries.items():
            other = table._entries[key]
            assert (other.an, other.body, other.flags) == (entry.an, entry.body, entry.flags)


def test_name_count_is_the_number_of_names(tmp_path):
    zone = load_zone_file(write_zone(tmp_path / "z.yaml"), Regions.empty())
    assert zone.name_count == len(zone.names) == NAMES + 9   # 9 fixed owner names besides the hN
