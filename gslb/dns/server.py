"""DNS over UDP and TCP on asyncio (uvloop when available): sockets in, `handle` out.

TCP follows RFC 7766: two-byte length prefix, several queries per connection answered in order,
an idle timeout between messages and a deadline for each message; connections are capped in total and
per client address (gslb/dns/tcpguard.py, the `tcp:` config).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from time import perf_counter

from dnslib import RCODE

from gslb.config.dnslimits import TcpLimits
from gslb.dns.errors import LogThrottle, response_for, servfail
from gslb.dns.fast import answer as fast_answer
from gslb.dns.querylog import log_query
from gslb.dns.rrl import DROP, PASS, SLIP, RateLimiter, slip_answer
from gslb.dns.slow import answer as slow_answer
from gslb.dns.table import AnswerTable
from gslb.dns.tcpguard import TcpGuard
from gslb.dns.udpbatch import BatchedUdp, udp_mode
from gslb.dns.wire import DnsError, FormErr

log = logging.getLogger("gslb.dns")


UDP_MODE_TEXT = {"c": "batches (recvmmsg/sendmmsg, C extension)", "python": "batches (pure Python)",
                 "asyncio": "one datagram per event-loop callback"}
FAILURE_LOG_INTERVAL = 10.0   # seconds between two log lines about bad input (or about our own failures)


class Handler:
    """Turns a query into a response with the current answer table (swapped atomically on reload).

    Bad input never raises out of here and never logs a traceback: it is answered FORMERR or NOTIMP,
    counted, and logged at most once per FAILURE_LOG_INTERVAL. A UDP query first passes the rate
    limiter (gslb/dns/rrl.py), so a dropped one costs no answer.
    """

    def __init__(self, table: AnswerTable, log_queries: bool = False, rate_limit: RateLimiter | None = None,
                 log_sample: int = 1):
        self.table = table
        # The query counters (gslb/dns/stats.py), those of the table's; None when counting is off.
        self.stats = table.stats
        self._tick = 0            # one query in stats.sample_every is timed (gslb_dns_query_seconds)
        self.log_queries = log_queries
        self.log_sample = max(1, log_sample)      # the query log takes one query in log_sample
        self._unlogged = 0
        self.rate_limit = rate_limit
        self.responses = ([0] * 16, [0] * 16)   # by rcode, [0] UDP and [1] TCP: for /metrics
        self.dropped = 0          # not answered: shorter than a header, or a response
        self.malformed = 0        # answered FORMERR: the query could not be read
        self.unsupported = 0      # answered NOTIMP or BADVERS: an opcode or EDNS version we do not speak
        self.failures = 0         # answered SERVFAIL because of a bug of ours (the last-resort guard)
        self._bad_input_log = LogThrottle(log, logging.INFO, FAILURE_LOG_INTERVAL)
        self._failure_log = LogThrottle(log, logging.ERROR, FAILURE_LOG_INTERVAL)

    def __call__(self, data: bytes, client_ip: str, tcp: bool) -> bytes | None:
        table = self.table   # one table for the whole query, even if a reload swaps it meanwhile
        stats = self.stats
        started = 0.0
        if stats is not None:
            self._tick += 1
            if self._tick >= stats.sample_every:
                self._tick = 0
                started = perf_counter()
        verdict = PASS
        if self.rate_limit is not None and not tcp:
            verdict = self.rate_limit.verdict(client_ip, data)
            if verdict == DROP:
                return None
        try:
            out = fast_answer(table, data, client_ip, tcp)
            if out is None:
                out = slow_answer(table, data, client_ip, tcp)
        except DnsError as exc:
            out = response_for(exc, data)
            if isinstance(exc, FormErr):
                self.malformed += 1
            else:
                self.unsupported += 1
            self._bad_input_log("%s to %s: %s (%d bytes)", RCODE.get(exc.rcode, exc.rcode), client_ip, exc,
                                len(data))
            if stats is not None:
                stats.count_response(None, None, out, tcp)
        except Exception as exc:  # noqa: BLE001 -- last resort: no input may take a query down with it
            self.failures += 1
            self._failure_log("query from %s failed (SERVFAIL): %s: %s; query %s", client_ip,
                              type(exc).__name__, exc, data[:64].hex())
            out = servfail(data)
            if stats is not None:
                stats.count_response(None, None, out, tcp)
        if out is None:
            self.dropped += 1
            return None
        if verdict == SLIP:
            out = slip_answer(out)
        self.responses[tcp][out[3] & 0xF] += 1
        if self.log_queries:
            self._unlogged += 1
            if self._unlogged >= self.log_sample:
                self._unlogged = 0
                log_query(table, data, out, client_ip, tcp)
        if started:
            stats.observe(perf_counter() - started)
        return out



class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, str, bool], bytes | None]):
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        out = self.handler(data, addr[0], False)
        if out is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class TcpServer(asyncio.Protocol):
    """One DNS TCP connection (RFC 7766): length-prefixed queries answered in order.

    The guard admits it (or it is closed at once, counted). Between messages the idle timer runs; once
    the first byte of a message arrives, the whole message must arrive within `message_timeout`, and
    further bytes do not extend that deadline (slow-loris). A client that stops reading its answers
    stops being read and answered (flow control: at most one write buffer of answers is held for it), and
    its idle timer closes it.
    """

    def __init__(self, handler: Callable[[bytes, str, bool], bytes | None], guard: TcpGuard):
        self.handler = handler
        self.guard = guard
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None
        self.in_message = False          # the timer is a message deadline (else the idle timer)
        self.writing_paused = False      # the client is not reading: answer nothing more until it does

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        if not self.guard.admit(self.peer, self):
            transport.abort()            # over a cap: the descriptor is freed now, the client can try elsewhere
            return
        self.admitted = True
        self._start_timer(self.guard.idle_timeout(), message=False)

    def _start_timer(self, seconds: float, message: bool) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.in_message = message
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def evict(self) -> None:
        """Closed by the guard to admit a newcomer at the total cap: the slot is free at once."""
        self._release()
        self.transport.abort()

    def _expire(self) -> None:
        self.timer = None
        if self.in_message:
            self.guard.closed_message_timeout += 1
        else:
            self.guard.closed_idle += 1
        self.transport.abort()           # not close(): unread answers must not keep the descriptor

    def data_received(self, data: bytes) -> None:
        if not self.admitted or self.transport.is_closing():
            return
        self.buffer = self.buffer + data if self.buffer else data
        self._answer()

    def _answer(self) -> None:
        """Answer the whole messages in the buffer, in order, then set the timer for what is left."""
        buffer, pos, answered = self.buffer, 0, False
        while not self.writing_paused and len(buffer) - pos >= 2:
            length = (buffer[pos] << 8) | buffer[pos + 1]
            if len(buffer) - pos < 2 + length:
                break
            message = buffer[pos + 2:pos + 2 + length]
            pos += 2 + length
            answered = True
            self.guard.message_done(self)
            out = self.handler(message, self.peer, True)
            if out is None:
                self.transport.close()   # junk on a stream: nothing sane follows it
                return
            self.transport.write(struct.pack("!H", len(out)) + out)
        self.buffer = buffer[pos:] if pos else buffer
        if not self.buffer or self.writing_paused:
            # Waiting for the client: to send its next query, or to read the answers it has.
            self._start_timer(self.guard.idle_timeout(), message=False)
        elif answered or not self.in_message:
            # The next message's first byte is here: its deadline starts now and later bytes keep it.
            self._start_timer(self.guard.limits.message_timeout, message=True)

    def pause_writing(self) -> None:
        self.writing_paused = True
        if not self.transport.is_closing():
            self.transport.pause_reading()   # the client does not read its answers: stop taking queries

    def resume_writing(self) -> None:
        self.writing_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()
            self._answer()                   # the queries that arrived meanwhile

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def _release(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.admitted:
            self.admitted = False
            self.guard.release(self.peer, self)


def parse_listen(text: str, default_port: int = 5353) -> tuple[str, int]:
    """"127.0.0.1:5353", "[::1]:5353", "::1" or "0.0.0.0" -> (host, port).

    :raises ValueError: with a message naming the bad value.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        number = int(port) if port else default_port
        if not 0 <= number <= 65535:
            raise ValueError
    except (OSError, ValueError):
        raise ValueError(f"bad listen address {text!r}, expected ADDR:PORT like 127.0.0.1:5353 or [::1]:5353") from None
    return host, number


