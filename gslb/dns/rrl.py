"""Response rate limiting (RRL) for DNS over UDP, per client prefix, like nsd and Knot.

UDP sources can be spoofed: without a limit, a flood of small queries "from" a victim turns the server
into an amplifier aimed at it. As in nsd and BIND, what is limited is the same response to the same
network: each (client prefix (/24, /56 by default), question) pair gets a token bucket, so a busy
resolver farm asking many names is not slowed while a flood of one (large) answer is. The bucket is one
integer, its "theoretical arrival time" (GCRA, the generic cell rate algorithm): a response is allowed
while that time runs at most `burst` intervals ahead of now. A limited response is dropped, except every
`slip`-th, which goes out as a minimal TC=1 answer (header and question: never larger than the query),
so that a real resolver behind a busy prefix retries over TCP, which cannot be spoofed and is never
limited.

The check runs before the answer is built, so a dropped query costs two dict lookups and a clock read
(the prefix of an address is kept in a bounded memo). The table of prefixes is bounded (`max_prefixes`): a prefix whose bucket is full again
needs no entry and goes first; when every entry is busy (a flood from many spoofed prefixes) the oldest
tenth goes.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from itertools import islice

from gslb.config.rrl import RateLimitSettings

PASS, DROP, SLIP = 0, 1, 2
_V6 = 1 << 129               # IPv6 keys carry this bit so they never meet an IPv4 key
QUESTION_BYTES = 12 + 300    # a question (255-octet name, type, class) and a typical OPT


class RateLimiter:
    """Decides per UDP query: answer (PASS), drop (DROP) or send a truncated answer (SLIP)."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], int] = time.monotonic_ns):
        self.settings = settings
        self.clock = clock
        self.interval = 1_000_000_000 // settings.responses_per_second   # ns per response
        self.window = self.interval * settings.burst                      # how far the bucket may run ahead
        self.slip = settings.slip
        self.v4_shift = 32 - settings.ipv4_prefix
        self.v6_shift = 128 - settings.ipv6_prefix
        nets = [ipaddress.ip_network(text) for text in settings.exempt]
        self.exempt4 = tuple((32 - n.prefixlen, int(n.network_address) >> (32 - n.prefixlen))
                             for n in nets if n.version == 4)
        self.exempt6 = tuple((128 - n.prefixlen, int(n.network_address) >> (128 - n.prefixlen))
                             for n in nets if n.version == 6)
        self.limit = settings.max_prefixes
        self.buckets: dict[int, int] = {}
        self._keys: dict[str, int] = {}      # address text -> prefix key (-1: exempt); parsing costs ~0.5 us
        self.dropped = 0          # limited responses not sent
        self.slipped = 0          # limited responses sent as TC=1
        self._limited = 0

    def verdict(self, client_ip: str, query: bytes = b"") -> int:
        """PASS, DROP or SLIP for one UDP query from `client_ip` (counted against its prefix and question).

        The question is keyed by the query's bytes after the header (name, type, class and any OPT),
        letter case folded (0x20), so a query that differs only in ID or case shares its bucket.
        """
        key = self._keys.get(client_ip)
        if key is None:
            key = self._key_of(client_ip)
            if len(self._keys) >= self.limit:
                self._keys.clear()            # a spoofed flood of addresses: start over, stay bounded
            self._keys[client_ip] = key
        if key < 0:
            return PASS
        key = hash((key, query[12:QUESTION_BYTES].lower()))
        now = self.clock()
        buckets = self.buckets
        tat = buckets.get(key, 0)
        if tat < now:  # noqa: PLR1730 -- max() is a call: slower on the hot path
            tat = now
        tat += self.interval
        if tat - now > self.window:
            self._limited += 1
            if self.slip and self._limited % self.slip == 0:
                self.slipped += 1
                return SLIP
            self.dropped += 1
            return DROP
        if len(buckets) >= self.limit and key not in buckets:
            self._evict(now)
        buckets[key] = tat
        return PASS

    def _key_of(self, client_ip: str) -> int:
        """The prefix key of an address, or -1 when it is exempt (or not an address at all)."""
        try:
            if ":" in client_ip:
                addr = int.from_bytes(socket.inet_pton(socket.AF_INET6, client_ip.partition("%")[0]), "big")
                if any(addr >> shift == net for shift, net in self.exempt6):
                    return -1
                return (addr >> self.v6_shift) | _V6
            addr = int.from_bytes(socket.inet_aton(client_ip), "big")
            if any(addr >> shift == net for shift, net in self.exempt4):
                return -1
            return addr >> self.v4_shift
        except OSError:
            return -1             # not an address (a test harness, a UNIX socket): nothing to limit by

    def _evict(self, now: int) -> None:
        """Make room: forget prefixes whose bucket is full again, then the oldest until 90 % full."""
        buckets = self.buckets
        for key in [k for k, t in buckets.items() if t <= now]:
            del buckets[key]
        excess = len(buckets) - self.limit * 9 // 10
        if excess > 0:
            for key in list(islice(buckets, excess)):
                del buckets[key]


def slip_answer(response: bytes) -> bytes:
    """The TC=1 form of a response: its header and question, no records (RFC 1035 4.1.1, RFC 2181 9).

    The client retries over TCP. It is never larger than the query it answers.
    """
    end = 12
    if response[4:6] == b"\x00\x01":
        while response[end]:              # our responses carry the question uncompressed
            end += response[end] + 1
        end += 5
        qd = b"\x00\x01"
    else:
        qd = b"\x00\x00"
    return response[:2] + bytes([response[2] | 0x02, response[3]]) + qd + bytes(6) + response[12:end]
