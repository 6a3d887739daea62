"""YAML limits: aliases and merge keys refused in every file gslb reads, size and name limits per zone
file (configurable, also in `gslb check`), and error messages that quote only a short prefix of a value."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from gslb.config.model import ZoneLimits
from gslb.config.regions import Regions
from gslb.config.server import load_server_config
from gslb.config.yamlsrc import load_yaml, short
from gslb.config.zone import load_zone_file
from gslb.errors import ConfigError
from gslb.proxy.config import load_proxy_config

REPO = Path(__file__).resolve().parent.parent

HEAD = """\
origin: b.test.
soa: {mname: ns1.b.test., rname: h.b.test.}
"""


def alias_bomb(levels: int = 8) -> str:
    """The issue's zone: each level is ten aliases of the one before; 10**levels strings once expanded."""
    lines = ['x1: &a1 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(2, levels + 1):
        lines.append(f"x{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]")
    return HEAD + "\n".join(lines) + f'\nrecords:\n  "@": {{NS: ns1.other.test.}}\n  t: {{TXT: *a{levels}}}\n'


def problems(exc: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in exc.value.problems]


def check_limited(*args: str, memory: int = 512 * 2**20) -> subprocess.CompletedProcess:
    """`gslb check ARGS` in a child process whose address space is capped."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return subprocess.run([sys.executable, "-m", "gslb", "check", *args], check=False, cwd=REPO, preexec_fn=cap,
                          capture_output=True, text=True, timeout=60)


def test_alias_bomb_is_refused_by_gslb_check_in_bounded_memory(tmp_path):
    """The 700-byte alias bomb took `gslb check` past 2 GB; now it is refused, under a 512 MB cap, with
    file:line of the first alias."""
    zone = tmp_path / "bomb.yaml"
    zone.write_text(alias_bomb(8))
    assert zone.stat().st_size < 1000
    done = check_limited(str(zone), "--data", str(REPO / "data"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        f"{zone}:4: YAML aliases and anchors are not supported "
        "(an alias repeats the value anchored on line 3; write the value out)")
    assert "Traceback" not in done.stderr


def test_one_level_more_is_refused_the_same_way(tmp_path):
    zone = tmp_path / "bomb9.yaml"
    zone.write_text(alias_bomb(9))
    with pytest.raises(ConfigError) as exc:
        load_zone_file(str(zone), Regions.empty())
    assert problems(exc) == [(f"{zone}:4: YAML aliases and anchors are not supported "
                             "(an alias repeats the value anchored on line 3; write the value out)")]


@pytest.mark.parametrize("text, line, why", [
    ("a: &x {k: 1}\nb: *x\n", 2, "an alias repeats the value anchored on line 1; write the value out"),
    ("a: &x hello\nb: [1, *x]\n", 2, "an alias repeats the value anchored on line 1; write the value out"),
    ("a: &x [*x]\n", 1, "an alias repeats the value anchored on line 1; write the value out"),
    ("base: {ttl: 60}\nwww:\n  <<: {ttl: 60}\n  A: 192.0.2.1\n", 3, "merge key '<<'; write the keys out"),
    ("www:\n  A: 192.0.2.1\n  <<: [{ttl: 1}, {ttl: 2}]\n", 3, "merge key '<<'; write the keys out"),
])
def test_aliases_and_merge_keys_are_refused_with_their_line(text, line, why):
    with pytest.raises(ConfigError) as exc:
        load_yaml(text, "f.yaml")
    assert problems(exc) == [f"f.yaml:{line}: YAML aliases and anchors are not supported ({why})"]


def test_stars_and_ampersands_inside_strings_are_plain_text():
    """Wildcard owner names are written quoted; '*' and '<<' inside strings are not aliases."""
    assert load_yaml('"*.w": {TXT: "a *b << &c"}\nq: ["*x"]\n', "f.yaml") == \
        {"*.w": {"TXT": "a *b << &c"}, "q": ["*x"]}


def test_aliases_are_refused_in_the_server_config_and_the_proxy_config(tmp_path):
    server = tmp_path / "server.yaml"
    server.write_text('listen: &l "127.0.0.1:5353"\napi: *l\n')
    with pytest.raises(ConfigError) as exc:
        load_server_config(str(server))
    assert problems(exc) == [(f"{server}:2: YAML aliases and anchors are not supported "
                             "(an alias repeats the value anchored on line 1; write the value out)")]
    proxy = tmp_path / "proxy.yaml"
    proxy.write_text("pools:\n  a: &p {backends: [127.0.0.1:8080]}\n  b: *p\n")
    with pytest.raises(ConfigError) as exc:
        load_proxy_config(str(proxy))
    assert problems(exc) == [(f"{proxy}:3: YAML aliases and anchors are not supported "
                             "(an alias repeats the value anchored on line 2; write the value out)")]


def zone_with_names(count: int) -> str:
    names = "".join(f"  n{i}: {{A: 192.0.2.{i % 250 + 1}}}\n" for i in range(count))
    return HEAD + f'records:\n  "@": {{NS: ns1.other.test.}}\n{names}'


def test_zone_bytes_limit_refuses_a_big_file_before_reading_it(tmp_path):
    zone = tmp_path / "z.yaml"
    zone.write_text(zone_with_names(40))
    size = zone.stat().st_size
    assert load_zone_file(str(zone), Regions.empty(), ZoneLimits(zone_bytes=size)).origin == "b.test."
    with pytest.raises(ConfigError) as exc:
        load_zone_file(str(zone), Regions.empty(), ZoneLimits(zone_bytes=size - 1))
    assert problems(exc) == [(f"{zone}:1: the file is {size:,} bytes, more than the limit of {size - 1:,} "
                             "(limits: zone_bytes in the server config)")]


def test_zone_names_limit_is_reported_where_the_records_start(tmp_path):
    zone = tmp_path / "z.yaml"
    zone.write_text(zone_with_names(4))          # 5 names with the apex
    assert len(load_zone_file(str(zone), Regions.empty(), ZoneLimits(zone_names=5)).names) == 5
    with pytest.raises(ConfigError) as exc:
        load_zone_file(str(zone), Regions.empty(), ZoneLimits(zone_names=4))
    assert problems(exc) == [(f"{zone}:4: records: 5 names, more than the limit of 4 "
                             "(limits: zone_names in the server config)")]


def test_the_defaults_allow_a_million_name_zone():
    limits = ZoneLimits()
    assert limits.zone_names >= 1_000_000 and limits.zone_bytes >= 60_000_000


def test_gslb_check_applies_the_limits_of_its_config(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "z.yaml").write_text(zone_with_names(4))
    config = tmp_path / "server.yaml"
    config.write_text("limits:\n  zone_names: 3\n")
    done = subprocess.run([sys.executable, "-m", "gslb", "check", str(zones), "--config", str(config),
                           "--data", str(REPO / "data")], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{zones / 'z.yaml'}:4: records: 5 names, more than the limit of 3 (limits: zone_names in the server config)",
        "1 problem found"]


def test_limits_settings_are_validated_with_their_lines(tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text("limits:\n  zone_bytes: 1000\n  zone_names: -1\n  reload_memory: 5\n")
    with pytest.raises(ConfigError) as exc:
        load_server_config(str(config))
    assert problems(exc) == [
        f"{config}:3: limits: zone_names: -1, expected a whole number (0: no limit)",
        f"{config}:4: limits: unknown key 'reload_memory' (known: zone_bytes, zone_names, reload_memory_mb)"]
    config.write_text("limits: {zone_bytes: 1000, zone_names: 0, reload_memory_mb: 2048}\n")
    assert load_server_config(str(config)).limits == ZoneLimits(zone_bytes=1000, zone_names=0,
                                                                 reload_memory_mb=2048)
    config.write_text("limits: 5\n")
    with pytest.raises(ConfigError) as exc:
        load_server_config(str(config))
    assert problems(exc)[0].startswith(f"{config}:1: limits: 5, expected a mapping")


def test_a_huge_value_is_quoted_by_a_short_prefix(tmp_path):
    """Messages used to repr() the whole value (740 MB of log for the alias bomb)."""
    zone = tmp_path / "z.yaml"
    big_list = "[" + ", ".join(["[1, 2, 3]"] * 20000) + "]"
    zone.write_text(HEAD + 'records:\n  "@": {NS: ns1.other.test.}\n'
                    f'  a: {{A: "{"9" * 1_000_000}"}}\n'
                    f"  t: {{TXT: [{big_list}]}}\n"
                    f"  c: {{CNAME: {'k' * 100_000}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_zone_file(str(zone), Regions.empty())
    found = problems(exc)
    assert len(found) == 3 and all(len(p) < len(str(zone)) + 300 for p in found), [p[:300] for p in found]
    assert found[0].startswith(f"{zone}:5: a A: '99999") and found[0].endswith("... is not an IPv4 address")
    assert found[1].startswith(f"{zone}:6: t TXT: TXT value [[1, 2, 3], [1, 2, 3]")
    assert found[2].startswith(f"{zone}:7: c CNAME: label 'kkkk") and found[2].endswith("... longer than 63 bytes "
                                                                                         "in '" + "k" * 56 + "...")


def test_short_is_repr_for_small_values_and_bounded_for_big_ones():
    for value in ["ab", [1, "2"], {"a": [1, (2,)]}, (1, 2), 3.5, None, True, b"x", ()]:
        assert short(value) == repr(value)
    assert short("x" * 10**7) == "'" + "x" * 56 + "..."
    assert len(short(list(range(10**6)))) == 60 and short(list(range(10**6))).startswith("[0, 1, 2, ")
    assert short(10**5000) == "<a 16610-bit number>"

    class NoRepr(list):
        def __repr__(self):
            raise AssertionError("the whole value was repr()'d")
    assert short(NoRepr([NoRepr([1] * 10**5)] * 10**3), 30).startswith("[[1, 1, 1")


@pytest.mark.parametrize(("name", "text", "load"), [
    ("server.yaml", "health: {quorum: VALUE}\n", load_server_config),
    ("server.yaml", "tcp: {idle_timeout: VALUE}\n", load_server_config),
    ("server.yaml", "rrl: {slip: VALUE}\n", load_server_config),
    ("proxy.yaml", "listen: VALUE\npools: {a: {backends: [127.0.0.1:8080]}}\n", load_proxy_config),
])
def test_a_huge_value_in_the_server_or_proxy_config_is_quoted_briefly(tmp_path, name, text, load):
    path = tmp_path / name
    path.write_text(text.replace("VALUE", "x" * 1_000_000))
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    found = problems(exc)
    assert found and all(len(p) < len(str(path)) + 300 for p in found), [p[:300] for p in found]
    assert any("'xxxx" in p and "..." in p for p in found), found
