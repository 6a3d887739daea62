"""The proxy's YAML: every mistake named with file:line, and the pool-wide defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gslb.errors import ConfigError
from gslb.proxy.config import load_proxy_config

GOOD_TAIL = "routes:\n  - {default: true, pool: app}\n"


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_proxy_config(str(path))
    return [str(p).replace(f"{path}:", "") for p in err.value.problems]


def test_every_mistake_is_reported_with_its_line(tmp_path):
    got = problems(tmp_path, (
        "timeouts: 5\n"                                             # 1
        "limits: {max_body_size: 10, max_headers: 3}\n"             # 2
        "retries: many\n"                                           # 3
        "drain_timeout: -1\n"                                       # 4
        "access_log: maybe\n"                                       # 5
        "pools:\n"                                                  # 6
        "  app:\n"                                                  # 7
        "    backends: [{address: '127.0.0.1:9001', drain: yes please}]\n"   # 8
        "    sticky: {cookie: 'a b', ttl: 60, secure: true}\n"      # 9
        "    outlier: 3\n"                                          # 10
        "routes:\n"                                                 # 11
        "  - {default: true, pool: app}\n"                          # 12
        "  - {host: 'a.*.com', pool: app}\n"                        # 13
        "  - {pools: [app], host: x.com}\n"))                       # 14
    assert "1: timeouts: expected a mapping with connect, idle, read, total" in got
    assert "2: limits: unknown key 'max_headers' (known: max_body_size, max_header_size, max_response_header_size)" in got
    assert "3: retries 'many', expected a number >= 0" in got
    assert "4: drain_timeout -1, expected a number >= 0" in got
    assert ("5: access_log 'maybe', expected true, false, stderr, an absolute file path or {path, buffer, flush}"
            in got)
    assert "8: pool 'app': drain 'yes please', expected true or false" in got
    assert "9: pool 'app': sticky: unknown key 'secure' (known: cookie, ttl)" in got
    assert "9: pool 'app': sticky cookie 'a b', expected a cookie name" in got
    assert "10: pool 'app': outlier: expected a mapping with ejection, failures" in got
    assert "13: route 2: never used: route 1 (default: true) matches first" in got
    assert "13: route 2: host 'a.*.com', expected a name or *.domain" in got
    assert "14: route 3: pools item 1: expected {pool: NAME, weight: N}" in got


def test_pool_max_connections_and_top_level_fail_open_are_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("fail_open: true\npools:\n  app:\n    max_connections: 7\n"
                    "    backends: [{address: '127.0.0.1:9001'}, {address: '127.0.0.1:9002', max_connections: 2}]\n"
                    "  strict:\n    fail_open: false\n    backends: ['127.0.0.1:9003']\n" + GOOD_TAIL)
    config = load_proxy_config(str(path))
    assert [b.max_connections for b in config.pools["app"].backends] == [7, 2]
    assert config.pools["app"].fail_open and not config.pools["strict"].fail_open


def test_the_example_and_the_documented_config_load(tmp_path):
    repo = Path(__file__).resolve().parent.parent
    example = load_proxy_config(str(repo / "examples" / "proxy.yaml"))
    assert example.pools["app"].algorithm == "weighted_round_robin" and example.routes[-1].default
    doc = (repo / "docs" / "proxy.md").read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    path = tmp_path / "doc.yaml"
    path.write_text(doc.replace("/etc/gslb/cert.pem", str(cert)).replace("/etc/gslb/key.pem", str(key)))
    documented = load_proxy_config(str(path))
    assert set(documented.pools) == {"app", "app-canary", "search"}
    assert documented.routes[-1].pools == (("app", 95), ("app-canary", 5))
    assert documented.listen[1].cert == str(cert)
