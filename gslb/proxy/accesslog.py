"""The proxy's access log: one preformatted line per request into a buffer, written in batches.

Off the `logging` machinery on purpose: a LogRecord, handler locks and a formatter per request cost
the proxy about a third of its throughput. Lines go into a list and reach the file with one write when
`buffer` bytes are waiting, every `flush` seconds (the proxy's sweep calls `tick`), on reload and on
shutdown. Like nginx's `access_log ... buffer=64k flush=1s`; a SIGKILL loses at most one buffer.
"""

from __future__ import annotations

import os
import stat
import time

PIPE_BUF = 4096        # writes up to this size to a pipe are atomic: workers' lines never interleave


class AccessLog:
    """Buffered access-log lines to a file (opened for append) or to stderr (`path` None)."""

    def __init__(self, path: str | None, buffer: int = 65536, flush: float = 1.0):
        self.path, self.limit, self.interval = path, buffer, flush
        self.lines: list[bytes] = []      # whole lines, already encoded
        self.size = 0
        self.dropped = 0                  # lines lost to write errors (a full disk, a closed pipe)
        self.last_flush = time.monotonic()
        self._second = -1
        self.now = b""                    # the time for lines, refreshed by tick() (0.1 s) and stamp()
        self.stamp()
        self.fd = self._open()

    def _open(self) -> int:
        if self.path is None:
            fd = 2
        else:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        # A pipe (stderr to journald, a shell pipe) takes atomic writes up to PIPE_BUF only: several
        # workers writing there must cut their batches at line ends below that size.
        try:
            self.pipe = stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode)
        except OSError:
            self.pipe = False
        return fd

    def stamp(self) -> bytes:
        """The current UTC time to the second, formatted once per second (not per request): `now`."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self.now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)).encode()
        return self.now

    def write(self, line: bytes) -> None:
        """Queue one line (ending in a newline); written when the buffer is full or at the next flush."""
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.limit:
            self.flush()

    def tick(self, now: float) -> None:
        """Called about every 0.1 s: refresh `now` (lines carry it, like nginx's cached time) and flush when
        `flush` seconds passed since the last write."""
        self.stamp()
        if self.lines and now - self.last_flush >= self.interval:
            self.flush()

    def flush(self) -> None:
        """Write every queued line now."""
        self.last_flush = time.monotonic()
        if not self.lines:
            return
        lines, self.lines, self.size = self.lines, [], 0
        if self.pipe:
            batch: list[bytes] = []
            size = 0
            for line in lines:
                if size + len(line) > PIPE_BUF and batch:
                    self._write(b"".join(batch), len(batch))
                    batch, size = [], 0
                batch.append(line)
                size += len(line)
            self._write(b"".join(batch), len(batch))
        else:
            self._write(b"".join(lines), len(lines))

    def _write(self, data: bytes, count: int) -> None:
        data = memoryview(data)
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            self.dropped += count        # the proxy must keep serving when its log cannot be written

    def reopen(self) -> None:
        """Flush and open the file again (after logrotate moved it: SIGHUP)."""
        self.flush()
        if self.path is not None:
            old, self.fd = self.fd, self._open()
            os.close(old)

    def close(self) -> None:
        self.flush()
        if self.path is not None and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
