"""Separate keys over real HTTP against a real server: the probers' key signs reports and cannot write,
the operator token (api.token) writes, the read token (api.read_token) guards every read but /healthz;
with no operator token writes are refused (403) naming the key. POST /v1/reload reloads like SIGHUP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest
from conftest import REPO

from gslb.config.server import load_server_config
from gslb.errors import ConfigError
from gslb.health.report import encode_report
from gslb.health.signing import HEADER, sign

A, B = "192.0.2.10", "192.0.2.20"
SECRET = "prober-key-0123456789"
TOKEN = "operator-token-0123456789"
READ = "read-token-0123456789"

ZONE = f"""\
origin: keys.test.
soa: {{mname: ns1.keys.test., rname: h.keys.test.}}
records:
  "@": {{NS: ns1.other.test.}}
  www: {{pool: web}}
pools:
  web:
    policy: failover
    sites:
      a: {{lat: 0, lon: 0, endpoints: [{A}]}}
      b: {{lat: 0, lon: 0, endpoints: [{B}]}}
"""


def call(srv, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict | str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}{path}", data=data, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        text, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def drain(srv, token: str | None) -> tuple[int, dict]:
    return call(srv, f"/v1/endpoints/{A}/status", token, {"status": "down"})


def answers(srv) -> list[str]:
    return sorted(rd.address for rrset in srv.query("www.keys.test", "A").answer for rd in rrset)


def test_the_probers_key_cannot_write_and_the_operator_token_can(serve):
    srv = serve({"k.yaml": ZONE}, config_yaml=f"health: {{embedded: false, secret: {SECRET}}}\n"
                                              f"api: {{token: {TOKEN}}}\n")
    status, answer = drain(srv, SECRET)
    assert status == 401 and "prober key" in answer["error"] and "api.token" in answer["error"]
    assert call(srv, "/v1/reload", SECRET, {})[0] == 401
    assert drain(srv, None)[0] == 401 and drain(srv, "wrong")[0] == 401
    assert srv.server.health_service.monitor.overrides == {} and answers(srv) == [A]
    # The prober key still does its own job: a signed report is accepted.
    body = encode_report("eu-west-1", 1.0, {})
    req = urllib.request.Request(f"http://{srv.api[0]}:{srv.api[1]}/v1/reports", data=body, method="POST",
                                 headers={HEADER: sign(SECRET, body), "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    assert drain(srv, TOKEN) == (200, {"address": A, "status": "down"})
    assert answers(srv) == [B]


def test_without_an_operator_token_writes_are_refused_naming_the_key(serve):
    srv = serve({"k.yaml": ZONE}, config_yaml=f"health: {{embedded: false, secret: {SECRET}}}\n")
    status, answer = drain(srv, SECRET)
    assert status == 403 and "api.token" in answer["error"] and "GSLB_API_TOKEN" in answer["error"]
    assert call(srv, "/v1/reload", SECRET, {})[0] == 403
    assert srv.server.health_service.monitor.overrides == {}
    assert call(srv, "/v1/zones")[0] == 200           # no read token: reads stay open


def test_the_read_token_guards_reads_but_not_healthz(serve):
    srv = serve({"k.yaml": ZONE}, config_yaml=f"health: {{embedded: false, secret: {SECRET}}}\n"
                                              f"api: {{token: {TOKEN}, read_token: {READ}}}\n")
    for path in ("/v1/zones", "/v1/health", "/status", "/metrics", "/v1/targets",
                 "/v1/explain?name=www.keys.test&type=A&client=192.0.2.1"):
        status, answer = call(srv, path)
        assert status == 401 and "api.read_token" in answer["error"], path
        assert call(srv, path, SECRET)[0] == 401, path
        assert call(srv, path, READ)[0] == 200, path
        assert call(srv, path, TOKEN)[0] == 200, path          # the operator token reads too
    assert call(srv, "/healthz")[0] == 200
    assert drain(srv, READ)[0] == 401                          # reading is not writing
    # The CLI sends the read token from the environment.
    api = f"http://{srv.api[0]}:{srv.api[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GSLB_API")}
    run = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, env=env, check=False,
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "401" in run.stdout
    run = subprocess.run([sys.executable, "-m", "gslb", "status", "--api", api], cwd=REPO, check=False,
                         env={**env, "GSLB_API_READ_TOKEN": READ}, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "pool web" in run.stdout


def test_reload_over_the_api_reloads_the_zones_now(serve):
    srv = serve({"k.yaml": ZONE}, config_yaml=f"api: {{token: {TOKEN}}}\n")
    srv.call(lambda: [task.cancel() for task in srv.server._tasks])    # no file watcher: only the API reloads
    (srv.zone_dir / "k.yaml").write_text(ZONE.replace(A, "192.0.2.30"))
    assert answers(srv) == [A]
    status, answer = call(srv, "/v1/reload", TOKEN, {})
    assert (status, answer["ok"], answer["changed"]) == (200, True, True)
    assert answer["zones"] == [{"origin": "keys.test.", "serial": srv.server.store.zones["keys.test."].soa.serial}]
    assert answers(srv) == ["192.0.2.30"]
    (srv.zone_dir / "k.yaml").write_text(ZONE + "  oops: [\n")
    status, answer = call(srv, "/v1/reload", TOKEN, {})
    assert status == 200 and not answer["ok"] and answer["problems"][0].startswith(str(srv.zone_dir / "k.yaml"))
    assert answers(srv) == ["192.0.2.30"]                            # the last good zone keeps serving


def write(tmp_path, text: str) -> str:
    path = tmp_path / "server.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_api_config_forms(tmp_path, monkeypatch):
    monkeypatch.delenv("GSLB_API_TOKEN", raising=False)
    monkeypatch.delenv("GSLB_API_READ_TOKEN", raising=False)
    monkeypatch.delenv("GSLB_SECRET", raising=False)
    config = load_server_config(write(tmp_path, "api: 127.0.0.1:9053\n"))
    assert (config.api, config.api_token, config.api_read_token) == ("127.0.0.1:9053", None, None)
    config = load_server_config(write(tmp_path, "api: {token: t0123, read_token: r0123}\n"))
    assert (config.api, config.api_token, config.api_read_token) == ("127.0.0.1:8053", "t0123", "r0123")
    assert load_server_config(write(tmp_path, "api: {listen: 'off', token: t}\n")).api is None
    assert load_server_config(None).api == "127.0.0.1:8053"           # the default binds loopback only
    monkeypatch.setenv("GSLB_API_TOKEN", "from-env")
    assert load_server_config(write(tmp_path, "api: 127.0.0.1:9053\n")).api_token == "from-env"
    assert load_server_config(None).api_token == "from-env"
    with pytest.raises(ConfigError) as exc:
        load_server_config(write(tmp_path, """\
            health: {secret: same-key}
            api:
              token: same-key
              tokn: x
              read_token: ""
            """))
    assert [str(p) for p in exc.value.problems] == [
        f"{tmp_path}/server.yaml:4: api: unknown key 'tokn' (known: listen, read_token, token)",
        f"{tmp_path}/server.yaml:5: api read_token: expected a non-empty string",
        (f"{tmp_path}/server.yaml:3: api token: the same as health.secret (the probers' key); give operators "
         f"a key of their own")]
