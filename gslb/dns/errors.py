"""Every error response the server sends (FORMERR, SERVFAIL, NOTIMP, REFUSED, BADVERS), built one way,
and the rate-limited log line for bad input.

What an error response copies from the query (after dnspython's `make_response` and nsd's
`query_error`):
- always the ID and the opcode (RFC 1035 4.1.1);
- for opcode QUERY only: RD (RFC 1035 4.1.1), CD (RFC 6840 5.9), the question when it could be read,
  and our OPT when the query had a readable one (RFC 6891 7; the DO bit copied, RFC 3225);
- for any other opcode nothing else: the rest of such a message may follow other rules, and RD, CD and
  the sections are defined for QUERY only (ISC's genreport checks exactly this);
- never AA, TC, RA, AD or Z.
An extended rcode (BADVERS = 16) goes into the OPT record, its low four bits into the header
(RFC 6891 6.1.3).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable

from gslb.dns.wire import (
    RCODE_BADVERS,
    RCODE_NOTIMP,
    RCODE_SERVFAIL,
    DnsError,
    FormErr,
    opt_record,
    read_name,
)

QR = 0x8000
OPCODE = 0x7800
QUERY_ONLY = 0x0110          # RD and CD: defined for QUERY only


class NotImp(DnsError):
    """An opcode we do not implement (RFC 1035 4.1.1 NOTIMP): only QUERY is served."""

    rcode = RCODE_NOTIMP


class BadVers(DnsError):
    """An EDNS version we do not speak (RFC 6891 6.1.3): answered with version 0 and BADVERS."""

    rcode = RCODE_BADVERS

    def __init__(self, message: str, question: bytes, do: bool):
        super().__init__(message)
        self.question = question
        self.do = do


def error_response(data: bytes, rcode: int, question: bytes | None = None, edns: bool = False,
                   do: bool = False) -> bytes | None:
    """The error response to the query `data` (see the module docstring for what is copied).

    `question` is the question section to echo (None when it could not be read); `edns` adds our OPT
    record, `do` sets its DO bit. None for a message that must not be answered: shorter than a header,
    or a response (QR=1: answering responses could loop between servers).
    """
    if len(data) < 12 or data[2] & 0x80:
        return None
    msg_id, flags = struct.unpack_from("!HH", data)
    out = QR | (flags & OPCODE) | (rcode & 0xF)
    if flags & OPCODE:
        question, edns = None, False
    else:
        out |= flags & QUERY_ONLY
    opt = opt_record(do, b"", rcode >> 4) if edns else b""
    header = struct.pack("!HHHHHH", msg_id, out, 1 if question else 0, 0, 0, 1 if edns else 0)
    return header + (question or b"") + opt


def response_for(exc: DnsError, data: bytes) -> bytes | None:
    """The error response for a query the DNS paths refused with `exc` (FormErr, NotImp, BadVers)."""
    question = getattr(exc, "question", None)
    if isinstance(exc, BadVers):
        return error_response(data, exc.rcode, question, True, exc.do)
    if isinstance(exc, FormErr):
        return error_response(data, exc.rcode, question, exc.edns, exc.do)
    return error_response(data, exc.rcode, question)


def question_of(data: bytes) -> bytes | None:
    """The question section of a one-question query, or None when it cannot be read (never raises)."""
    if len(data) < 12 or data[4:6] != b"\x00\x01":
        return None
    try:
        name, end = read_name(data, 12)
    except FormErr:
        return None
    return name + data[end:end + 4] if end + 4 <= len(data) else None


def servfail(data: bytes) -> bytes | None:
    """SERVFAIL for a query we failed on (our bug), echoing the question when it can be read."""
    return error_response(data, RCODE_SERVFAIL, question_of(data))


class LogThrottle:
    """At most one log line per `interval` seconds; the next line says how many were held back.

    Bad input comes from the network at the attacker's pace: logging each one would turn a flood of
    junk into a flood of log (and of disk I/O on the answering process).
    """

    def __init__(self, logger: logging.Logger, level: int, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.level = level
        self.interval = interval
        self.clock = clock
        self.suppressed = 0
        self._next = 0.0

    def __call__(self, message: str, *args: object) -> None:
        now = self.clock()
        if now < self._next:
            self.suppressed += 1
            return
        self._next = now + self.interval
        if self.suppressed:
            message += " (and %d more like it in the last %.0f s)"
            args += (self.suppressed, self.interval)
            self.suppressed = 0
        self.logger.log(self.level, message, *args)
