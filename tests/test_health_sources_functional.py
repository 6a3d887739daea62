"""End to end over DNS: an endpoint checked at another address (check_address/check_port) is answered with
its own address; a health file written by "a monitoring system" moves answers within a check interval and
a broken edit of it leaves the last good state in force, logged with file:line."""

from __future__ import annotations

import logging
import os
import time

import pytest
from httpsite import HttpSite, free_port

A, CHECKED, B = "127.0.0.51", "127.0.0.52", "127.0.0.53"


def answer(srv, name: str) -> list[str]:
    return sorted(rd.address for rrset in srv.query(name, "A").answer for rd in rrset)


def wait_for(what, limit: float, step: float = 0.02) -> float:
    """Seconds until what() is true; fails after `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if what():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not true after {limit} s")


def state_of(srv, address: str) -> str | None:
    health = srv.server.health
    return next((h.state for t, h in health.targets.items() if t.address == address), None)


@pytest.fixture
def checked_sites():
    check_port, port = free_port(CHECKED), free_port(B)
    made = [HttpSite(CHECKED, check_port).start(), HttpSite(B, port).start()]
    yield check_port, port, made
    for site in made:
        site.close()


def test_check_address_checks_one_address_and_answers_another(serve, checked_sites):
    check_port, port, (checked, _) = checked_sites
    srv = serve({"c.yaml": f"""\
        origin: c.test.
        soa: {{mname: ns1.c.test., rname: h.c.test.}}
        records:
          "@": {{NS: ns1.other.test.}}
          www: {{pool: web}}
        pools:
          web:
            policy: failover
            ttl: 5
            check: {{type: http, port: {port}, path: /healthz, interval: 0.2}}
            sites:
              a:
                lat: 0
                lon: 0
                endpoints: [{{address: {A}, check_address: {CHECKED}, check_port: {check_port}}}]
              b: {{lat: 0, lon: 0, endpoints: [{B}]}}
        """})
    # Nothing listens on A: were A itself checked, it would go down; it goes up from CHECKED's answers.
    wait_for(lambda: state_of(srv, CHECKED) == "up" and state_of(srv, B) == "up", 5)
    assert state_of(srv, A) is None
    assert {peer for peer, _ in checked.seen} == {"127.0.0.1"} and len(checked.seen) >= 2
    assert answer(srv, "www.c.test") == [A]
    checked.stop()                                 # the health port goes away: the answer A is withdrawn
    wait_for(lambda: answer(srv, "www.c.test") == [B], 3)
    checked.start()
    wait_for(lambda: answer(srv, "www.c.test") == [A], 3)


def _rewrite(path, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


INTERVAL = 0.5


def test_health_file_drives_answers_and_a_broken_edit_keeps_the_last_good_state(serve, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gslb.health")
    zone = f"""\
        origin: e.test.
        soa: {{mname: ns1.e.test., rname: h.e.test.}}
        records:
          "@": {{NS: ns1.other.test.}}
          www: {{pool: web}}
        pools:
          web:
            policy: failover
            ttl: 5
            check: {{type: file, path: monitor/health.txt, interval: {INTERVAL}}}
            sites:
              a: {{lat: 0, lon: 0, endpoints: [{A}]}}
              b: {{lat: 0, lon: 0, endpoints: [{B}]}}
        """
    # The file is there before the server (as a monitoring system would have it), next to the zone file.
    zone_dir = tmp_path / "s0" / "zones"
    (zone_dir / "monitor").mkdir(parents=True)
    path = zone_dir / "monitor" / "health.txt"
    _rewrite(path, f"{A} up\n{B} up\n")
    srv = serve({"e.yaml": zone})
    wait_for(lambda: state_of(srv, A) == "up" and state_of(srv, B) == "up", 3)
    assert answer(srv, "www.e.test") == [A]

    _rewrite(path, f"# nagios\n{A} down   db replica lagging\n{B} up\n")
    took = wait_for(lambda: answer(srv, "www.e.test") == [B], 3)
    print(f"health file edit -> answer moved after {took:.2f} s (check interval {INTERVAL} s)")
    assert took <= INTERVAL + 0.5
    reason = srv.server.health.of(next(t for t in srv.server.health.targets if t.address == A)).reason
    assert "db replica lagging" in reason and f"{path}:2" in reason

    _rewrite(path, f"{A} up\n{B} sideways\n")     # broken: nothing of it is used
    wait_for(lambda: f"{path}:2: state 'sideways', expected up or down" in caplog.text, 3)
    held_until = time.monotonic() + 3 * INTERVAL
    while time.monotonic() < held_until:           # A stays down: the last good file is in force
        assert answer(srv, "www.e.test") == [B]
        time.sleep(0.05)

    _rewrite(path, f"{A} up\n{B} up\n")
    took = wait_for(lambda: answer(srv, "www.e.test") == [A], 3)
    assert took <= INTERVAL + 0.5
