"""Proxy reports (issue 15) piece by piece: the config keys, the decision (a report only takes down or
lowers a weight), the intake's order per sender, the monitor's staleness window."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest

from gslb.config.health import HealthSettings
from gslb.config.model import Check, Target
from gslb.config.overrides import Override, parse_selector
from gslb.config.regions import Regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import parse_zone
from gslb.errors import ConfigError
from gslb.health.intake import ReportIntake, ReportRefused
from gslb.health.monitor import HealthMonitor
from gslb.health.proxyreport import decode_any, decode_proxy_report, encode_proxy_report
from gslb.health.signing import sign
from gslb.health.snapshot import EndpointHealth, HealthSnapshot, ProxyPoolView
from gslb.proxy.config import load_proxy_config
from gslb.steering.decide import capacity_share, endpoint_usable

ZONE = """\
origin: t.test.
soa: {mname: ns.t.test., rname: h.t.test.}
records: {"@": {NS: ns.other.test.}, www: {pool: main}}
pools:
  main:
    policy: weighted
    check: {type: tcp, port: 9}
    capacity: follow
    capacity_floor: 0.2
    sites:
      eu: {proxy_pool: eu-1/app, endpoints: [192.0.2.1, {address: 192.0.2.2, proxy_pool: eu-2/app}]}
      us: {weight: 2, endpoints: [192.0.2.3]}
