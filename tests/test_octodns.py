"""octoDNS itself (`octodns-sync`, `octodns-dump` from the installed package) writes gslb zone files through
`gslb.octodns.GslbProvider` from a YamlProvider source; `gslb check` accepts them, gslb answers them over
real sockets (dnspython and dig), and reading them back gives the source's records unchanged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

octodns = pytest.importorskip("octodns", reason="octoDNS is not installed (pip install 'gslb-server[octodns]')")

from conftest import REPO, running_server
from mmdbutil import write_test_mmdb
from octodns.manager import Manager
from octodns.zone import Zone

BIN = Path(sys.executable).parent
DIG = shutil.which("dig")
ZONE = "example.com."

SOURCE = r"""
'':
  - type: NS
    values: [ns1.example.com., ns2.example.com.]
  - type: TXT
    values: ["v=spf1 -all", "a\\;b"]
  - type: MX
    values: [{preference: 10, exchange: mx1.example.com.}]
  - type: CAA
    value: {flags: 0, tag: issue, value: letsencrypt.org}
ns1: {type: A, value: 192.0.2.53}
ns2: {type: A, value: 192.0.2.54}
mx1: {type: AAAA, value: "2001:db8::25"}
alias: {type: CNAME, value: www.example.com., ttl: 300}
_sip._tcp: {type: SRV, values: [{priority: 10, weight: 5, port: 5060, target: sip.example.com.}]}
sip: {type: A, values: [192.0.2.60, 192.0.2.61]}
www:
  - type: A
    ttl: 60
    values: [192.0.2.100]
    dynamic:
      pools:
        eu:
          values: [{value: 192.0.2.10, weight: 3}, {value: 192.0.2.11, weight: 1, status: down}]
          fallback: us
        us:
          values: [{value: 198.51.100.10}]
        office:
          values: [{value: 203.0.113.5, status: up}]
      rules:
        - subnets: [10.0.0.0/8, "2001:db8:1::/48"]
          pool: office
        - geos: [EU, NA-CA, NA-US-CA]
          pool: eu
        - pool: us
    octodns:
      healthcheck: {protocol: HTTP, port: 8080, path: /healthz}
      gslb:
        check: {interval: 2, expect: [200, 204]}
        pool: {all_down: nodata}
  - type: AAAA
    ttl: 60
    values: ["2001:db8::100"]
    dynamic:
      pools:
        eu:
          values: [{value: "2001:db8::10", weight: 3}, {value: "2001:db8::11", weight: 1, status: down}]
          fallback: us
        us:
          values: [{value: "2001:db8:2::10"}]
        office:
          values: [{value: "2001:db8:3::5", status: up}]
      rules:
        - subnets: [10.0.0.0/8, "2001:db8:1::/48"]
          pool: office
        - geos: [EU, NA-CA, NA-US-CA]
          pool: eu
        - pool: us
    octodns:
      healthcheck: {protocol: HTTP, port: 8080, path: /healthz}
      gslb:
        check: {interval: 2, expect: [200, 204]}
        pool: {all_down: nodata}
"""

CONFIG = """
providers:
  config:
    class: octodns.provider.yaml.YamlProvider
    directory: {source}
    enforce_order: false
    escaped_semicolons: true
  gslb:
    class: gslb.octodns.GslbProvider
    directory: {zones}
  dump:
    class: octodns.provider.yaml.YamlProvider
    directory: {dump}
    enforce_order: false
    escaped_semicolons: true
zones:
  example.com.:
    sources: [config]
    targets: [gslb]
