"""Logs a machine can read: `--log-format json` (a real `gslb serve` process: one JSON object per line with
the stable keys, an event's names as keys), and the query log with the ECS subnet, the located country and
the addresses answered, sampled with query_log_sample."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time

import dns.edns
import dns.message
import dns.query
from conftest import REGIONS_YAML, REPO, write_zones
from httpsite import free_port
from mmdbutil import write_test_mmdb
from test_webhooks_functional import ZONE

from gslb import logs

BASE_KEYS = {"time", "level", "logger", "message", "node"}


def test_the_json_formatter_writes_the_stable_keys_of_an_event():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("gslb.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.warning("web/a 192.0.2.1 withdrawn: down in 2 of 3 regions", extra={
            "event": "endpoint.withdrawn", "event_id": 7, "zone": "z.", "pool": "web", "site": "a",
            "address": "192.0.2.1", "region": None, "reason": "down in 2 of 3 regions"})
        logger.info("plain line")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    event, plain, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert set(event) == BASE_KEYS | {"event", "event_id", "zone", "pool", "site", "address", "reason"}
    assert (event["level"], event["event"], event["pool"], event["logger"]) == \
        ("warning", "endpoint.withdrawn", "web", "gslb.test.json")
    assert event["time"].endswith("Z") and event["time"][10] == "T"
    assert set(plain) == BASE_KEYS and plain["message"] == "plain line"
    assert "ValueError: boom" in failed["exception"]


def test_gslb_serve_log_format_json_and_the_query_log(tmp_path):
    zones, data = tmp_path / "zones", tmp_path / "data"
    write_zones(zones, {"wh.yaml": ZONE})
    data.mkdir()
    (data / "regions.yaml").write_text(REGIONS_YAML)
    write_test_mmdb(str(data / "gslb-geo.mmdb"), [("193.0.0.0/16", {"continent": "EU", "country": "NL"})])
    (tmp_path / "server.yaml").write_text("node_id: json-node-1\nhealth: {report_interval: 30}\n")
    dns_port, api_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gslb", "serve", "--log-format", "json", "--config", str(tmp_path / "server.yaml"),
         "--zones", str(zones), "--data", str(data), "--listen", f"127.0.0.1:{dns_port}",
         "--api", f"127.0.0.1:{api_port}", "--query-log"],
        cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[dict] = []
    try:
        deadline = time.monotonic() + 20
        while not any("DNS on" in line.get("message", "") for line in lines):
            assert time.monotonic() < deadline and process.poll() is None, lines
            lines.append(json.loads(process.stderr.readline()))
        query = dns.message.make_query("www.wh.test", "A", use_edns=0, options=[dns.edns.ECSOption("193.0.2.0", 24)])
        assert dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=3).answer
        while not any(line["logger"] == "gslb.query" for line in lines):
            assert time.monotonic() < deadline, lines
            lines.append(json.loads(process.stderr.readline()))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        process.stderr.close()
    assert all(BASE_KEYS <= set(line) and line["node"] == "json-node-1" for line in lines)
    loaded = next(line for line in lines if line.get("event") == "zone.loaded")
    assert (loaded["zone"], loaded["level"], loaded["logger"]) == ("wh.test.", "info", "gslb.zones")
    assert loaded["reason"].startswith("serial ")
    (q,) = [line for line in lines if line["logger"] == "gslb.query"]
    assert (q["qname"], q["qtype"], q["rcode"], q["transport"], q["client"]) == \
        ("www.wh.test.", "A", "NOERROR", "udp", "127.0.0.1")
    assert (q["ecs"], q["country"], q["answers"]) == ("193.0.2.0/24", "NL", ["10.0.1.1"])
    assert "ecs=193.0.2.0/24 country=NL answers=10.0.1.1" in q["message"]


def test_query_log_sample_logs_one_query_in_n(serve, caplog):
    caplog.set_level("INFO", logger="gslb.query")
    srv = serve({"wh.yaml": ZONE}, config_yaml="query_log: true\nquery_log_sample: 3\nhealth: {report_interval: 30}\n")
    for _ in range(9):
        srv.query("www.wh.test", "A")
    lines = [r.getMessage() for r in caplog.records if r.name == "gslb.query"]
    assert len(lines) == 3
    assert all(line.startswith("udp 127.0.0.1 www.wh.test. A NOERROR") and "answers=10.0.1.1" in line
               and "ecs=- country=-" in line for line in lines)
