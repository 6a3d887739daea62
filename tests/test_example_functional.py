"""The bundled example zone, served by `gslb serve` as the README starts it, checked with the real `dig`
and compared with `gslb explain` (issue: dig and explain must agree)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from httpsite import free_port

pytestmark = pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) is not installed")


def dig(port: int, *args: str) -> str:
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=2", "+tries=1", *args],
                         check=False, capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def example_server():
    dns_port, api_port = free_port(), free_port()
    env = dict(os.environ, GSLB_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "serve", "--listen", f"127.0.0.1:{dns_port}",
                             "--api", f"127.0.0.1:{api_port}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and "192.0.2.10" not in dig(dns_port, "static.gslb.example.com", "A"):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    yield dns_port, api_port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


@pytest.mark.parametrize("subnet, address", [
    ("193.0.0.0/24", "198.51.100.1"),   # Europe -> eu-west
    ("1.0.0.0/24", "203.0.113.1"),      # Australia -> ap-southeast
])
def test_dig_subnet_picks_the_nearest_site(example_server, subnet, address):
    port, _ = example_server
    assert dig(port, "www.gslb.example.com", "A", f"+subnet={subnet}") == address


def test_dig_subnet_us_client_gets_the_us_site_by_weight(example_server):
    port, _ = example_server
    answers = {dig(port, "www.gslb.example.com", "A", "+subnet=8.8.8.0/24") for _ in range(30)}
    assert answers == {"192.0.2.1", "192.0.2.2"}     # us-east, weights 3:1


def test_dig_and_explain_agree(example_server):
    port, api = example_server
    for subnet in ("193.0.0.0/24", "1.0.0.0/24"):
        explained = subprocess.run(
            [sys.executable, "-m", "gslb", "explain", "www.gslb.example.com", "--subnet", subnet,
             "--api", f"http://127.0.0.1:{api}"], check=True, cwd=REPO, capture_output=True, text=True, timeout=20).stdout
        answer = dig(port, "www.gslb.example.com", "A", f"+subnet={subnet}")
        last = explained.strip().splitlines()[-1]
        assert last.endswith(f": {answer}") and "ecs scope /" in last, explained


def test_static_answer_and_aaaa(example_server):
    port, _ = example_server
    assert dig(port, "static.gslb.example.com", "A").split() == ["192.0.2.10", "192.0.2.11"]
    assert dig(port, "static.gslb.example.com", "AAAA") == "2001:db8::10"
