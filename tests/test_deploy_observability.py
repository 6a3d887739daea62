"""The dashboard and alerts that ship (deploy/): promtool accepts and unit-tests the rules, and every metric
they name exists in the /metrics of a real `gslb serve` and `gslb proxy`."""

from __future__ import annotations

import json
import re
import subprocess

from conftest import REPO
from metricsutil import fetch, promtool
from proxyharness import config
from test_metrics_serve import ZONE
from test_proxy_functional import fetch as proxy_fetch

DEPLOY = REPO / "deploy"
METRIC = re.compile(r"\b((?:gslb|process)_[a-z0-9_]+)\b")
SUFFIXES = ("_bucket", "_sum", "_count")


def _promtool(*args: str) -> str:
    result = subprocess.run([promtool(), *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_promtool_checks_and_unit_tests_the_alert_rules():
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yaml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yaml")


def _expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "gslb.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    rules = (DEPLOY / "prometheus" / "alerts.yaml").read_text()
    exprs += re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    return exprs


def _families(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))


def test_every_metric_the_dashboard_and_alerts_name_is_exposed(serve, backends, proxy):
    named = {m for e in _expressions() for m in METRIC.findall(e)}
    assert {"gslb_dns_answers_total", "gslb_endpoint_up", "gslb_proxy_upstream_seconds_bucket"} <= named
    srv = serve({"m.yaml": ZONE})
    srv.query("www.m.test")
    exposed = _families(fetch(f"http://{srv.api[0]}:{srv.api[1]}/metrics"))
    (backend,) = backends("a")
    px = proxy(config([backend]))
    exposed |= _families(proxy_fetch(px.admin_url + "/metrics"))
    # prometheus_client names a counter family without _total in # TYPE; a histogram's samples add suffixes
    exposed |= {f"{name}_total" for name in exposed} | {name + s for name in exposed for s in SUFFIXES}
    missing = sorted(named - exposed)
    assert not missing, f"named by deploy/ but not in any /metrics: {missing}"