def _bind_pair(host: str, port: int, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same address and port. Port 0 picks one free for both (a port the
    kernel hands UDP may be taken for TCP, so it tries again). `reuse_port` lets worker processes share
    the port (SO_REUSEPORT: the kernel spreads clients over them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(1024)
            return udp, tcp
        except OSError:
            udp.close()
            tcp.close()
            if port != 0:
                raise
    raise OSError(f"no port free for both UDP and TCP on {host}")


async def start_dns(handler: Handler, host: str, port: int, reuse_port: bool = False,
                    tcp_guard: TcpGuard | None = None) -> tuple[asyncio.BaseTransport | BatchedUdp, asyncio.Server]:
    """Bind UDP and TCP on one address; returns both so they can be closed.

    `tcp_guard` holds the TCP caps and timeouts; pass the same one for every listen address so that
    the caps count the whole process (default: one of its own with the default limits). UDP is served
    in batches (gslb/dns/udpbatch.py) unless GSLB_DNS_UDP=asyncio or batching is not available here.
    """
    loop = asyncio.get_running_loop()
    guard = tcp_guard if tcp_guard is not None else TcpGuard(TcpLimits())
    mode = udp_mode()
    udp_sock, tcp_sock = _bind_pair(host, port, reuse_port)
    if mode == "asyncio":
        udp, _ = await loop.create_datagram_endpoint(lambda: UdpServer(handler), sock=udp_sock)
    else:
        udp = BatchedUdp(udp_sock, handler, mode)
    log.debug("UDP on %s port %d: %s", host, udp_sock.getsockname()[1], UDP_MODE_TEXT[mode])
    tcp = await loop.create_server(lambda: TcpServer(handler, guard), sock=tcp_sock)
    return udp, tcp
