"""The new check keys at load: every mistake is `file:line: what` from `gslb check`; good ones load as meant."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from gslb.config.check import EnvError, expand_env
from gslb.config.regions import load_regions
from gslb.config.zone import load_zone_file

HEAD = """\
origin: c.test.
soa: {mname: ns1.c.test., rname: h.c.test.}
records:
  "@": {NS: ns1.other.test.}
pools:
"""

BAD = HEAD + """\
  web:
    policy: weighted
    check:
      type: http
      headers:
        Authorization: "Bearer ${GSLB_CHECK_TEST_UNSET}"
        "bad name": x
        Host: www.c.test
        X-Open: "${unclosed"
      user_agent: "probe ${GSLB_CHECK_TEST_UNSET2}"
      expect: [200, "6xx", "3xx"]
      send: "PING"
      missing: down
    sites:
      a:
        region: us-east-1
        endpoints:
          - {address: 192.0.2.1, check_address: 10.0.0.300, check_port: 0}
  redis:
    policy: weighted
    check: {type: tcp, port: 6379, send: "PING\\r\\n", expect: {regex: "+PONG"}, headers: {X: y}}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.2]}
  ext:
    policy: weighted
    check: {type: file, port: 80, missing: sometimes}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.3]}
  nocheck:
    policy: weighted
    sites:
      a: {region: us-east-1, endpoints: [{address: 192.0.2.4, check_port: 8080}]}
  tcpexpect:
    policy: weighted
    check: {type: tcp, port: 25, expect: 220}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.5]}
"""

EXPECTED = [
    "11: pool 'web': check headers 'Authorization': environment variable GSLB_CHECK_TEST_UNSET is not set",
    "12: pool 'web': check headers 'bad name': not a header name (letters, digits and !#$%&'*+.^_`|~-)",
    "13: pool 'web': check headers 'Host': set with the check's host: key",
    "14: pool 'web': check headers 'X-Open': a ${ without its closing }",
    "15: pool 'web': check user_agent: environment variable GSLB_CHECK_TEST_UNSET2 is not set",
    ("16: pool 'web': check expect: '6xx', expected status codes (100..599), classes like \"2xx\" or ranges like "
    "\"200-299\""),
    "17: pool 'web': check send: not used by a http check (only tcp)",
    "18: pool 'web': check missing: not used by a http check (only file)",
    "23: pool 'web' site 'a' endpoint 1: check_address '10.0.0.300' is not an IP address",
    "23: pool 'web' site 'a' endpoint 1: check_port 0, expected a whole number 1..65535",
    "26: pool 'redis': check headers: not used by a tcp check (only http, https)",
    "26: pool 'redis': check expect: regex '+PONG': nothing to repeat at position 0",
    "31: pool 'ext': check port: not used by a file check (only http, https, tcp, dns)",
    "31: pool 'ext': check path: a file check needs the path of its health file",
    "31: pool 'ext': check missing: 'sometimes', expected one of keep | up | down",
    "37: pool 'nocheck' site 'a' endpoint 1: check_port needs a check: on the pool",
    "40: pool 'tcpexpect': check expect: 220, expected text the reply contains, or {regex: \"^\\\\+PONG\"}",
]


def test_each_new_key_is_checked_with_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_CHECK_TEST")}
    result = subprocess.run([sys.executable, "-m", "gslb", "check", str(path)], cwd=REPO, capture_output=True,
                            text=True, timeout=30, check=False, env=env)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"{len(EXPECTED)} problems found"
    found = sorted(lines[:-1], key=lambda s: int(s.split(":")[1]))
    assert found == [f"{path}:{e}" for e in EXPECTED], "\n".join(found)


GOOD = HEAD + """\
  web:
    policy: weighted
    check:
      type: https
      path: /healthz
      headers: {Authorization: "Bearer ${GSLB_CHECK_TEST_TOKEN}", X-Count: 3}
      user_agent: Mozilla/5.0 (compatible; gslb)
      expect: 204
    sites:
      a:
        region: us-east-1
        endpoints:
          - 192.0.2.1
          - {address: 192.0.2.2, check_address: 10.1.0.2, check_port: 8443}
  redis:
    policy: weighted
    check: {type: tcp, port: 6379, send: "PING\\r\\n", expect: "+PONG"}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.3]}
  ssh:
    policy: weighted
    check: {type: tcp, port: 22, expect: {regex: "^SSH-2\\\\.0-"}}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.4]}
  ext:
    policy: weighted
    check: {type: file, path: state/health.txt, missing: down}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.5]}
  codes:
    policy: weighted
    check: {type: http, expect: [200, "3XX", "400-404"]}
    sites:
      a: {region: us-east-1, endpoints: [192.0.2.6]}
