"""Events (gslb/events.py): the ring and its ids, and a running server's state changes as events over
GET /v1/events: an endpoint withdrawn and returned (real HTTP endpoints, the embedded prober), overrides set
and cleared over the API, zone files loaded and refused; each logged once, at its level."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import pytest
from httpsite import HttpSite, free_port
from zonetext import http_check, pool_zone

from gslb.events import KINDS, EventLog, events_document, query_since

A, B = "127.0.0.41", "127.0.0.42"
TOKEN = "operator-token-events-0123456789"
CONFIG = f"api: {{token: {TOKEN}}}\nhealth: {{report_interval: 0.2}}\n"


def zone(port: int, policy: str = "failover") -> str:
    return pool_zone("ev.test", {"a": [A], "b": [B]}, policy=policy,
                     check=http_check(port, interval=0.2, timeout=0.5, rise=1, fall=1))


@pytest.fixture
def sites():
    port = free_port(A)
    made = [HttpSite(A, port).start(), HttpSite(B, port).start()]
    yield port, made
    for site in made:
        site.close()


def api(srv, path: str, body: dict | None = None, method: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_event(srv, kind: str, limit: float = 5.0, **names: str) -> dict:
    """The first event of `kind` naming `names`, polled over GET /v1/events."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for event in api(srv, "/v1/events?since=0")[1]["events"]:
            if event["kind"] == kind and all(event[k] == v for k, v in names.items()):
                return event
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event naming {names} within {limit} s: "
                         f"{[e['kind'] for e in api(srv, '/v1/events')[1]['events']]}")


# --- the ring ----------------------------------------------------------------------------------------

def test_ids_grow_the_ring_is_bounded_and_since_returns_what_is_newer(caplog):
    clock = iter(range(1000, 2000))
    events = EventLog(size=3, node="n1", clock=lambda: float(next(clock)))
    seen = []
    events.subscribe(seen.append)
    logger = logging.getLogger("gslb.test")
    with caplog.at_level(logging.INFO, logger="gslb.test"):
        made = [events.emit(logger, "zone.loaded", f"loaded {i}", zone="z.", reason=f"serial {i}") for i in range(5)]
    assert [e.id for e in made] == sorted({e.id for e in made})          # unique and growing
    assert made[0].id >= 1000 * 1000                                     # from the clock in ms: grows over restarts
    assert [e.message for e in events.since(0)] == ["loaded 2", "loaded 3", "loaded 4"]   # the last 3 kept
    assert [e.message for e in events.since(made[3].id)] == ["loaded 4"]
    assert seen == made                                                  # every subscriber told of every event
    assert [r.getMessage() for r in caplog.records] == [f"loaded {i}" for i in range(5)]   # logged once each
    assert caplog.records[0].event == "zone.loaded" and caplog.records[0].zone == "z."
    doc = events_document(events, made[0].id, 10)
    assert doc["truncated"] is True and doc["node"] == "n1"              # event 1 was pushed out: the client missed it
    assert events_document(events, made[2].id, 10)["truncated"] is False
    assert [e["message"] for e in events_document(events, 0, 1)["events"]] == ["loaded 4"]
    assert doc["events"][0] == {**doc["events"][0], "kind": "zone.loaded", "level": "info", "zone": "z.",
                                "pool": None, "reason": "serial 2"}


def test_levels_a_return_is_info_and_a_loss_is_not():
    assert KINDS["endpoint.returned"] == KINDS["fail_open.left"] == KINDS["region.back"] == logging.INFO
    assert KINDS["endpoint.withdrawn"] == KINDS["region.silent"] == KINDS["backend.ejected"] == logging.WARNING
    assert KINDS["fail_open.entered"] == KINDS["zone.refused"] == logging.ERROR


def test_since_and_limit_must_be_numbers():
    assert query_since({"since": "12", "limit": "5"}) == (12, 5)
    for bad in ({"since": "x"}, {"limit": "0"}, {"since": "1.5"}):
        with pytest.raises(ValueError):
            query_since(bad)


# --- a running server --------------------------------------------------------------------------------

def test_a_killed_endpoint_is_withdrawn_then_returned_once_each_at_its_level(serve, sites, caplog):
    caplog.set_level(logging.INFO, logger="gslb.health")
    port, (site_a, _) = sites
    srv = serve({"ev.yaml": zone(port)}, config_yaml=CONFIG)
    loaded = wait_event(srv, "zone.loaded", zone="ev.test.")
    assert loaded["reason"].startswith("serial ") and loaded["node"] == srv.server.config.node_id
    wait_event(srv, "region.back")                     # the embedded prober's first report
    site_a.stop()
    down = wait_event(srv, "endpoint.withdrawn", address=A)
    assert (down["zone"], down["pool"], down["site"], down["level"]) == ("ev.test.", "web", "a", "warning")
    assert down["reason"]
    site_a.start()
    back = wait_event(srv, "endpoint.returned", address=A)
    assert (back["pool"], back["site"], back["level"]) == ("web", "a", "info") and back["id"] > down["id"]
    newer = api(srv, f"/v1/events?since={down['id']}")[1]["events"]
    assert down["id"] not in [e["id"] for e in newer] and back["id"] in [e["id"] for e in newer]
    records = [r for r in caplog.records if getattr(r, "address", None) == A]
    assert [(r.event, r.levelno) for r in records] == [("endpoint.withdrawn", logging.WARNING),
                                                       ("endpoint.returned", logging.INFO)]


def test_overrides_and_zone_edits_are_events(serve, sites):
    port, _ = sites
    srv = serve({"ev.yaml": zone(port)}, config_yaml=CONFIG)
    status, _ = api(srv, "/v1/overrides", {"selector": "web/b", "state": "down", "reason": "CHG-9 rack move",
                                           "for": "1h", "by": "erin"})
    assert status == 200
    made = wait_event(srv, "override.set", pool="web", site="b")
    assert made["reason"] == "CHG-9 rack move" and made["level"] == "warning"
    assert api(srv, "/v1/overrides?selector=web/b", method="DELETE")[0] == 200
    cleared = wait_event(srv, "override.cleared", pool="web", site="b")
    assert cleared["level"] == "info" and cleared["id"] > made["id"]
    (srv.zone_dir / "ev.yaml").write_text(zone(port, policy="fastest"))
    refused = wait_event(srv, "zone.refused", zone="ev.test.")
    assert "fastest" in refused["reason"] and refused["level"] == "error"
    assert api(srv, "/v1/events?since=nope")[0] == 400
    only = api(srv, "/v1/events?kind=override.")[1]["events"]
    assert {e["kind"] for e in only} == {"override.set", "override.cleared"}
