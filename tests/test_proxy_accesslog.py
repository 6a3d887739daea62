"""The proxy's access log: buffered lines in a file, written in batches, flushed on time, on SIGTERM and on
SIGHUP (reopened for logrotate); the format, the options and their mistakes."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from proxyharness import Backend, config

from gslb.errors import ConfigError
from gslb.proxy.accesslog import PIPE_BUF, AccessLog
from gslb.proxy.config import load_proxy_config

LINE = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 127\.0\.0\.1 "GET t\.example/n/(\d+)" 200 127\.0\.0\.1:\d+ '
                  r'\d+\.\dms')


@pytest.fixture
def backend():
    b = Backend("a")
    yield b
    b.close()


def start(path: Path, text: str) -> tuple[subprocess.Popen, int]:
    path.write_text(text)
    port = int(text.split("listen: [127.0.0.1:")[1].split("]")[0])
    proc = subprocess.Popen([sys.executable, "-m", "gslb", "proxy", "--config", str(path)], cwd=REPO,
                            env=dict(os.environ, GSLB_LOG_LEVEL="WARNING"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the proxy did not start")


def get_many(port: int, count: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(count):
            conn.request("GET", f"/n/{i}", headers={"Host": "t.example"})
            resp = conn.getresponse()
            assert resp.status == 200
            resp.read()
    finally:
        conn.close()


def numbers(path: Path) -> list[int]:
    lines = path.read_text().splitlines() if path.exists() else []
    out = []
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, line
        out.append(int(match.group(1)))
    return out


def test_sigterm_writes_every_buffered_line(backend, tmp_path):
    log = tmp_path / "access.log"
    # a long flush interval and a big buffer: the lines are all still buffered when SIGTERM comes
    text = config([backend]).replace("access_log: false", f"access_log: {{path: {log}, flush: 600}}")
    proc, port = start(tmp_path / "p.yaml", text)
    try:
        get_many(port, 300)
        assert numbers(log) == []                 # nothing written yet: batched, not per request
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert numbers(log) == list(range(300))


def test_lines_are_written_when_the_buffer_fills(backend, tmp_path):
    log = tmp_path / "access.log"
    text = config([backend]).replace("access_log: false", f"access_log: {{path: {log}, buffer: 2000, flush: 600}}")
    proc, port = start(tmp_path / "p.yaml", text)
    try:
        get_many(port, 60)                        # about 5 KB of lines: two batches of 2000 bytes are written
        written = numbers(log)
        assert 0 < len(written) < 60 and written == list(range(len(written)))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert numbers(log) == list(range(60))


def test_lines_are_written_within_flush_seconds(backend, tmp_path):
    log = tmp_path / "access.log"
    text = config([backend]).replace("access_log: false", f"access_log: {{path: {log}, flush: 0.2}}")
    proc, port = start(tmp_path / "p.yaml", text)
    try:
        get_many(port, 3)
        deadline = time.monotonic() + 5           # the sweep writes them within `flush` seconds (0.1 s ticks)
        while time.monotonic() < deadline and len(numbers(log)) < 3:
            time.sleep(0.05)
        assert numbers(log) == [0, 1, 2]
    finally:
        proc.kill()
        proc.wait(10)


def test_sighup_reopens_the_file_for_logrotate(backend, tmp_path):
    log = tmp_path / "access.log"
    text = config([backend]).replace("access_log: false", f"access_log: {{path: {log}, flush: 600}}")
    proc, port = start(tmp_path / "p.yaml", text)
    try:
        get_many(port, 5)
        os.rename(log, tmp_path / "access.log.1")  # what logrotate does, then it sends SIGHUP
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not log.exists():
            time.sleep(0.05)
        get_many(port, 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert numbers(tmp_path / "access.log.1") == list(range(5))   # flushed into the old file before reopening
    assert numbers(log) == list(range(3))


def test_sighup_reopens_the_file_even_when_the_config_is_broken(backend, tmp_path):
    log = tmp_path / "access.log"
    path = tmp_path / "p.yaml"
    text = config([backend]).replace("access_log: false", f"access_log: {{path: {log}, flush: 600}}")
    proc, port = start(path, text)
    try:
        get_many(port, 2)
        path.write_text(text + "retries: many\n")  # a mistake: the running config stays
        os.rename(log, tmp_path / "access.log.1")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not log.exists():
            time.sleep(0.05)
        get_many(port, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert numbers(tmp_path / "access.log.1") == [0, 1]
    assert numbers(log) == [0]


def test_an_unwritable_log_is_a_clear_error_at_start(backend, tmp_path):
    blocked = tmp_path / "dir"
    blocked.mkdir()
    (blocked / "access.log").mkdir()             # a directory where the file should be: cannot be opened
    path = tmp_path / "p.yaml"
    path.write_text(config([backend]).replace("access_log: false", f"access_log: {blocked / 'access.log'}"))
    out = subprocess.run([sys.executable, "-m", "gslb", "proxy", "--config", str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 1
    assert f"access_log {blocked / 'access.log'}: cannot open it: Is a directory" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("value, message", [
    ("relative.log", "access_log 'relative.log', expected true, false, stderr, an absolute file path"),
    ("/no/such/dir/access.log", "access_log '/no/such/dir/access.log': directory /no/such/dir does not exist"),
    ("{path: /tmp/a.log, buffer: -1}", "access_log: buffer -1, expected a number >= 0"),
    ("{path: /tmp/a.log, flush: 0}", "access_log: flush 0, expected a number >= 0.01"),
    ("{path: /tmp/a.log, rotate: daily}", "access_log: unknown key 'rotate'"),
])
def test_access_log_mistakes_are_reported(tmp_path, value, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"access_log: {value}\npools: {{app: {{backends: ['127.0.0.1:9']}}}}\n"
                    "routes: [{default: true, pool: app}]\n")
    with pytest.raises(ConfigError) as info:
        load_proxy_config(str(path))
    assert any(message in str(p) for p in info.value.problems), info.value.problems


def test_access_log_forms(tmp_path):
    path = tmp_path / "p.yaml"
    for value, want in (("true", (None, 65536, 1.0)), ("stderr", (None, 65536, 1.0)),
                        (f"{tmp_path}/a.log", (f"{tmp_path}/a.log", 65536, 1.0)),
                        (f"{{path: {tmp_path}/a.log, buffer: 0, flush: 5}}", (f"{tmp_path}/a.log", 0, 5.0))):
        path.write_text(f"access_log: {value}\npools: {{app: {{backends: ['127.0.0.1:9']}}}}\n"
                        "routes: [{default: true, pool: app}]\n")
        got = load_proxy_config(str(path)).access_log
        assert (got.path, got.buffer, got.flush) == want, value
    path.write_text("access_log: false\npools: {app: {backends: ['127.0.0.1:9']}}\nroutes: [{default: true, pool: app}]\n")
    assert load_proxy_config(str(path)).access_log is None


def test_pipe_batches_end_at_lines_and_fit_an_atomic_write(tmp_path):
    """On a pipe (stderr to journald) several workers write: each write must be whole lines <= PIPE_BUF."""
    writes: list[int] = []

    class Counted(AccessLog):
        def _write(self, data: bytes, count: int) -> None:
            assert data.endswith(b"\n") and data.count(b"\n") == count
            writes.append(len(data))
            super()._write(data, count)

    read_fd, write_fd = os.pipe()
    log = Counted(None)
    log.fd, log.pipe = write_fd, True
    lines = [f"line {i} ".encode() + b"x" * (i % 200) + b"\n" for i in range(200)]
    for line in lines:
        log.write(line)
    log.flush()
    os.close(write_fd)
    chunks = []
    while data := os.read(read_fd, 65536):
        chunks.append(data)
    os.close(read_fd)
    assert b"".join(chunks) == b"".join(lines)
    assert len(writes) > 1 and max(writes) <= PIPE_BUF
