"""The dashboards in a real headless Chromium (Debian `chromium` + `chromium-driver`, driven by selenium):
the server's page at `/` shows a killed endpoint down within 5 s and a drained site's reason, the answer
share, events, zones and the map; with a read token it asks for the token before showing anything; the
proxy admin page shows its backends, a drain and traffic. Screenshots are saved under the test's tmp dir."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.error
import urllib.request

import pytest
from proxyharness import config as proxy_config
from selenium.common.exceptions import WebDriverException
from test_events import CONFIG, TOKEN, A, B, api, sites, zone  # noqa: F401 -- `sites` is a fixture
from test_webhooks_functional import ZONE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian chromium and chromium-driver (scripts/install --test)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1400,1000")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_until(driver, condition, limit: float, what: str) -> float:
    """Seconds until `condition(driver)` is true (polled every 50 ms); fails after `limit` with the page's
    visible text, so a failure says what the page showed."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        # Not there yet, or the page redrew it meanwhile (stale): poll again.
        with contextlib.suppress(WebDriverException):
            if condition(driver):
                return time.monotonic() - started
        time.sleep(0.05)
    body = driver.find_element("tag name", "body").text
    raise AssertionError(f"not within {limit} s: {what}; the page shows:\n{body[:3000]}")


def cell(driver, address: str, name: str) -> str:
    return driver.find_element("css selector", f'tr.endpoint[data-address="{address}"] td.{name}').text


def test_server_dashboard_shows_a_killed_endpoint_down_and_a_drain_reason(serve, sites, browser, tmp_path):  # noqa: F811
    port, (site_a, _) = sites
    srv = serve({"ev.yaml": zone(port)}, config_yaml=CONFIG)
    base = f"http://{srv.api[0]}:{srv.api[1]}"
    for _ in range(20):
        srv.query("www.ev.test", "A")          # answers counted for the share chart
    browser.get(base + "/")
    wait_until(browser, lambda d: cell(d, A, "state") == "up" and cell(d, B, "state") == "up", 10,
               "both endpoints shown up")
    # The answer share, from gslb_dns_answers_total between two polls: failover sends every answer to site a.
    for _ in range(30):
        srv.query("www.ev.test", "A")
    wait_until(browser, lambda d: d.find_element("css selector", f'#traffic .share-table tr[data-address="{A}"] '
                                                 ".share").text == "100.0 %", 10, f"the answer share of {A}")
    assert browser.find_elements("css selector", '#traffic svg.chart polygon')
    browser.save_screenshot(str(tmp_path / "dashboard-up.png"))
    site_a.stop()
    killed = time.monotonic()
    waited = wait_until(browser, lambda d: cell(d, A, "state") == "down", 5, f"{A} shown down")
    print(f"endpoint killed -> shown down on the dashboard: {time.monotonic() - killed:.2f} s")
    assert waited < 5
    assert cell(browser, A, "answered-no").startswith("no")
    browser.save_screenshot(str(tmp_path / "dashboard-endpoint-down.png"))
    status, _ = api(srv, "/v1/overrides", {"selector": "web/b", "state": "down", "reason": "CHG-77 rack move",
                                           "for": "2h", "by": "ops"})
    assert status == 200
    wait_until(browser, lambda d: "CHG-77 rack move" in cell(d, B, "override"), 5, "the drain's reason shown")
    text = cell(browser, B, "override")
    assert text.startswith("DOWN (web/b, api by ops, until ") and text.endswith("): CHG-77 rack move")
    # The event feed, the zones table and the map follow the same state.
    wait_until(browser, lambda d: d.find_elements("css selector", '#events li[data-kind="endpoint.withdrawn"]')
               and d.find_elements("css selector", '#events li[data-kind="override.set"]'), 5, "events listed")
    serial = srv.server.served_zones["ev.test."].soa.serial
    wait_until(browser, lambda d: d.find_element("css selector", '#zones tr[data-zone="ev.test."] .serial').text
               == str(serial), 10, "the zone serial")
    wait_until(browser, lambda d: {c.get_attribute("data-site") + ":" + c.get_attribute("class")
                                   for c in d.find_elements("css selector", "#map circle.site")}
               == {"a:site down", "b:site down"}, 5, "both sites drawn on the map, neither answered")
    browser.save_screenshot(str(tmp_path / "dashboard-drained.png"))
    assert (tmp_path / "dashboard-drained.png").stat().st_size > 10_000


