"""`gslb check --proxy FILE`: a proxy config checked without starting the proxy, every problem file:line."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "check", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=False)


def test_the_example_proxy_config_is_ok():
    result = check("--proxy", "examples/proxy.yaml")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "examples/proxy.yaml: ok: 1 pools, 2 routes"


def test_mistakes_are_listed_with_file_and_line(tmp_path):
    path = tmp_path / "proxy.yaml"
    path.write_text("listen: 127.0.0.1:8080\n"
                    "pools:\n"
                    "  app:\n"
                    "    algorithm: round-robin\n"                # 4: not a name of the registry
                    "    backends: [127.0.0.1:9001, nowhere]\n"   # 5: no port
                    "routes:\n"
                    "  - {default: true, pool: ap}\n")            # 7: no such pool
    result = check("--proxy", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        (f"{path}:4: pool 'app': algorithm 'round-robin', expected one of round_robin, weighted_round_robin, "
         "least_connections, random, power_of_two, ewma, ip_hash, consistent_hash"),
        f"{path}:5: pool 'app': backend 2: address 'nowhere' is not HOST:PORT",
        f"{path}:7: route 1: pool 'ap' does not exist",
        "3 problems found"]


def test_a_zone_path_is_checked_too_when_given(tmp_path):
    path = tmp_path / "proxy.yaml"
    path.write_text("pools: {app: {backends: ['127.0.0.1:9001']}}\nroutes: [{default: true, pool: app}]\n")
    result = check("zones", "--proxy", str(path), "--data", "data")
    assert result.returncode == 0, result.stdout
    assert f"{path}: ok: 1 pools, 1 routes" in result.stdout and "gslb.example.com." in result.stdout