"""


class Setup:
    """An octoDNS configuration in a temp dir: source YAML -> gslb zones directory."""

    def __init__(self, tmp: Path, source: str = SOURCE):
        self.tmp = tmp
        self.source, self.zones, self.dump = tmp / "config", tmp / "zones", tmp / "dump"
        self.source.mkdir()
        self.zones.mkdir()
        self.write_source(source)
        self.config = tmp / "octodns.yaml"
        self.config.write_text(CONFIG.format(source=self.source, zones=self.zones, dump=self.dump))

    def write_source(self, text: str) -> None:
        (self.source / f"{ZONE}yaml").write_text(textwrap.dedent(text))

    @property
    def zone_file(self) -> Path:
        return self.zones / f"{ZONE}yaml"

    def octodns(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / command), "--config-file", str(self.config), *args],
                              capture_output=True, text=True, timeout=60, cwd=self.tmp, check=False)

    def sync(self, *args: str) -> subprocess.CompletedProcess:
        return self.octodns("octodns-sync", *args)

    def records(self, provider: str) -> dict:
        """(name, type) -> record data, as the named provider populates the zone."""
        manager = Manager(str(self.config))
        zone = Zone(ZONE, [])
        manager.providers[provider].populate(zone)
        return {(r.name, r._type): r.data for r in zone.records}


@pytest.fixture
def synced(tmp_path) -> Setup:
    setup = Setup(tmp_path)
    done = setup.sync("--doit")
    assert done.returncode == 0, done.stderr[-3000:]
    assert setup.zone_file.exists()
    return setup


def test_octodns_sync_writes_a_zone_gslb_check_accepts(synced):
    text = synced.zone_file.read_text()
    assert "pool: www" in text and "net:10.0.0.0/8: [office, values]" in text
    assert "US-CA: [eu, us, values]" in text
    done = subprocess.run([sys.executable, "-m", "gslb", "check", str(synced.zones)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # written atomically: no temporary file is left beside it
    assert sorted(p.name for p in synced.zones.iterdir()) == [f"{ZONE}yaml"]


def test_round_trip_a_second_sync_plans_nothing_and_populate_gives_the_source(synced):
    again = synced.sync()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "No changes were planned" in again.stdout + again.stderr
    source, back = synced.records("config"), synced.records("gslb")
    assert sorted(back) == sorted(source)
    for key, data in source.items():
        assert back[key] == data, key        # values, weights, status, fallbacks, rules, healthcheck, gslb extras


def test_octodns_dump_of_the_gslb_zone_equals_the_source(synced):
    done = synced.octodns("octodns-dump", "--output-dir", str(synced.dump), ZONE, "gslb")
    assert done.returncode == 0, done.stderr[-3000:]
    assert synced.records("dump") == synced.records("config")


def test_healthcheck_edit_is_planned_and_written(synced):
    synced.write_source(SOURCE.replace("port: 8080", "port: 8081"))
    planned = synced.sync()
    assert "Update" in planned.stdout + planned.stderr, planned.stdout
    assert synced.sync("--doit").returncode == 0
    assert "port: 8081" in synced.zone_file.read_text()


def _dig(port: int, *args: str) -> str:
    assert DIG is not None, "dig is not installed (Debian package bind9-dnsutils)"
    return subprocess.run([DIG, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", "+short", *args],
                          capture_output=True, text=True, timeout=15, check=False).stdout.split()


def test_gslb_answers_the_synced_zone_by_subnet_geo_and_default(synced, tmp_path):
    geoip = write_test_mmdb(str(tmp_path / "geo.mmdb"), [
        ("193.0.0.0/16", {"continent": "EU", "country": "DE"}),
        ("24.0.0.0/16", {"continent": "NA", "country": "US", "subdivision": "US-CA"}),
        ("24.1.0.0/16", {"continent": "NA", "country": "US", "subdivision": "US-NY"}),
        ("10.0.0.0/8", {"continent": "EU", "country": "DE"}),          # the net: rule wins over geo
    ])
    zones = {p.name: p.read_text() for p in synced.zones.iterdir()}
    # no prober: the check's targets are documentation addresses, and tests only send to loopback
    with running_server(tmp_path / "srv", zones, geoip=geoip, config_yaml="health: {embedded: false}\n") as srv:
        def a(subnet: str) -> set[str]:
            return {rd.to_text() for rrset in srv.query("www.example.com.", "A", ecs=subnet).answer for rd in rrset}

        for _ in range(20):      # the status: down endpoint of pool eu is never answered
            assert a("193.0.1.0/24") == {"192.0.2.10"}
        assert a("24.0.5.0/24") == {"192.0.2.10"}        # NA-US-CA -> eu
        assert a("24.1.5.0/24") == {"198.51.100.10"}     # elsewhere in the US -> the catch-all rule
        assert a("10.1.2.0/24") == {"203.0.113.5"}       # subnet rule before geo
        aaaa = srv.query("www.example.com.", "AAAA", ecs="2001:db8:1:5::/64")
        assert [rd.to_text() for rrset in aaaa.answer for rd in rrset] == ["2001:db8:3::5"]
        assert aaaa.answer[0].ttl == 60
        # static records, asked with the real dig
        assert sorted(_dig(srv.port, "example.com.", "TXT")) == ['"a;b"', '"v=spf1', '-all"']
        assert _dig(srv.port, "example.com.", "MX") == ["10", "mx1.example.com."]
        assert _dig(srv.port, "_sip._tcp.example.com.", "SRV") == ["10", "5", "5060", "sip.example.com."]
        assert _dig(srv.port, "example.com.", "CAA") == ["0", "issue", '"letsencrypt.org"']
        assert _dig(srv.port, "alias.example.com.", "CNAME") == ["www.example.com."]
        assert sorted(_dig(srv.port, "sip.example.com.", "A")) == ["192.0.2.60", "192.0.2.61"]


@pytest.mark.parametrize("edit, record, why", [
    (lambda s: s.replace("alias: {type: CNAME, value: www.example.com., ttl: 300}",
                         "alias:\n  - {type: CNAME, value: www.example.com., ttl: 300}\n"
                         "other: [{type: A, value: 192.0.2.7, ttl: 60}, {type: TXT, value: x, ttl: 70}]"),
     "other.example.com.", "one ttl per name"),
    (lambda s: s.replace("protocol: HTTP, port: 8080", "protocol: ICMP, port: 8080", 2),
     "www.example.com.", "healthcheck protocol ICMP"),
    (lambda s: s + "sshfp: {type: SSHFP, value: {algorithm: 1, fingerprint_type: 1, fingerprint: 0123456789abcdef0123456789abcdef01234567}}\n",
     "sshfp.example.com.", "SSHFP"),
])
def test_what_gslb_cannot_express_is_an_error_naming_the_record(tmp_path, edit, record, why):
    setup = Setup(tmp_path, edit(SOURCE))
    done = setup.sync("--doit")
    assert done.returncode != 0
    assert record in done.stderr and why in done.stderr, done.stderr[-2000:]
    assert not setup.zone_file.exists()


HAND_WRITTEN = """\
origin: example.com.
soa: {mname: ns1.example.com., rname: hostmaster.example.com.}
records:
  "@": {NS: ns1.example.com.}
  ns1: {A: 192.0.2.53}
  api: {pool: api}
  fast: {pool: fast}
