"""The external health source (`check: {type: file, path: ...}`): a file of `ADDRESS STATE [reason]` lines
that any monitoring system writes, read again whenever it changes (gdnsd's extfile idea).

    # written by nagios; one address a line; STATE is up or down (any case)
    192.0.2.10  up
    192.0.2.11  down   disk full on db-2
    2001:db8::10 up

The file is looked at (one `stat`) at most every STAT_EVERY seconds per process, whatever the number of
targets, and read again only when its size, modification time or inode changed, so a new state reaches
the prober within one check interval. A file that cannot be used (missing, unreadable, too big, a bad
line) does not change anything: the last good contents stay in force and the problem is logged once per
version of the file with `file:line`. Until a file was read well once, checks of it are prober errors:
the prober cannot see, so its targets keep their state and it does not vote.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field

log = logging.getLogger("gslb.health")
STAT_EVERY = 0.05            # seconds between two looks at the same file
SIZE_LIMIT = 16 * 2**20      # a bigger file is refused (the last good contents stay)
STATES = ("up", "down")


@dataclass(frozen=True, slots=True)
class Listed:
    """One address's line in the file."""

    up: bool
    reason: str
    line: int


@dataclass(slots=True)
class _File:
    path: str
    states: dict[str, Listed] | None = None       # the last good contents; None: never read well
    version: tuple | None = None                  # (inode, size, mtime_ns) last read, good or not
    problem: str | None = None                    # why the current version is not in force
    looked: float = field(default=-1e9)


class FileProblem(ValueError):
    """A health file that cannot be used as it is; the message is `file:line: what`."""


def parse(text: str, path: str) -> dict[str, Listed]:
    """The address -> state map of a health file's text.

    :raises FileProblem: at the first bad line (named `path:line`); nothing of the file is used then.
    """
    states: dict[str, Listed] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise FileProblem(f"{path}:{number}: expected ADDRESS STATE [reason], got {line[:80]!r}")
        try:
            address = str(ipaddress.ip_address(parts[0]))
        except ValueError:
            raise FileProblem(f"{path}:{number}: {parts[0][:60]!r} is not an IP address") from None
        state = parts[1].lower()
        if state not in STATES:
            raise FileProblem(f"{path}:{number}: state {parts[1][:20]!r}, expected up or down")
        if address in states:
            raise FileProblem(f"{path}:{number}: {address} is listed twice (also line {states[address].line})")
        states[address] = Listed(state == "up", parts[2].strip() if len(parts) > 2 else "", number)
    return states


_files: dict[str, _File] = {}


def _refresh(entry: _File, now: float) -> None:
    entry.looked = now
    try:
        st = os.stat(entry.path)
    except OSError as exc:
        version: tuple = ("missing", exc.errno)
        if version != entry.version:
            entry.version, entry.problem = version, f"{entry.path}: {os.strerror(exc.errno or 0).lower()}"
            _log_problem(entry)
        return
    version = (st.st_ino, st.st_size, st.st_mtime_ns)
    if version == entry.version:
        return
    entry.version = version
    try:
        if st.st_size > SIZE_LIMIT:
            raise FileProblem(f"{entry.path}: {st.st_size} bytes, more than {SIZE_LIMIT}")
        with open(entry.path, "rb") as f:
            data = f.read(SIZE_LIMIT + 1)
        states = parse(data.decode("utf-8", "replace"), entry.path)
    except OSError as exc:
        entry.problem = f"{entry.path}: {os.strerror(exc.errno or 0).lower() if exc.errno else exc}"
        _log_problem(entry)
        return
    except FileProblem as exc:
        entry.problem = str(exc)
        _log_problem(entry)
        return
    entry.states, entry.problem = states, None
    down = sum(1 for s in states.values() if not s.up)
    log.info("health file %s read: %d addresses, %d down", entry.path, len(states), down)


def _log_problem(entry: _File) -> None:
    if entry.states is None:
        log.warning("health file %s: not read yet, its addresses keep their state", entry.problem)
    else:
        log.warning("health file %s: the last good contents (%d addresses) stay in force",
                    entry.problem, len(entry.states))


def lookup(path: str, address: str) -> tuple[Listed | None, str | None]:
    """An address's line in the health file at `path` (None when it is not listed), and the file's
    current problem (or None).

    :raises FileProblem: while the file has never been read well (nothing to go by).
    """
    entry = _files.get(path)
    if entry is None:
        entry = _files[path] = _File(path)
    now = time.monotonic()
    if now - entry.looked >= STAT_EVERY:
        _refresh(entry, now)
    if entry.states is None:
        raise FileProblem(entry.problem or f"{path}: not read yet")
    return entry.states.get(address), entry.problem
