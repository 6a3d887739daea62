"""Packaging for a fleet: the distribution's name, `gslb --version`, the example systemd units."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO

import gslb
from gslb.cli import DISTRIBUTION

UNITS = REPO / "contrib" / "systemd"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def test_the_distribution_is_not_called_gslb_and_the_command_is():
    """`gslb` on PyPI is another project (a graph learning benchmark): ours is `gslb-server`, and the
    command it installs is still `gslb`."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "gslb-server"
    assert project["scripts"] == {"gslb": "gslb.cli:main"}


def test_gslb_version_names_the_installed_version():
    out = subprocess.run([sys.executable, "-m", "gslb", "--version"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == f"gslb {gslb.__version__}"
    # The installed metadata (what `pip show gslb-server` says) and the package agree.
    assert metadata.version(DISTRIBUTION) == gslb.__version__


def test_gslb_version_falls_back_to_the_package_when_not_installed(monkeypatch):
    from gslb import cli

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cli.metadata, "version", not_installed)
    assert cli.version() == gslb.__version__


def _units(tmp_path: Path) -> list[Path]:
    """The example units as systemd would load them: ExecStart pointing at this venv's `gslb` (verify
    checks that the command exists) and the probe template instantiated for one region."""
    gslb_bin = Path(sys.executable).with_name("gslb")
    assert gslb_bin.exists(), f"{gslb_bin}: install the project into the venv (scripts/install)"
    out = []
    for unit in sorted(UNITS.glob("*.service")):
        name = unit.name.replace("@.service", "@eu-west-1.service")
        path = tmp_path / name
        path.write_text(unit.read_text().replace("/usr/local/bin/gslb", str(gslb_bin)))
        out.append(path)
    return out


def test_every_unit_is_there_with_what_a_fleet_needs():
    units = {p.name: p.read_text() for p in UNITS.glob("*.service")}
    assert set(units) == {"gslb-serve.service", "gslb-probe@.service", "gslb-proxy.service"}
    for name, text in units.items():
        assert "ExecReload=/bin/kill -HUP $MAINPID" in text, name
        assert "NoNewPrivileges=yes" in text and "ProtectSystem=strict" in text, name
        assert "LimitNOFILE=" in text, name
    # The DNS server and the proxy bind privileged ports; the prober binds none and gets no capability.
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in units["gslb-serve.service"]
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in units["gslb-proxy.service"]
    assert "CapabilityBoundingSet=\n" in units["gslb-probe@.service"]
    # Health and API overrides outlive a restart only in a kept directory.
    assert "StateDirectory=gslb\n" in units["gslb-serve.service"]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    units = _units(tmp_path)
    run = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", *map(str, units)], capture_output=True,
                         text=True, timeout=60, check=False)
    # verify exits 0 on an unknown key or a bad value and only prints a warning naming the file: any
    # line about one of our units is a fault.
    said = [line for line in (run.stdout + run.stderr).splitlines()
            if any(u.name in line or u.stem in line for u in units)]
    assert run.returncode == 0 and not said, run.stdout + run.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt directive in a unit is reported."""
    unit = _units(tmp_path)[0]
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps"))
    run = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert unit.name in run.stdout + run.stderr


def test_the_example_server_config_loads():
    """contrib/systemd/server.yaml is a valid server config, with the state kept where the unit keeps it."""
    from gslb.config.server import load_server_config
    config = load_server_config(str(UNITS / "server.yaml"))
    assert config.health.state_dir == "/var/lib/gslb"
    assert config.health.region == "eu-west-1"


def test_a_verb_imports_only_its_own_module():
    """`gslb drain` and `gslb status` during an incident start without the server's imports (aiohttp)."""
    code = ("import sys; from gslb.cli import build_parser; "
            "build_parser(['status', '--api', 'http://a', '--api', 'http://b']); "
            "build_parser(['drain', 'web/a', '--reason', 'x', '--api', 'http://a']); "
            "print('aiohttp' in sys.modules, 'dnslib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
    # With no verb named, every verb is there (help, errors listing the choices).
    from gslb.cli import VERBS, build_parser
    choices = build_parser([])._subparsers._group_actions[0].choices
    assert set(choices) == set(VERBS)
