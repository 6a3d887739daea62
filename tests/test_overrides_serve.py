"""Overrides on a running server, over real DNS and HTTP: overrides.yaml applied and reloaded (a broken
edit keeps the last good one), `until` taking effect on time by itself, the API's runtime overrides
(auth, 404 for unknown selectors, shown with reason/source/by/expiry), and runtime overrides that outlive
a restart even when health.json is too old to be used."""

from __future__ import annotations

import datetime
import json
import logging
import os
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request

from zonetext import pool_zone

ZONE = pool_zone("ov.test", {"a": ["10.0.1.1", "10.0.1.2"], "b": ["10.0.2.1"]}, answers=4)
BOTH_A, ONLY_B = ["10.0.1.1", "10.0.1.2"], ["10.0.2.1"]
TOKEN = "operator-token-0123456789"
CONFIG = f"api: {{token: {TOKEN}}}\nhealth: {{report_interval: 30}}\n"   # no report tick during a test


def answers(srv) -> list[str]:
    return sorted(rd.address for rrset in srv.query("www.ov.test", "A").answer for rd in rrset)


def wait_answers(srv, expected: list[str], limit: float) -> float:
    """Seconds until the answer is `expected` (polled); fails after `limit`."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if answers(srv) == expected:
            return time.monotonic() - start
        time.sleep(0.01)
    raise AssertionError(f"answer still {answers(srv)}, not {expected}, after {limit} s")


def wait_until(condition, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not seen within {limit} s")


def write_overrides(srv, text: str) -> None:
    path = srv.zone_dir / "overrides.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(textwrap.dedent(text))
    os.replace(tmp, path)


def api(srv, method: str, path: str, body: dict | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}{path}", method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def rfc3339(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_file_overrides_apply_reload_and_keep_the_last_good_file(serve):
    srv = serve({"ov.yaml": ZONE}, config_yaml=CONFIG)
    assert answers(srv) == BOTH_A
    write_overrides(srv, """\
        overrides:
          - {selector: web/a, state: down, reason: "CHG-1 rack move", by: alice}
        """)
    wait_answers(srv, ONLY_B, 3)                                      # a site
    write_overrides(srv, """\
        overrides:
          - {selector: web/a/10.0.1.1, state: down, reason: "disk"}
        """)
    wait_answers(srv, ["10.0.1.2"], 3)                                # an address
    write_overrides(srv, """\
        overrides:
          - {selector: web/a/10.0.1.1, state: down, reason: "disk"}
          - {selector: web/b, state: sideways, reason: "a broken edit"}
        """)
    problems = srv.server.health_service.overrides
    wait_until(lambda: problems.file_problems, 3, "the broken edit")
    path = srv.zone_dir / "overrides.yaml"
    assert problems.file_problems == (
        f"{path}:3: entry 2: state: 'sideways', expected down (drain) or up (answer it over failing checks)",)
    assert answers(srv) == ["10.0.1.2"]                               # the last good file holds
    write_overrides(srv, """\
        overrides:
          - {selector: "web/a/10.0.1.0/30", state: down, reason: "the rack"}
        """)
    wait_answers(srv, ONLY_B, 3)                                      # a CIDR
    assert problems.file_problems == ()
    write_overrides(srv, """\
        overrides:
          - {selector: web, state: down, reason: "everything"}
        """)
    # every endpoint forced down: even all_down serve_all does not answer them (NODATA)
    wait_until(lambda: answers(srv) == [], 3, "NODATA with every endpoint forced down")
    os.remove(path)
    wait_answers(srv, BOTH_A, 3)                                      # the file gone: health decides again


def test_until_takes_effect_on_time_without_any_report(serve, caplog):
    caplog.set_level(logging.INFO, logger="gslb.overrides")
    srv = serve({"ov.yaml": ZONE}, config_yaml=CONFIG)
    until = time.time() + 1.5
    write_overrides(srv, f"""\
        overrides:
          - {{selector: web/a, state: down, reason: "short window", until: "{rfc3339(until)}"}}
        """)
    wait_answers(srv, ONLY_B, 1.4)
    wait_answers(srv, BOTH_A, until - time.time() + 1.0)
    late = time.time() - until
    assert -0.05 <= late < 0.5, late                                  # on time: the timer, not a report
    service = srv.server.health_service
    srv.call(service.overrides.expire)
    srv.call(service.overrides.expire)
    expired = [r.message for r in caplog.records if "expired at" in r.message]
    assert len(expired) == 1 and "web/a down" in expired[0] and "overrides.yaml:2" in expired[0]
    # the same over the API, with `for`: the entry is removed from the state file when it ends
    status, answer = api(srv, "POST", "/v1/overrides", {"selector": "web/a", "state": "down", "reason": "brief",
                                                        "for": 1})
    assert status == 200 and answer["override"]["until"] > time.time()
    assert answers(srv) == ONLY_B
    wait_answers(srv, BOTH_A, 2.0)
    saved = json.loads((srv.zone_dir.parent / "state" / "overrides.json").read_text())
    assert saved["overrides"] == []


def test_api_overrides_set_show_and_clear(serve):
    srv = serve({"ov.yaml": ZONE}, config_yaml=CONFIG)
    write_overrides(srv, """\
        overrides:
          - {selector: web/b, state: down, reason: "b is being rebuilt"}
        """)
    wait_until(lambda: srv.server.health_service.overrides.file_entries, 3, "the file")
    drain = {"selector": "web/a/10.0.1.1", "state": "down", "reason": "CHG-7 kernel", "for": "2h", "by": "bob"}
    assert api(srv, "POST", "/v1/overrides", drain, token=None)[0] == 401
    assert api(srv, "POST", "/v1/overrides", drain, token="wrong")[0] == 401
    assert api(srv, "POST", "/v1/overrides", {**drain, "selector": "web/c"}) == (
        404, {"error": "web/c: no site 'c' in pool web (sites: a, b)"})
    assert api(srv, "POST", "/v1/overrides", {**drain, "selector": "web/a/10.0.9.9"})[0] == 404
    assert api(srv, "POST", "/v1/overrides", {**drain, "state": "off"})[0] == 400
    assert api(srv, "POST", "/v1/overrides", {k: v for k, v in drain.items() if k != "reason"})[0] == 400
    assert api(srv, "POST", "/v1/overrides", {**drain, "until": "2030-01-01T00:00:00Z"}) == (
        400, {"error": "give until or for, not both"})
    assert api(srv, "POST", "/v1/overrides", {**drain, "for": None, "until": "2001-01-01T00:00:00Z"}) == (
        400, {"error": "until: that time has passed"})
    assert api(srv, "POST", "/v1/overrides", {**drain, "colour": "red"})[0] == 400
    assert answers(srv) == BOTH_A
    started = time.monotonic()
    status, answer = api(srv, "POST", "/v1/overrides", drain)
    assert status == 200 and answer["override"]["matches"] == 1 and not answer["replaced"]
    assert answers(srv) == ["10.0.1.2"]                               # at once, on the next query
    print(f"API drain to answers: {time.monotonic() - started:.3f} s")
    # shown with reason, source, by and expiry in /v1/overrides, /v1/health and explain
    status, listing = api(srv, "GET", "/v1/overrides", token=None)
    by_selector = {o["selector"]: o for o in listing["overrides"]}
    api_entry, file_entry = by_selector["web/a/10.0.1.1"], by_selector["web/b"]
    assert (api_entry["source"], api_entry["by"], api_entry["reason"], api_entry["active"]) == (
        "api", "bob", "CHG-7 kernel", True)
    assert 7190 < api_entry["until"] - time.time() <= 7200 and api_entry["until_text"].endswith("Z")
    assert (file_entry["source"], file_entry["line"], file_entry["until"], file_entry["deciding"]) == ("file", 2, None, 1)
    status, health = api(srv, "GET", "/v1/health", token=None)
    endpoints = {e["address"]: e for s in health["zones"][0]["pools"][0]["sites"] for e in s["endpoints"]}
    assert endpoints["10.0.1.1"]["override"]["reason"] == "CHG-7 kernel"
    assert endpoints["10.0.1.1"]["why"] == "down (override web/a/10.0.1.1, api)" and not endpoints["10.0.1.1"]["answered"]
    assert endpoints["10.0.2.1"]["override"]["source"] == "file" and endpoints["10.0.1.2"]["override"] is None
    assert {o["selector"] for o in health["overrides"]} == {"web/a/10.0.1.1", "web/b"}
    status, explained = api(srv, "GET", "/v1/explain?name=www.ov.test&type=A", token=None)
    assert any("note: override web/a/10.0.1.1 down (api by bob until " in line and "CHG-7 kernel" in line
               for line in explained["lines"]), explained["lines"]
    # the file's entry cannot be cleared over the API; the API's can
    query = urllib.parse.urlencode({"selector": "web/b"})
    status, answer = api(srv, "DELETE", f"/v1/overrides?{query}")
    assert status == 409 and "overrides.yaml:2" in answer["error"]
    assert api(srv, "DELETE", "/v1/overrides?selector=web/a/10.0.1.1", token=None)[0] == 401
    assert api(srv, "DELETE", "/v1/overrides?selector=web/a")[0] == 404
    status, answer = api(srv, "DELETE", "/v1/overrides?selector=web/a/10.0.1.1")
    assert status == 200 and answer["cleared"]["reason"] == "CHG-7 kernel"
    assert answers(srv) == BOTH_A


def test_api_override_beats_the_file_and_up_beats_failing_checks(serve):
    zone = pool_zone("ov.test", {"a": ["127.0.0.1"], "b": ["127.0.0.2"]}, answers=4,
                     check="{type: tcp, port: 9, interval: 0.2, timeout: 0.2, rise: 1, fall: 1}")
    srv = serve({"ov.yaml": zone}, config_yaml=f"api: {{token: {TOKEN}}}\nhealth: {{report_interval: 0.2}}\n")
    # nothing listens on port 9: both sites fail their checks
    wait_until(lambda: all(h.state == "down" for h in srv.server.health.targets.values())
               and len(srv.server.health.targets) == 2, 5, "both endpoints down")
    assert answers(srv) == ["127.0.0.1"]                              # all down: serve_all, failover order
    write_overrides(srv, "overrides:\n  - {selector: web/b, state: up, reason: the check is wrong}\n")
    wait_answers(srv, ["127.0.0.2"], 3)                               # forced up over failing checks
    status, _ = api(srv, "POST", "/v1/overrides", {"selector": "web", "state": "down", "reason": "all out"})
    assert status == 200
    assert answers(srv) == []                                         # the API's pool-wide down beats the file


def test_runtime_overrides_survive_a_restart_with_an_old_state_file(serve, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state = tmp_path / "shared-state"
    config = f"api: {{token: {TOKEN}}}\nhealth: {{state_dir: {state}, state_max_age: 300}}\n"
    first = serve({"ov.yaml": ZONE}, config_yaml=config)
    status, _ = api(first, "POST", "/v1/overrides", {"selector": "web/a", "state": "down", "reason": "CHG-9",
                                                      "by": "carol"})
    assert status == 200 and answers(first) == ONLY_B
    first.call(first.server.health_service.save)                      # health.json written, as at a stop
    assert (state / "health.json").exists() and (state / "overrides.json").exists()
    # The node stays down longer than state_max_age: both files are old (health.json by its own stamp).
    old = time.time() - 1000
    body = json.loads((state / "health.json").read_text())
    body["saved_at"] = old
    (state / "health.json").write_text(json.dumps(body))
    for name in ("health.json", "overrides.json"):
        os.utime(state / name, (old, old))
    caplog.clear()
    second = serve({"ov.yaml": ZONE}, config_yaml=config)
    assert any("not used" in r.message and "health.json" in r.message for r in caplog.records)
    assert answers(second) == ONLY_B                                  # from the first answer on
    entry = second.server.health_service.overrides.api
    assert [(str(s), e.by, e.reason) for s, e in entry.items()] == [("web/a", "carol", "CHG-9")]
    status, _ = api(second, "DELETE", "/v1/overrides?selector=web/a")
    assert status == 200 and answers(second) == BOTH_A
    third = serve({"ov.yaml": ZONE}, config_yaml=config)
    assert answers(third) == BOTH_A                                   # a clear is kept too


def test_overrides_from_an_older_health_json_are_taken_over(serve, tmp_path):
    state = tmp_path / "legacy"
    state.mkdir()
    (state / "health.json").write_text(json.dumps({"saved_at": time.time() - 5000, "overrides": {"10.0.1.1": "down"},
                                                   "combined": [], "targets": []}))
    srv = serve({"ov.yaml": ZONE}, config_yaml=f"health: {{state_dir: {state}}}\n")
    assert answers(srv) == ["10.0.1.2"]
    saved = json.loads((state / "overrides.json").read_text())["overrides"]
    assert [(o["selector"], o["state"]) for o in saved] == [("*/*/10.0.1.1", "down")]