pools:
  api:
    policy: failover
    check: {type: tcp, port: 443}
    sites:
      primary: {endpoints: [192.0.2.1, {address: 192.0.2.2, weight: 2}]}
      backup: {endpoints: [198.51.100.1]}
    order: [primary, backup]
  fast:
    policy: latency
    sites:
      eu: {region: eu-west-1, endpoints: [192.0.2.9]}
"""


def test_hand_written_zone_reads_as_dynamic_records_and_latency_is_an_error_naming_the_record(tmp_path):
    setup = Setup(tmp_path)
    setup.zone_file.write_text(HAND_WRITTEN)
    done = setup.octodns("octodns-dump", "--output-dir", str(setup.dump), ZONE, "gslb")
    assert done.returncode != 0
    assert "fast.example.com." in done.stderr and "policy latency" in done.stderr, done.stderr[-2000:]
    setup.zone_file.write_text(HAND_WRITTEN.replace("  fast: {pool: fast}\n", ""))
    api = setup.records("gslb")[("api", "A")]
    assert api["dynamic"]["rules"] == [{"pool": "primary"}]
    assert api["dynamic"]["pools"]["primary"]["fallback"] == "backup"
    assert api["value"] == "198.51.100.1"          # no `values` site: the last site of the chain
    assert api["octodns"]["healthcheck"] == {"protocol": "TCP"}
    assert os.path.getsize(setup.zone_file) > 0
