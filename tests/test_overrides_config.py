"""overrides.yaml as a file: selectors, entries, file:line problems, `gslb check` against the zones, and the
precedence table of the resolution (API over file, more specific over less, down over up)."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap

import pytest
from conftest import REGIONS_YAML, REPO

from gslb.config.overrides import (
    Override,
    SelectorError,
    load_overrides,
    parse_duration,
    parse_selector,
    parse_time,
    selector_problems,
)
from gslb.config.regions import load_regions
from gslb.config.zone import load_zones, zone_files
from gslb.health.overrides import resolve

ZONE_A = """\
origin: a.test.
soa: {mname: ns1.a.test., rname: h.a.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {pool: web}
pools:
  web:
    policy: failover
    check: null
    sites:
      eu: {lat: 50, lon: 8, endpoints: [10.1.0.1, 10.1.0.2, "2001:db8::1"]}
      us: {lat: 40, lon: -75, endpoints: [10.2.0.1]}
"""
ZONE_B = ZONE_A.replace("a.test.", "b.test.").replace("10.1.0.2", "10.9.0.2")


@pytest.fixture
def zones_dir(tmp_path):
    d = tmp_path / "zones"
    d.mkdir()
    (d / "a.yaml").write_text(ZONE_A)
    (d / "b.yaml").write_text(ZONE_B)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "regions.yaml").write_text(REGIONS_YAML)
    return d


def write(d, text: str) -> str:
    path = d / "overrides.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_selectors_parse_to_their_canonical_form():
    assert str(parse_selector("web")) == "web"
    assert str(parse_selector("web/eu")) == "web/eu"
    assert str(parse_selector("web/eu/10.1.0.1")) == "web/eu/10.1.0.1"
    assert parse_selector("web/eu/10.1.0.0/16").network == ipaddress.ip_network("10.1.0.0/16")
    assert str(parse_selector("web/eu/10.1.0.7/16")) == "web/eu/10.1.0.0/16"           # host bits dropped
    assert str(parse_selector("A.Test:web/eu")) == "a.test.:web/eu"                     # origin, final dot
    assert str(parse_selector("*/*/2001:DB8::1")) == "*/*/2001:db8::1"
    assert parse_selector("web/eu/10.1.0.1").rank > parse_selector("web/eu/10.1.0.0/24").rank \
        > parse_selector("web/eu").rank > parse_selector("web").rank
    for bad, why in [("", "expected POOL"), ("web//x", "an empty part"), ("web/eu/nope", "not an IP address"),
                     ("*", "name a pool, or an address"), ("*/eu", "name a pool, or an address"),
                     (":web", "an empty zone"), ("web/eu/fe80::1%eth0", "scoped IPv6"), (7, "expected POOL")]:
        with pytest.raises(SelectorError, match=why):
            parse_selector(bad)


def test_times_and_durations():
    assert parse_time("2030-01-01T00:00:00Z") == 1893456000.0
    assert parse_time("2030-01-01T01:00:00+01:00") == 1893456000.0
    with pytest.raises(ValueError, match="give the time zone"):
        parse_time("2030-01-01T00:00:00")
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("tomorrow")
    assert [parse_duration(d) for d in ("30m", "2h", "1d", "90s", "1w", 45)] == [1800, 7200, 86400, 90, 604800, 45]
    for bad in ("0m", "5y", "-1h", "2 hours", True, "1e9999"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_entries_load_with_their_file_and_line(zones_dir):
    path = write(zones_dir, """\
        # maintenance
        overrides:
          - selector: web/eu
            state: down
            reason: "CHG-1 rack move"
            until: 2030-01-01T00:00:00Z
            by: alice
          - {selector: "*/*/10.2.0.1", state: up, reason: checks broken}
        """)
    first, second = load_overrides(path)
    assert (first.file, first.line, first.state, first.reason, first.by, first.until, first.source) == (
        path, 3, "down", "CHG-1 rack move", "alice", 1893456000.0, "file")
    assert (second.line, str(second.selector), second.until, second.by) == (8, "*/*/10.2.0.1", None, None)
    assert zone_files(str(zones_dir)) == [str(zones_dir / "a.yaml"), str(zones_dir / "b.yaml")]  # not a zone


def test_every_problem_has_its_line(zones_dir):
    path = write(zones_dir, """\
        overrides:
          - selector: web/eu
            state: sideways
            reason: x
          - selector: web/us
            state: down
          - selector: web/eu
            state: up
            reason: again
            until: 2030-01-01
            color: red
          - selector: web/eu/not-an-address
            state: down
            reason: x
          - just a string
        """)
    with pytest.raises(Exception) as info:
        load_overrides(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:3: entry 1: state: 'sideways', expected down (drain) or up (answer it over failing checks)",
        f"{path}:5: entry 2: reason: required: a few words saying why (a ticket, the work being done)",
        f"{path}:11: entry 3: color: unknown key (known: selector, state, reason, until, by)",
        (f"{path}:10: entry 3: until: 2030-01-01: a date without a time; write a time and zone, like "
        "2030-01-01T00:00:00Z"),
        (f"{path}:12: entry 4: selector: selector 'web/eu/not-an-address': 'not-an-address' is not an IP "
        "address or a CIDR network"),
        f"{path}:15: entry 5: expected a mapping with selector, state and reason",
    ]
    path = write(zones_dir, """\
        overrides:
          - {selector: web/eu, state: down, reason: a}
          - {selector: "web/eu", state: up, reason: b}
        """)
    with pytest.raises(Exception, match=r"overrides.yaml:3: entry 2: selector: web/eu is already set on line 2"):
        load_overrides(path)
    path = write(zones_dir, "overrides:\n  - &x {selector: web, state: down, reason: a}\n  - *x\n")
    with pytest.raises(Exception, match="overrides.yaml:[23]: YAML aliases and anchors are not supported"):
        load_overrides(path)
    path = write(zones_dir, "drains: []\n")
    with pytest.raises(Exception, match="overrides.yaml:1: expected a mapping with one key, overrides:"):
        load_overrides(path)


def test_selectors_are_checked_against_the_zones(zones_dir):
    zones = load_zones(str(zones_dir), load_regions(str(zones_dir.parent / "data" / "regions.yaml")))
    path = write(zones_dir, """\
        overrides:
          - {selector: web, state: down, reason: ok, every zone's web}
          - {selector: api, state: down, reason: no such pool}
          - {selector: web/asia, state: down, reason: no such site}
          - {selector: web/eu/10.2.0.0/16, state: down, reason: no endpoint there}
          - {selector: "c.test:web", state: down, reason: no such zone}
          - {selector: "b.test.:web/eu/10.9.0.2", state: down, reason: ok}
          - {selector: "a.test.:web/eu/10.9.0.2", state: down, reason: the address is in b only}
        """.replace(", every zone's web", ""))
    problems = [str(p) for p in selector_problems(load_overrides(path), zones)]
    assert problems == [
        f"{path}:3: override api: no pool 'api' (pools: web)",
        f"{path}:4: override web/asia: no site 'asia' in pool web (sites: eu, us)",
        (f"{path}:5: override web/eu/10.2.0.0/16: no endpoint in 10.2.0.0/16 there (endpoints: 10.1.0.1, "
        "10.1.0.2, 10.9.0.2, 2001:db8::1)"),
        f"{path}:6: override c.test.:web: zone c.test. is not loaded (zones: a.test., b.test.)",
        (f"{path}:8: override a.test.:web/eu/10.9.0.2: no endpoint in 10.9.0.2/32 there (endpoints: 10.1.0.1, "
        "10.1.0.2, 2001:db8::1)"),
    ]


def gslb_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "check", *args], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_gslb_check_validates_overrides_yaml(zones_dir):
    data = str(zones_dir.parent / "data")
    path = write(zones_dir, """\
        overrides:
          - {selector: web/eu, state: down, reason: CHG-1, until: "2030-01-01T00:00:00Z"}
          - {selector: web/us/10.2.0.1, state: up, reason: old, until: "2020-01-01T00:00:00Z"}
        """)
    done = gslb_check(str(zones_dir), "--data", data)
    assert done.returncode == 0, done.stdout
    assert f"{path}: ok: 2 overrides; expired, no longer applied: web/us/10.2.0.1 (line 3)" in done.stdout
    done = gslb_check(path, "--data", data)                        # the file itself: against its directory
    assert done.returncode == 0 and f"{path}: ok: 2 overrides" in done.stdout
    write(zones_dir, """\
        overrides:
          - {selector: web/eu, state: down, reason: CHG-1}
          - {selector: web/europe, state: down, reason: a typo}
        """)
    done = gslb_check(str(zones_dir), "--data", data)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{path}:3: override web/europe: no site 'europe' in pool web (sites: eu, us)", "1 problem found"]
    write(zones_dir, "overrides:\n  - {selector: web/eu, state: down}\n")
    done = gslb_check(str(zones_dir), "--data", data)
    assert done.returncode == 1 and f"{path}:2: entry 1: reason: required" in done.stdout


def entry(selector: str, state: str, source: str = "file", until: float | None = None) -> Override:
    return Override(parse_selector(selector), state, f"{selector} {state} {source}", source, until)  # type: ignore


@pytest.mark.parametrize(("entries", "winner"), [
    # the API over the file, whatever the selectors
    ([entry("web/eu/10.1.0.1", "up"), entry("web", "down", "api")], "web down api"),
    ([entry("web", "down"), entry("web/eu/10.1.0.1", "up", "api")], "web/eu/10.1.0.1 up api"),
    # within a source, the more specific selector
    ([entry("web", "down"), entry("web/eu", "up")], "web/eu up file"),
    ([entry("web/eu", "down"), entry("web/eu/10.1.0.0/24", "up")], "web/eu/10.1.0.0/24 up file"),
    ([entry("web/eu/10.1.0.0/16", "up"), entry("web/eu/10.1.0.0/24", "down")], "web/eu/10.1.0.0/24 down file"),
    ([entry("web/eu/10.1.0.0/24", "down"), entry("*/*/10.1.0.1", "up")], "*/*/10.1.0.1 up file"),
    ([entry("*/*/10.1.0.1", "down"), entry("web/eu/10.1.0.1", "up")], "web/eu/10.1.0.1 up file"),
    ([entry("a.test.:web", "up"), entry("web", "down")], "a.test.:web up file"),
    # equal rank: down over up
    ([entry("web/*/10.1.0.1", "up", "api"), entry("web/eu/10.1.0.1", "down", "api")], "web/eu/10.1.0.1 down api"),
    ([entry("web/eu", "up", "api"), entry("a.test.:web/*", "down", "api")], "web/eu up api"),
    # an entry past its until does not apply
    ([entry("web", "down", "api", until=5.0), entry("web/eu", "up")], "web/eu up file"),
])
def test_precedence(zones_dir, entries, winner):
    zones = load_zones(str(zones_dir), load_regions(str(zones_dir.parent / "data" / "regions.yaml")))
    for order in (entries, entries[::-1]):                           # the order of the entries does not matter
        resolved = resolve(order, zones, now=10.0)
        assert resolved[("a.test.", "web", "eu", "10.1.0.1")].reason == winner


def test_resolution_reaches_exactly_the_selected_endpoints(zones_dir):
    zones = load_zones(str(zones_dir), load_regions(str(zones_dir.parent / "data" / "regions.yaml")))

    def keys(selector: str) -> set:
        return {f"{z}{p}/{s}/{a}" for z, p, s, a in resolve([entry(selector, "down")], zones, 0.0)}

    assert keys("a.test.:web/eu") == {"a.test.web/eu/10.1.0.1", "a.test.web/eu/10.1.0.2", "a.test.web/eu/2001:db8::1"}
    assert keys("web/us") == {"a.test.web/us/10.2.0.1", "b.test.web/us/10.2.0.1"}     # a bare pool: every zone
    assert keys("web/eu/10.1.0.0/16") == {"a.test.web/eu/10.1.0.1", "a.test.web/eu/10.1.0.2",
                                          "b.test.web/eu/10.1.0.1"}
    assert keys("*/*/2001:db8:0::1") == {"a.test.web/eu/2001:db8::1", "b.test.web/eu/2001:db8::1"}
    assert keys("web/eu/2001:db8::/32") == keys("*/*/2001:db8::1")


def test_the_documented_example_is_valid_for_the_example_zone(tmp_path):
    text = (REPO / "docs" / "overrides.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    zones_dir = tmp_path / "zones"
    zones_dir.mkdir()
    (zones_dir / "gslb.example.com.yaml").write_text((REPO / "zones" / "gslb.example.com.yaml").read_text())
    path = write(zones_dir, example)
    entries = load_overrides(path)
    zones = load_zones(str(zones_dir), load_regions(str(REPO / "data" / "regions.yaml")))
    assert len(entries) == 4 and selector_problems(entries, zones) == []
    resolved = resolve(entries, zones, now=0.0)                 # before the first entry's until
    assert resolved[("gslb.example.com.", "web", "eu-west", "198.51.100.1")].reason == "CHG-1234 rack move"
    assert resolved[("gslb.example.com.", "api", "us-east", "192.0.2.33")].state == "up"


def test_dns_workers_get_the_overrides_in_their_snapshots(zones_dir):
    from types import MappingProxyType

    from gslb.health.feed import decode_snapshot, encode_snapshot
    from gslb.health.snapshot import HealthSnapshot
    zones = load_zones(str(zones_dir), load_regions(str(zones_dir.parent / "data" / "regions.yaml")))
    resolved = resolve([entry("web/eu", "down", "api", until=2e9), entry("b.test:web/us/10.2.0.1", "up")], zones, 0.0)
    sent = HealthSnapshot(overrides=MappingProxyType(resolved), version=7)
    received = decode_snapshot(encode_snapshot(sent), {})
    assert dict(received.overrides) == resolved and received.version == 7
