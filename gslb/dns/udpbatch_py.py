"""Batched UDP in pure Python: the twin of the C extension gslb/dns/_udpbatch.c (same interface).

Used where the extension is not built (no compiler at install, or not Linux), or with
GSLB_DNS_UDP=python. It cannot save system calls (one recvfrom and one sendto per datagram), but it
drains the socket on each readiness event like the C twin, so the event loop is entered once per batch.
"""

from __future__ import annotations

import socket


class Batch:
    """Batch(fd, count=64): `recv()` the waiting datagrams, then `send()` one reply (or None) for each."""

    __slots__ = ("_senders", "_sock", "count")

    def __init__(self, fd: int, count: int = 64):
        if not 1 <= count <= 1024:
            raise ValueError(f"count must be 1 to 1024, not {count}")
        # A second socket object on the same descriptor, never closed here: the server owns the socket.
        self._sock = socket.socket(fileno=fd)
        self._sock.setblocking(False)
        self.count = count
        self._senders: list[tuple] = []

    def fileno(self) -> int:
        return self._sock.fileno()

    def detach(self) -> None:
        """Let go of the descriptor without closing it (the server closes its own socket object)."""
        self._sock.detach()

    def recv(self) -> list[tuple[bytes, str]]:
        """Up to `count` waiting datagrams as (data, client_ip); [] when none is waiting."""
        recvfrom = self._sock.recvfrom
        batch: list[tuple[bytes, str]] = []
        senders: list[tuple] = []
        for _ in range(self.count):
            try:
                data, addr = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            batch.append((data, addr[0]))
            senders.append(addr)
        self._senders = senders
        return batch

    def send(self, replies) -> int:
        """replies[i] (bytes or None) to the sender of the i-th datagram of the last `recv()`; returns how
        many went out. A refused destination is skipped; a full socket drops the rest (clients retry)."""
        senders = self._senders
        if len(replies) > len(senders):
            raise ValueError(f"{len(replies)} replies for {len(senders)} queries")
        sendto = self._sock.sendto
        sent = 0
        for reply, addr in zip(replies, senders):
            if reply is None:
                continue
            try:
                sendto(reply, addr)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            sent += 1
        return sent
