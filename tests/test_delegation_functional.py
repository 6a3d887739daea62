"""Delegation for real: a local unbound resolver with a stub-zone for gslb.example.com pointing at a
`gslb serve` process on loopback, asked with `dig` through the resolver."""

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

pytestmark = pytest.mark.skipif(not (shutil.which("unbound") and shutil.which("dig")),
                                reason="needs the unbound and dnsutils Debian packages")


def dig(port: int, *args: str) -> str:
    return subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
                          capture_output=True, text=True, timeout=15, check=False).stdout


def test_resolver_with_a_stub_zone_returns_our_answers(tmp_path):
    gslb_port, unbound_port = free_port(), free_port()
    env = dict(os.environ, GSLB_LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "-m", "gslb", "serve", "--listen", f"127.0.0.1:{gslb_port}",
                               "--api", "off"], cwd=REPO, env=env)
    conf = tmp_path / "unbound.conf"
    conf.write_text(f"""server:
    interface: 127.0.0.1
    port: {unbound_port}
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "{tmp_path}"
    pidfile: "{tmp_path}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
    qname-minimisation: no
remote-control:
    control-enable: no
stub-zone:
    name: "gslb.example.com"
    stub-addr: 127.0.0.1@{gslb_port}
""")
    resolver = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 20
        out = ""
        while time.time() < deadline:
            assert server.poll() is None and resolver.poll() is None, resolver.stderr.read()[-2000:]
            out = dig(unbound_port, "static.gslb.example.com", "A")
            if "192.0.2.10" in out:
                break
            time.sleep(0.3)
        assert "status: NOERROR" in out and "192.0.2.10" in out and "192.0.2.11" in out
        assert " ra" in out.split("flags:")[1].split(";")[0]         # answered by the recursive resolver
        out = dig(unbound_port, "www.gslb.example.com", "A", "+short")
        assert out.strip() in {"192.0.2.1", "192.0.2.2"}             # the pool's site for a local client
        assert "NXDOMAIN" in dig(unbound_port, "missing.gslb.example.com", "A")
    finally:
        for proc in (resolver, server):
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
