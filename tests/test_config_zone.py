"""`gslb check`: every problem of a zone file as file:line: message, exit 1; good zones exit 0."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

BAD = {
    "bad-ip.yaml": ["5: www A: '192.0.2.300' is not an IPv4 address"],
    "bad-cname-beside-data.yaml": ["5: www.bad.test.: CNAME cannot stand beside other data (RFC 1034 3.6.2)"],
    "bad-unknown-type.yaml": ["5: www: unknown record type 'AAA' (known: NS, A, AAAA, CNAME, TXT, MX, SRV, CAA, PTR)"],
    "bad-outside-origin.yaml": ["5: name 'www.example.org.' is outside the zone bad.test."],
    "bad-missing-soa.yaml": ["1: missing soa: {mname, rname, refresh, retry, expire, minimum}"],
    "bad-missing-ns.yaml": ['4: missing NS records at the apex: records: {"@": {NS: [ns1.bad.test.]}}'],
    "bad-missing-pool.yaml": ["5: www: pool 'web' does not exist in this zone (pools: none defined) or any other"],
    "bad-duplicate-key.yaml": ["6: invalid YAML: duplicate key 'www'"],
    "bad-yaml-syntax.yaml": ["4: invalid YAML: did not find expected ',' or ']'"],
    "bad-fallback-loop.yaml": ["7: pool 'one': loop in fallbacks: one -> two -> one",
                               "9: pool 'two': loop in fallbacks: two -> one -> two"],
    "bad-unknown-pool-key.yaml": [("8: pool 'web': unknown key 'polcy' (known: affinity, all_down, answers, capacity, "
                                  "capacity_floor, check, fallback, geo, latency_margin_ms, latency_margin_pct, order, policy, sites, ttl)")],
    "bad-weight.yaml": ["13: pool 'web' site 'eu' endpoint 1: weight 5000, expected a whole number 0..1000"],
    "bad-name-twice.yaml": ["6: name 'WWW.bad.test.' is www.bad.test., already written as 'www' on line 5"],
    "bad-name-chars.yaml": [("6: name 'café': label 'café' may only hold letters, digits, '-' and '_' "
                             "(write an internationalized name in its xn-- form)")],
    "bad-pools-not-a-mapping.yaml": ["5: pools must be a mapping of pool name -> pool"],
    "bad-ttl.yaml": ["6: www ttl: -1 is not a TTL (a whole number of seconds, 0..2147483647)"],   # ttl: 0 is fine
}


def check(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "check", path], cwd=REPO, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_zone_reports_file_line_message(name):
    """Each file in tests/zones/bad-*.yaml has one problem: exit 1, `file:line: message`, then a count."""
    path = f"tests/zones/{name}"
    result = check(path)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[:-1] == [f"{path}:{message}" for message in BAD[name]]
    assert lines[-1] == f"{len(BAD[name])} problem{'s' if len(BAD[name]) > 1 else ''} found"


def test_every_bad_zone_file_is_in_the_table():
    assert sorted(p.name for p in (REPO / "tests" / "zones").glob("bad-*.yaml")) == sorted(BAD)


def test_bundled_zones_are_valid():
    result = check("zones")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "zones/gslb.example.com.yaml: ok: gslb.example.com. (11 names, 3 pools)",
        ("largest UDP answer: gslb.example.com. NS (no EDNS): 130 bytes for a 34-byte query, amplification 3.8x "
         "(11 names checked; rrl: at most 200 answers/s per /24 (IPv4), 26 kB/s)")]


def test_missing_path_is_a_problem():
    result = check("tests/zones/no-such-file.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["tests/zones/no-such-file.yaml:0: cannot read: No such file or directory",
                                          "1 problem found"]


def test_one_origin_in_two_files_is_a_problem(tmp_path):
    text = (REPO / "tests" / "zones" / "bad-ip.yaml").read_text().replace("192.0.2.300", "192.0.2.3")
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    result = check(str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == f"{tmp_path}/b.yaml:1: zone bad.test. is already defined in {tmp_path}/a.yaml"


def test_every_problem_of_a_directory_is_listed(tmp_path):
    for name in ("bad-ip.yaml", "bad-missing-pool.yaml"):
        (tmp_path / name).write_text((REPO / "tests" / "zones" / name).read_text())
    result = check(str(tmp_path))
    assert result.returncode == 1 and result.stdout.count(str(tmp_path)) == 2


def test_check_also_validates_the_server_config(tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text("listen: 127.0.0.1:53\nreload_interval: fast\nhealth: {quorum: most}\n")
    result = subprocess.run([sys.executable, "-m", "gslb", "check", "zones", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        f"{config}:2: reload_interval: 'fast', expected seconds 0.1..3600",
        f"{config}:3: health quorum: 'most', expected majority, any, all or a number of regions >= 1"]