"""


def test_good_keys_load_as_meant(tmp_path, monkeypatch):
    monkeypatch.setenv("GSLB_CHECK_TEST_TOKEN", "t0ken")
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    zone = load_zone_file(str(path), load_regions(str(REPO / "data" / "regions.yaml")))
    web = zone.pools["web"]
    assert web.check.headers == (("Authorization", "Bearer ${GSLB_CHECK_TEST_TOKEN}"), ("X-Count", "3"))
    assert web.check.user_agent == "Mozilla/5.0 (compatible; gslb)" and web.check.expect == (204,)
    first, second = web.sites[0].endpoints
    assert (first.check_address, first.check_port) == (None, None)
    assert (second.address, second.check_address, second.check_port) == ("192.0.2.2", "10.1.0.2", 8443)
    assert [(t.address, t.check.port) for t in web.targets()] == [("192.0.2.1", None), ("10.1.0.2", 8443)]
    redis = zone.pools["redis"].check
    assert (redis.send, redis.expect_text, redis.expect_regex) == ("PING\r\n", "+PONG", None)
    assert zone.pools["ssh"].check.expect_regex == r"^SSH-2\.0-"
    ext = zone.pools["ext"].check
    assert ext.path == str(tmp_path / "state" / "health.txt")          # relative to the zone file
    assert (ext.missing, ext.rise, ext.fall) == ("down", 1, 1)         # the file's writer has decided
    assert zone.pools["codes"].check.expect == (200, "3xx", "400-404")


def test_a_zone_with_the_new_keys_passes_gslb_check(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = subprocess.run([sys.executable, "-m", "gslb", "check", str(path)], cwd=REPO, capture_output=True,
                            text=True, timeout=30, check=False, env={**os.environ, "GSLB_CHECK_TEST_TOKEN": "x"})
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("text, env, out", [
    ("Bearer ${T}", {"T": "abc"}, "Bearer abc"),
    ("${A}${B}", {"A": "1", "B": "2"}, "12"),
    ("$$ and $5 and $T", {}, "$ and $5 and $T"),
    ("$${T}", {"T": "no"}, "${T}"),
])
def test_expand_env(text, env, out):
    assert expand_env(text, env) == out


@pytest.mark.parametrize("text, error", [
    ("${MISSING}", "environment variable MISSING is not set"),
    ("${1X}", "${1X} is not an environment variable name"),
    ("${A", "a ${ without its closing }"),
])
def test_expand_env_errors(text, error):
    with pytest.raises(EnvError) as info:
        expand_env(text, {"A": "1"})
    assert str(info.value) == error


def test_proxy_config_takes_the_same_check_keys(tmp_path):
    """The proxy's pools read `check:` with the same parser: a new key is checked there too."""
    from gslb.errors import ConfigError
    from gslb.proxy.config import load_proxy_config
    path = tmp_path / "proxy.yaml"
    path.write_text(textwrap.dedent("""\
        listen: 127.0.0.1:0
        pools:
          app:
            backends: [127.0.0.1:9000]
            check: {type: http, path: /healthz, expect: ["2xx", 301], headers: {X-Probe: gslb}}
          bad:
            backends: [127.0.0.1:9001]
            check: {type: http, expect: "9xx"}
        routes:
          - {host: example.test, pool: app}
        """))
    with pytest.raises(ConfigError) as info:
        load_proxy_config(str(path))
    assert [str(p) for p in info.value.problems] == [
        (f"{path}:8: pool 'bad': check expect: '9xx', expected status codes (100..599), classes like \"2xx\" or "
        "ranges like \"200-299\"")]