def test_with_a_read_token_the_page_shows_nothing_until_given_it(serve, browser, tmp_path):
    read = "read-token-dashboard-0123456789"
    srv = serve({"wh.yaml": ZONE}, config_yaml=f"api: {{token: {TOKEN}, read_token: {read}}}\n"
                                                "health: {report_interval: 30}\n")
    base = f"http://{srv.api[0]}:{srv.api[1]}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/v1/events", timeout=5)
    assert refused.value.code == 401
    browser.get(base + "/")
    wait_until(browser, lambda d: d.find_element("id", "token-form").is_displayed(), 5, "the token form")
    assert not browser.find_elements("css selector", "tr.endpoint")
    browser.find_element("id", "token").send_keys("not-the-token")
    browser.find_element("css selector", "#token-form button").click()
    wait_until(browser, lambda d: d.find_element("id", "token-error").text == "that token was refused", 5,
               "a wrong token refused")
    browser.find_element("id", "token").clear()
    browser.find_element("id", "token").send_keys(read)
    browser.find_element("css selector", "#token-form button").click()
    wait_until(browser, lambda d: len(d.find_elements("css selector", "tr.endpoint")) == 2, 5, "the endpoints shown")
    browser.save_screenshot(str(tmp_path / "dashboard-read-token.png"))


def test_proxy_admin_page_shows_backends_a_drain_and_traffic(backends, proxy, browser, tmp_path):
    a, b = backends("a", "b")
    px = proxy(proxy_config([a, b], extra_pool="    check: {path: /healthz, interval: 0.2, rise: 1, fall: 1}\n"))
    browser.get(px.admin_url + "/")

    def state(d, address: str) -> str:
        return d.find_element("css selector", f'tr.backend[data-address="{address}"] td.state').text

    wait_until(browser, lambda d: state(d, a.address) == "up" and state(d, b.address) == "up", 5, "backends up")
    for _ in range(30):
        urllib.request.urlopen(px.url + "/", timeout=5).read()
    wait_until(browser, lambda d: d.find_element("css selector", f'tr.backend[data-address="{a.address}"] '
                                                 "td.requests").text not in ("", "0"), 5, "requests counted")
    request = urllib.request.Request(px.admin_url + f"/v1/backends/{a.address}/drain", method="POST",
                                     headers={"Authorization": "Bearer tok"})
    assert urllib.request.urlopen(request, timeout=5).status == 200
    wait_until(browser, lambda d: state(d, a.address) == "drained", 5, "the drained backend")
    wait_until(browser, lambda d: d.find_elements("css selector", '#events li[data-kind="backend.drained"]'), 5,
               "the drain event")
    b.health_status = 503
    wait_until(browser, lambda d: state(d, b.address) == "down", 5, "a backend failing its checks shown down")
    wait_until(browser, lambda d: "NOT READY" in d.find_element("id", "ready").text, 5, "the proxy not ready")
    assert browser.find_elements("css selector", "#traffic svg.chart polygon")
    browser.save_screenshot(str(tmp_path / "proxy-admin.png"))
    events = json.loads(urllib.request.urlopen(px.admin_url + "/v1/events?since=0", timeout=5).read())["events"]
    kinds = [(e["kind"], e["address"]) for e in events]
    assert ("backend.drained", a.address) in kinds and ("backend.down", b.address) in kinds
