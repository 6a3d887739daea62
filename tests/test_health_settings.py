"""The `health:` section of the server config: defaults, every key, and each problem with file:line."""

from __future__ import annotations

import os

import pytest

from gslb.config.health import HealthSettings, parse_health_settings
from gslb.config.server import load_server_config
from gslb.config.yamlsrc import load_yaml
from gslb.errors import ConfigError


def parse(text: str) -> tuple[HealthSettings, list[str]]:
    problems: list = []
    src = load_yaml(text, "/etc/gslb/server.yaml")
    settings = parse_health_settings(src["health"], problems, where=("/etc/gslb/server.yaml", src.line_of("health")))
    return settings, [f"{p.file}:{p.line}: {p.what}" for p in problems]


def test_defaults(monkeypatch):
    monkeypatch.delenv("GSLB_SECRET", raising=False)
    assert parse_health_settings(None, []) == HealthSettings(
        region=None, embedded=True, quorum="majority", secret=None, state_dir="state",
        state_max_age=300.0, grace=30.0, report_interval=1.0)


def test_every_key(monkeypatch):
    monkeypatch.delenv("GSLB_SECRET", raising=False)
    settings, problems = parse("""\
health:
  region: eu-west-1
  embedded: false
  quorum: 2
  secret: s3cret
  state_dir: run/health
  state_max_age: 60
  grace: 10
  report_interval: 0.5
""")
    assert problems == []
    assert settings == HealthSettings(region="eu-west-1", embedded=False, quorum=2, secret="s3cret",
                                      state_dir="/etc/gslb/run/health", state_max_age=60.0, grace=10.0,
                                      report_interval=0.5)


def test_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("GSLB_SECRET", "from-env")
    assert parse_health_settings(None, []).secret == "from-env"
    assert parse("health: {region: x}\n")[0].secret == "from-env"
    assert parse("health: {secret: from-file}\n")[0].secret == "from-file"


def test_state_dir_off_and_absolute():
    assert parse("health: {state_dir: null}\n")[0].state_dir is None
    assert parse("health: {state_dir: ''}\n")[0].state_dir is None
    assert parse("health: {state_dir: /var/lib/gslb}\n")[0].state_dir == "/var/lib/gslb"


@pytest.mark.parametrize("text, problem", [
    ("health: [1, 2]\n", "/etc/gslb/server.yaml:1: health: [1, 2], expected a mapping"),
    ("health:\n  region: x\n  colour: blue\n",
     ("/etc/gslb/server.yaml:3: health colour: unknown key (known: embedded, grace, quorum, region, "
      "region_keys, report_interval, secret, state_dir, state_max_age)")),
    ("health:\n  embedded: yes please\n", "/etc/gslb/server.yaml:2: health embedded: 'yes please', expected true or false"),
    ("health:\n  quorum: most\n",
     "/etc/gslb/server.yaml:2: health quorum: 'most', expected majority, any, all or a number of regions >= 1"),
    ("health:\n  quorum: 0\n",
     "/etc/gslb/server.yaml:2: health quorum: 0, expected majority, any, all or a number of regions >= 1"),
    ("health:\n  quorum: true\n",
     "/etc/gslb/server.yaml:2: health quorum: True, expected majority, any, all or a number of regions >= 1"),
    ("health:\n  grace: -1\n", "/etc/gslb/server.yaml:2: health grace: -1, expected seconds >= 0"),
    ("health:\n  state_max_age: soon\n", "/etc/gslb/server.yaml:2: health state_max_age: 'soon', expected seconds >= 0"),
    ("health:\n  report_interval: 0.01\n",
     "/etc/gslb/server.yaml:2: health report_interval: 0.01, expected seconds >= 0.1"),
    ("health:\n  region: ''\n", "/etc/gslb/server.yaml:2: health region: '', expected a non-empty string"),
    ("health:\n  secret: 42\n", "/etc/gslb/server.yaml:2: health secret: expected a non-empty string"),
])
def test_problems_name_file_and_line(text, problem):
    assert parse(text)[1] == [problem]


def test_server_config_reports_health_problems_with_the_others(tmp_path):
    config = tmp_path / "server.yaml"
    config.write_text("listen: 127.0.0.1:53\nhealth: on\n")
    with pytest.raises(ConfigError) as err:
        load_server_config(str(config))
    assert [f"{p.file}:{p.line}: {p.what}" for p in err.value.problems] == [
        f"{config}:2: health: True, expected a mapping"]
    config.write_text("health: {state_dir: st}\n")
    assert load_server_config(str(config)).health.state_dir == os.path.join(str(tmp_path), "st")
