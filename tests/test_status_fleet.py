"""`gslb status` over several nodes: the comparison itself, on the documents nodes serve (the
end-to-end run against real nodes is in tests/test_fleet_functional.py)."""

from __future__ import annotations

import copy

from gslb.cmds.fleet import Node, compare, render


def endpoint(address: str, state: str = "up", answered: bool = True) -> dict:
    return {"address": address, "state": state, "answered": answered, "why": "", "reason": "", "regions": {}}


def health(node_id: str, *, overrides: list | None = None, probers: dict | None = None, refused: list | None = None,
           b_state: tuple[str, bool] = ("up", True)) -> dict:
    return {"region": None, "version": 3, "fail_open": False, "node_id": node_id,
            "probers": probers if probers is not None else {"eu-west-1": {"live": True, "age": 0.2}},
            "reports": {"accepted": 10, "refused": {}, "refused_from": refused or []},
            "overrides": overrides or [],
            "zones": [{"origin": "f.test.", "pools": [{"name": "web", "policy": "failover", "check": "http", "sites": [
                {"name": "a", "status": "auto", "endpoints": [endpoint("192.0.2.1")]},
                {"name": "b", "status": "auto", "endpoints": [endpoint("192.0.2.2", *b_state)]}]}]}]}


def zones(serial: int = 2026120101) -> dict:
    return {"zones": [{"origin": "f.test.", "serial": serial}]}


DRAIN = {"selector": "web/b", "state": "down", "source": "api", "reason": "CHG-1 rack move", "by": "alice",
         "until": 2000000000.0, "until_text": "2033-05-18T03:33:20Z", "active": True}


def nodes(*docs: tuple[dict, dict]) -> list[Node]:
    return [Node(f"n{i}", f"http://127.0.0.{i}:8053", h, z) for i, (h, z) in enumerate(docs, 1)]


def test_nodes_that_agree_exit_0():
    view = compare(nodes((health("n1", overrides=[DRAIN]), zones()), (health("n2", overrides=[DRAIN]), zones())), 0)
    text = render(view)
    assert view.exit_status == 0 and not view.disagreements, text
    assert "2026120101 on all 2 nodes" in text
    assert "web/b DOWN (api by alice until 2033-05-18T03:33:20Z): CHG-1 rack move [on all nodes]" in text
    assert text.endswith("all 2 nodes agree")


def test_a_drain_on_one_node_only_is_a_disagreement_exit_2():
    view = compare(nodes((health("n1", overrides=[DRAIN], b_state=("up", False)), zones()),
                         (health("n2"), zones())), 0)
    text = render(view)
    assert view.exit_status == 2
    assert "[only on n1]  <- DISAGREE" in text
    assert "web/b 192.0.2.2  n1: up NOT answered   n2: up answered  <- DISAGREE" in text
    assert len(view.disagreements) == 2


def test_different_serials_are_a_disagreement():
    view = compare(nodes((health("n1"), zones(1)), (health("n2"), zones(2))), 0)
    assert view.exit_status == 2 and view.disagreements == ["zone f.test.: serials differ (n1 1, n2 2)"]


def test_the_same_drain_sent_a_moment_apart_agrees_but_not_an_hour_apart():
    later = dict(DRAIN, until=DRAIN["until"] + 0.2)
    assert compare(nodes((health("n1", overrides=[DRAIN]), zones()), (health("n2", overrides=[later]), zones())),
                   0).exit_status == 0
    much_later = dict(DRAIN, until=DRAIN["until"] + 3600)
    view = compare(nodes((health("n1", overrides=[DRAIN]), zones()), (health("n2", overrides=[much_later]), zones())), 0)
    assert view.exit_status == 2 and "expiry differs" in view.disagreements[0]


def test_an_unreachable_node_exits_1_and_disagreement_wins():
    down = Node("n3", "http://127.0.0.3:8053", error="connection refused")
    view = compare([*nodes((health("n1"), zones()), (health("n2"), zones())), down], 0)
    assert view.exit_status == 1 and "UNREACHABLE: n3" in render(view)
    view = compare([*nodes((health("n1"), zones(1)), (health("n2"), zones(2))), down], 0)
    assert view.exit_status == 2


def test_regions_refused_and_probers_silent_on_one_node_are_warnings():
    refused = [{"source": "us-west-2", "region": "us-west-2", "peer": "198.51.100.7", "refused": {"bad_signature": 4},
                "total": 4, "first": 90.0, "last": 99.0, "last_message": "bad signature", "ever_accepted": False,
                "accepted_after": False}]
    silent = {"eu-west-1": {"live": False, "age": 12.0}}
    h1, h2 = health("n1", refused=refused), health("n2", probers=silent)
    view = compare(nodes((h1, zones()), (copy.deepcopy(h2), zones())), 100.0)
    text = render(view)
    assert view.exit_status == 0
    assert "node n1 refuses region us-west-2 from 198.51.100.7 (never accepted; 4 bad_signature, last 1 s ago)" in text
    assert "eu-west-1                n1: live   n2: SILENT 12 s  <- differs" in text
