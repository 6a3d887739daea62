"""One serial for one content: nodes serving the same zone files give the same automatic SOA serial (git
commit time, else the file's time), every change raises it on every node, a restart keeps it, and a
`serial:` in the file still wins (gslb/config/serials.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gslb.config.regions import Regions
from gslb.config.store import ZoneStore

ZONE = """\
origin: s.test.
soa: {mname: ns1.s.test., rname: h.s.test.}
records:
  "@": {NS: ns1.other.test.}
  www: {A: 192.0.2.1}
"""
T0 = 1_700_000_000


def serial(zones: Path, state: Path) -> int:
    """A node starting now: a new ZoneStore over `zones` remembering serials in `state`."""
    store = ZoneStore(str(zones), Regions.empty(), state_dir=str(state))
    store.load(force=True)
    return store.zones["s.test."].soa.serial


def write(path: Path, text: str, mtime: float) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_copies_made_at_different_times_give_one_serial_and_an_edit_raises_it_on_both(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write(source / "s.yaml", ZONE, T0)
    shutil.copytree(source, tmp_path / "a")                # like rsync -t: the file's time travels with it
    a_started = serial(tmp_path / "a", tmp_path / "state-a")
    os.utime(tmp_path / "a", (T0 + 50, T0 + 50))           # the directories themselves differ
    shutil.copytree(source, tmp_path / "b")
    assert a_started == serial(tmp_path / "b", tmp_path / "state-b") == T0
    assert serial(tmp_path / "a", tmp_path / "state-a") == T0          # a restart keeps it
    write(source / "s.yaml", ZONE.replace("192.0.2.1", "192.0.2.2"), T0 + 600)
    for node in "ab":
        shutil.copy2(source / "s.yaml", tmp_path / node / "s.yaml")
    assert serial(tmp_path / "a", tmp_path / "state-a") == serial(tmp_path / "b", tmp_path / "state-b") == T0 + 600


def test_a_changed_file_whose_time_went_back_still_raises_the_serial(tmp_path):
    zones, state = tmp_path / "zones", tmp_path / "state"
    zones.mkdir()
    write(zones / "s.yaml", ZONE, T0)
    assert serial(zones, state) == T0
    write(zones / "s.yaml", ZONE.replace("192.0.2.1", "192.0.2.2"), T0 - 3600)    # restored from a backup
    assert serial(zones, state) == T0 + 1
    assert serial(zones, state) == T0 + 1                 # and that stays across a restart
    write(zones / "s.yaml", ZONE.replace("192.0.2.1", "192.0.2.3"), T0)           # two edits in one second
    assert serial(zones, state) == T0 + 2
    remembered = json.loads((state / "serials.json").read_text())
    assert remembered["s.test."]["serial"] == T0 + 2 and len(remembered["s.test."]["sha256"]) == 64


def test_reloads_keep_the_serial_of_unchanged_content_and_a_given_serial_wins(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    write(zones / "s.yaml", ZONE, T0)
    store = ZoneStore(str(zones), Regions.empty(), state_dir=str(tmp_path / "state"))
    store.load(force=True)
    store.load(force=True)                                # what SIGHUP does: an unchanged file keeps its serial
    assert store.zones["s.test."].soa.serial == T0
    write(zones / "s.yaml", ZONE.replace("rname: h.s.test.", "rname: h.s.test., serial: 2024010101"), T0 + 5)
    store.load()
    assert store.zones["s.test."].soa.serial == 2024010101
    write(zones / "s.yaml", ZONE, T0 + 10)                # automatic again: it continues above the given one
    store.load()
    assert store.zones["s.test."].soa.serial == 2024010102


def git(cwd: Path, *args: str, when: int = T0) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": f"@{when} +0000", "GIT_COMMITTER_DATE": f"@{when} +0000",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_checkouts_give_the_commit_time_whatever_the_file_times(tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "s.yaml").write_text(ZONE)
    git(origin, "add", "s.yaml")
    git(origin, "commit", "-q", "-m", "zone", when=T0)
    for node, mtime in (("a", T0 + 7), ("b", T0 + 900)):   # clones made at different times
        git(tmp_path, "clone", "-q", str(origin), node)
        os.utime(tmp_path / node / "s.yaml", (mtime, mtime))
    assert serial(tmp_path / "a", tmp_path / "state-a") == serial(tmp_path / "b", tmp_path / "state-b") == T0
    (origin / "s.yaml").write_text(ZONE.replace("192.0.2.1", "192.0.2.2"))
    git(origin, "commit", "-q", "-am", "edit", when=T0 + 300)
    for node in "ab":
        git(tmp_path / node, "pull", "-q", "--ff-only")
    assert serial(tmp_path / "a", tmp_path / "state-a") == serial(tmp_path / "b", tmp_path / "state-b") == T0 + 300
    # An edit not committed is not what the commit says: the file's time, kept monotonic.
    write(tmp_path / "a" / "s.yaml", ZONE.replace("192.0.2.1", "192.0.2.9"), T0 + 100)
    assert serial(tmp_path / "a", tmp_path / "state-a") == T0 + 301
