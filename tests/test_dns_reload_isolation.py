"""Hot reloads parse in a subprocess: an alias bomb dropped into zones/ is refused while DNS keeps answering
the last good zone, a big reload runs while queries are answered, and a parser that dies or runs out of
its memory cap costs that file only (the last good zone serves, the next reload gets a new parser)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from test_config_limits import alias_bomb
from zonegen import ORIGIN, write_zone

ZONE = """\
origin: b.test.
soa: {mname: ns1.b.test., rname: h.b.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {A: ADDRESS}
"""


def zone(address: str) -> str:
    return ZONE.replace("ADDRESS", address)


def a_of(srv, name: str = "www.b.test") -> str | None:
    r = srv.query(name, "A")
    return r.answer[0][0].address if r.answer else None


def zones_api(srv) -> dict:
    with urllib.request.urlopen(f"http://{srv.api[0]}:{srv.api[1]}/v1/zones", timeout=5) as resp:
        return json.load(resp)


def file_status(srv, name: str) -> dict | None:
    return next((f for f in zones_api(srv)["files"] if f["file"].endswith(name)), None)


def wait(predicate, limit: float):
    """Poll until predicate() is true(thy) and return it; fail when `limit` seconds pass first."""
    deadline = time.monotonic() + limit
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"condition not met within {limit} s"
        time.sleep(0.02)
    return value


def test_alias_bomb_hot_reload_is_refused_and_the_last_good_zone_serves(serve):
    srv = serve({"b.yaml": zone("192.0.2.1")})
    serial = zones_api(srv)["zones"][0]["serial"]
    path = srv.zone_dir / "b.yaml"
    path.write_text(alias_bomb(8))
    status = wait(lambda: (s := file_status(srv, "b.yaml")) and not s["ok"] and s, 30)
    assert status["problems"] == [(f"{path}:4: YAML aliases and anchors are not supported "
                                  "(an alias repeats the value anchored on line 3; write the value out)")]
    assert a_of(srv) == "192.0.2.1" and zones_api(srv)["zones"][0]["serial"] == serial
    path.write_text(zone("192.0.2.2"))
    wait(lambda: a_of(srv) == "192.0.2.2", 30)


def test_a_big_reload_parses_in_another_process_while_dns_answers(serve, tmp_path):
    """While a 30,000-name file is parsed in the parser process, queries get the last good answers."""
    srv = serve({"b.yaml": zone("192.0.2.1")})
    big = tmp_path / "big.yaml"
    write_zone(str(big), 30_000, 100)
    os.replace(big, srv.zone_dir / "big.yaml")      # whole, at once: the watcher never sees half a file
    parser = srv.server.parser
    wait(parser.busy.is_set, 30)
    worker = wait(lambda: parser.pid, 30)
    answered_during = 0
    while parser.busy.is_set() and answered_during < 50:
        assert a_of(srv) == "192.0.2.1"
        answered_during += parser.busy.is_set()
    assert answered_during > 0, "the reload finished before any query was answered"
    assert worker is not None and worker != os.getpid()
    loaded = wait(lambda: next((z for z in zones_api(srv)["zones"] if z["origin"] == f"{ORIGIN}."), None), 120)
    assert loaded["names"] == 30_002
    wait(lambda: a_of(srv, f"h1.{ORIGIN}") == "10.0.0.1", 30)     # the new table is swapped in right after
    assert a_of(srv) == "192.0.2.1"


def test_a_parser_killed_mid_file_costs_that_file_only_and_is_replaced(serve, tmp_path):
    srv = serve({"b.yaml": zone("192.0.2.1")})
    big = tmp_path / "big.yaml"
    write_zone(str(big), 30_000, 100)
    os.replace(big, srv.zone_dir / "big.yaml")
    parser = srv.server.parser
    wait(parser.busy.is_set, 30)
    os.kill(wait(lambda: parser.pid, 30), signal.SIGKILL)
    status = wait(lambda: (s := file_status(srv, "big.yaml")) and not s["ok"] and s, 60)
    assert status["problems"] == [(f"{srv.zone_dir / 'big.yaml'}:1: the process parsing zone files died on this "
                                  "file (killed, or out of memory: see limits: reload_memory_mb in the server config)")]
    assert a_of(srv) == "192.0.2.1"
    (srv.zone_dir / "b.yaml").write_text(zone("192.0.2.3"))      # the next reload gets a new parser
    wait(lambda: a_of(srv) == "192.0.2.3", 30)


def test_a_file_over_the_parser_memory_cap_fails_in_the_parser_not_the_server(serve):
    srv = serve({"b.yaml": zone("192.0.2.1")}, config_yaml="limits: {reload_memory_mb: 200}\n")
    # 2 MB of valid YAML that takes about 500 MB once parsed: every 2-byte list item becomes a node.
    path = srv.zone_dir / "b.yaml"
    big = srv.zone_dir.parent / "big.yaml"
    big.write_text(zone("192.0.2.1") + "  t: {TXT: [" + "1," * 1_000_000 + "1]}\n")
    os.replace(big, path)
    status = wait(lambda: (s := file_status(srv, "b.yaml")) and not s["ok"] and s, 60)
    assert status["problems"] in (
        [(f"{path}:1: parsing this file needs more than 200 MiB of memory (limits: reload_memory_mb in the "
         "server config)")],
        [(f"{path}:1: the process parsing zone files died on this file (killed, or out of memory: see "
         "limits: reload_memory_mb in the server config)")])
    assert a_of(srv) == "192.0.2.1"
    path.write_text(zone("192.0.2.4"))
    wait(lambda: a_of(srv) == "192.0.2.4", 30)