"""


def zone(text: str = ZONE):
    return parse_zone(load_yaml(text, "t.yaml"), "t.yaml", Regions.empty())


def test_proxy_pool_is_read_from_the_site_or_the_endpoint():
    pool = zone().pools["main"]
    eu, us = pool.sites
    assert [pool.proxy_pool_of(eu, e) for e in eu.endpoints] == ["eu-1/app", "eu-2/app"]
    assert pool.proxy_pool_of(us, us.endpoints[0]) is None
    assert (pool.capacity, pool.capacity_floor) == ("follow", 0.2)


@pytest.mark.parametrize("change, message", [
    ("proxy_pool: eu-1/app,", "proxy_pool 'eu-1', expected PROXY/POOL"),
    ("capacity_floor: 0.2", "capacity_floor 0, expected a number 0.01..1"),
])
def test_zone_mistakes_are_named(change, message):
    text = ZONE.replace(change, change.replace("eu-1/app", "eu-1").replace("0.2", "0"))
    with pytest.raises(ConfigError) as err:
        zone(text)
    assert any(message in str(p) for p in err.value.problems), err.value.problems


def test_capacity_follow_needs_a_proxy_pool():
    text = ZONE.replace("proxy_pool: eu-1/app, ", "").replace(", proxy_pool: eu-2/app", "")
    with pytest.raises(ConfigError) as err:
        zone(text)
    assert "capacity: follow needs proxy_pool" in str(err.value.problems[0])


def snapshot(down: tuple[str, ...] = (), proxies: dict | None = None, overrides: dict | None = None):
    check = Check(type="tcp", port=9)
    return HealthSnapshot(MappingProxyType({Target(a, check): EndpointHealth("down") for a in down}),
                          MappingProxyType(overrides or {}), 1, MappingProxyType(proxies or {}))


def test_an_empty_proxy_pool_withdraws_and_a_healthy_one_never_holds_up():
    pool = zone().pools["main"]
    eu = pool.sites[0]
    e1 = eu.endpoints[0]
    empty = {"eu-1/app": ProxyPoolView(0, 2, 0, 2)}
    usable, why = endpoint_usable(e1, eu, pool, snapshot(proxies=empty))
    assert not usable and why == "down (proxy eu-1/app: 0 of 2 backends healthy, weight 0/2)"
    whole = {"eu-1/app": ProxyPoolView(2, 2, 2, 2)}
    usable, why = endpoint_usable(e1, eu, pool, snapshot(down=("192.0.2.1",), proxies=whole))
    assert not usable and why.startswith("down; proxy eu-1/app: 2 of 2")      # the probers' down stands
    assert endpoint_usable(e1, eu, pool, snapshot(proxies=whole))[0]
    # an operator's override outranks the proxy
    forced = Override(parse_selector("main/eu"), "up", "test", "api")
    assert endpoint_usable(e1, eu, pool, snapshot(proxies=empty, overrides={("t.test.", "main", "eu", e1.address):
                                                                             forced}), zone="t.test.")[0]


def test_capacity_share_follows_the_healthy_weight_with_a_floor():
    pool = zone().pools["main"]
    eu, us = pool.sites
    e1 = eu.endpoints[0]
    assert capacity_share(pool, eu, e1, snapshot()) == 1.0                  # not reporting: weights as written
    assert capacity_share(pool, eu, e1, snapshot(proxies={"eu-1/app": ProxyPoolView(1, 2, 3, 4)})) == 0.75
    assert capacity_share(pool, eu, e1, snapshot(proxies={"eu-1/app": ProxyPoolView(1, 10, 1, 10)})) == 0.2
    assert capacity_share(pool, us, us.endpoints[0], snapshot(proxies={"eu-1/app": ProxyPoolView(1, 2, 1, 2)})) == 1
    fixed = zone(ZONE.replace("capacity: follow", "capacity: fixed")).pools["main"]
    assert capacity_share(fixed, eu, e1, snapshot(proxies={"eu-1/app": ProxyPoolView(1, 2, 1, 2)})) == 1.0


def test_proxy_config_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("GSLB_REPORT_KEY", raising=False)
    path = tmp_path / "p.yaml"
    base = "pools: {app: {backends: [127.0.0.1:1]}}\nroutes: [{default: true, pool: app}]\n"
    path.write_text(base + "report_to: [http://127.0.0.1:8053/]\nreport_name: eu-1\nreport_key: k\n"
                           "report_region: eu-west-1\nreport_interval: 0.5\n")
    report = load_proxy_config(str(path)).report
    assert (report.to, report.name, report.key, report.region, report.interval) == (
        ("http://127.0.0.1:8053",), "eu-1", "k", "eu-west-1", 0.5)
    path.write_text(base + "report_to: [ns1:8053]\nreport_name: 'eu 1'\n")
    with pytest.raises(ConfigError) as err:
        load_proxy_config(str(path))
    text = "\n".join(map(str, err.value.problems))
    assert "expected a list of DNS API URLs" in text and "report_name 'eu 1'" in text
    assert "report_key or $GSLB_REPORT_KEY" in text
    monkeypatch.setenv("GSLB_REPORT_KEY", "from-the-env")
    path.write_text(base + "report_to: [http://ns1:8053]\nreport_name: eu-1\n")
    assert load_proxy_config(str(path)).report.key == "from-the-env"
    path.write_text(base + "report_name: eu-1\n")
    with pytest.raises(ConfigError, match="report_name without report_to"):
        load_proxy_config(str(path))


def test_decode_refuses_counts_that_cannot_be():
    with pytest.raises(ValueError):
        decode_proxy_report({"proxy": "eu-1", "interval": 1, "pools": {"app": {
            "healthy": 3, "total": 2, "healthy_weight": 1, "total_weight": 2}}}, 0.0)
    with pytest.raises(ValueError):
        decode_proxy_report({"proxy": "eu 1", "interval": 1, "pools": {}}, 0.0)
    report = decode_any(encode_proxy_report("eu-1", None, 1.0, {"app": (1, 2, 1, 2)}), {}, 5.0)
    assert report.pools["app"] == ProxyPoolView(1, 2, 1, 2) and report.source == "proxy:eu-1"


def _admit(intake: ReportIntake, body: bytes, header: str, region: str | None, source: str | None = None):
    verifier = intake.begin(header)
    verifier.update(body)
    sig = intake.check_mac(verifier)
    intake.admit(sig, region, source=source)


def test_a_proxy_is_ordered_apart_from_its_regions_probers():
    intake = ReportIntake(None, {"eu-west-1": "eu-west-1-key-0123456789"})
    now = time.time()
    proxy = encode_proxy_report("eu-1", "eu-west-1", 1.0, {"app": (1, 1, 1, 1)})
    prober = b'{"region":"eu-west-1","interval":1,"views":[]}'
    _admit(intake, prober, sign("eu-west-1-key-0123456789", prober, now, "eu-west-1"), "eu-west-1")
    # signed just before the prober's report, arriving after it: not a replay, another sender
    _admit(intake, proxy, sign("eu-west-1-key-0123456789", proxy, now - 0.2, "eu-west-1"), "eu-west-1", "proxy:eu-1")
    older = encode_proxy_report("eu-1", "eu-west-1", 1.0, {"app": (0, 1, 0, 1)})
    with pytest.raises(ReportRefused) as err:
        _admit(intake, older, sign("eu-west-1-key-0123456789", older, now - 0.5, "eu-west-1"), "eu-west-1",
               "proxy:eu-1")
    assert err.value.reason == "replay"
    # a region's key cannot be used for a report that names no region (or another one)
    with pytest.raises(ReportRefused):
        _admit(intake, older, sign("eu-west-1-key-0123456789", older, now, "eu-west-1"), None, "proxy:eu-1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_monitor_publishes_changes_only_and_drops_a_silent_proxy():
    clock, published = Clock(), []
    monitor = HealthMonitor(HealthSettings(), published.append, clock)

    def report(counts):
        body = encode_proxy_report("eu-1", None, 1.0, {"app": counts})
        monitor.proxy_report(decode_any(body, {}, clock.now))

    report((2, 2, 2, 2))
    assert monitor.snapshot.proxy("eu-1/app").healthy == 2 and len(published) == 1
    clock.now += 1
    report((2, 2, 2, 2))                                        # a heartbeat: no new snapshot
    assert len(published) == 1
    report((0, 2, 0, 2))
    assert len(published) == 2 and published[-1].proxy("eu-1/app").healthy == 0
    clock.now += 2.9
    monitor.tick()
    assert monitor.snapshot.proxy("eu-1/app") is not None        # within 3 intervals
    clock.now += 0.2
    monitor.tick()
    assert published[-1].proxy("eu-1/app") is None               # silent: the probers decide alone
    assert [e.kind for e in monitor.events.ring][-2:] == ["proxy.pool_empty", "proxy.silent"]
