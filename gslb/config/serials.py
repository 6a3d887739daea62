"""Automatic SOA serials: one serial for one content, on every node (docs/zone-format.md, `soa`).

A serial must be the same on every node that serves the same file (SOA-consistency monitors compare
them), grow on every change of the file, and stay put across a restart. A load time gives none of that,
so the serial is taken from a time that travels with the file:

1. when the zones directory is a git checkout and the file is committed and clean: the commit time of
   the last commit touching it (`git log -1 --format=%ct -- FILE`): the same on every clone;
2. otherwise the file's modification time in whole seconds: the same on every node when the zones are
   copied with their times kept (`rsync -t`/`-a`, `cp -p`, `scp -p`, tar/`unzip`; not plain `cp`).

Per node it is kept monotonic, remembered in `<state_dir>/serials.json` by origin with the SHA-256 of
the file: unchanged content keeps its serial (also across restarts); changed content whose time is
not later than the last serial (a clock or history going backwards, two edits in one second) gets the
last serial + 1. A `serial:` given in the file wins and is remembered too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from dataclasses import dataclass

log = logging.getLogger("gslb.zones")

STATE_FILE = "serials.json"
GIT_TIMEOUT = 5.0
GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0",          # `git status` must not write the index of a read-only checkout
           "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


@dataclass(frozen=True, slots=True)
class Derived:
    """The time a file's serial is derived from, and where it came from (for the log and /v1/zones)."""

    serial: int
    source: str                # "git commit" or "file time"


def file_digest(path: str) -> str:
    """SHA-256 of the file's bytes (hex). :raises OSError: when it cannot be read."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _git(directory: str, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env={**os.environ, **GIT_ENV}, check=False)
    except (OSError, subprocess.SubprocessError):
        return None                             # no git installed, or it hung


class SerialKeeper:
    """Derives each zone file's serial (module docstring) and keeps it monotonic in `state_dir`."""

    def __init__(self, state_dir: str | None):
        self.path = os.path.join(state_dir, STATE_FILE) if state_dir else None
        self.last: dict[str, tuple[int, str]] = self._read()     # origin -> (serial, sha256 of the file)
        self._git_warned = False

    def _read(self) -> dict[str, tuple[int, str]]:
        if self.path is None or not os.path.exists(self.path):
            return {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return {str(origin): (int(v["serial"]), str(v["sha256"])) for origin, v in data.items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("%s unreadable (%s): automatic serials start again from the zone files' times",
                        self.path, exc)
            return {}

    def _write(self) -> None:
        if self.path is None:
            return
        tmp = f"{self.path}.tmp.{os.getpid()}"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({o: {"serial": s, "sha256": d} for o, (s, d) in sorted(self.last.items())}, fh, indent=1)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write %s (%s): serials stay monotonic only while this process runs",
                        self.path, exc)

    def derive(self, path: str, mtime: float) -> Derived:
        """The serial a file's own history gives (module docstring, rules 1 and 2)."""
        commit = self._commit_time(path)
        if commit is not None:
            return Derived(commit, "git commit")
        return Derived(int(mtime) % 2**32, "file time")

    def _commit_time(self, path: str) -> int | None:
        """The commit time of the last commit touching `path`, when it is committed and unmodified."""
        directory, name = os.path.split(os.path.abspath(path))
        inside = _git(directory, "rev-parse", "--is-inside-work-tree")
        if inside is None or inside.returncode != 0 or inside.stdout.strip() != "true":
            if inside is not None and "safe.directory" in inside.stderr and not self._git_warned:
                self._git_warned = True       # a checkout owned by another user: git will not read it
                log.warning("git refuses %s (%s): serials come from file times", directory,
                            inside.stderr.strip().splitlines()[0])
            return None
        status = _git(directory, "status", "--porcelain", "--untracked-files=all", "--", name)
        if status is None or status.returncode != 0 or status.stdout.strip():
            return None                         # modified, untracked or ignored: not what was committed
        stamp = _git(directory, "log", "-1", "--format=%ct", "--", name)
        if stamp is None or stamp.returncode != 0 or not stamp.stdout.strip().isdigit():
            return None
        return int(stamp.stdout.strip()) % 2**32

    def serial(self, origin: str, digest: str, derived: Derived | None, given: int | None = None) -> int:
        """The serial to serve for `origin` whose file has SHA-256 `digest`; remembered (state_dir).

        `given`: the file's own `serial:`, which wins. Else `derived` when it is later than the last
        serial, the last serial for the same content, or the last + 1 for new content.
        """
        last = self.last.get(origin)
        if given is not None:
            serial = given
        elif derived is None:
            raise ValueError("an automatic serial needs a derived time")
        elif last is None or derived.serial > last[0]:
            serial = derived.serial
        elif digest == last[1]:
            serial = last[0]
        else:
            serial = (last[0] + 1) % 2**32
        if last != (serial, digest):
            self.last[origin] = (serial, digest)
            self._write()
        return serial
