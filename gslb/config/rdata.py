"""Record data in wire form: how an `RRset` keeps its records (gslb.config.model).

A zone of 100,000 names held one dnslib object (with its own `__dict__` and a tuple or list inside) per
record: about 500 bytes a name, and millions of objects for every reload to unpickle and free. An RRset
now keeps its records as one `bytes`: each record's RDLENGTH (2 bytes) and RDATA, one after the other,
which is also what the answer table copies into responses. dnslib objects are made from it on demand
(`decode`), for the slow path, which packs each answer once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:       # dnslib is imported where records are packed or parsed, not by every model user
    from dnslib import RD

_LENGTH = struct.Struct("!H")


def encode(rd: RD) -> bytes:
    """One dnslib record's RDATA. Each record type of gslb/config/registry.py has at most one name in
    its data, so a fresh buffer never compresses it: the bytes stand alone, wherever they are copied."""
    from dnslib import DNSBuffer

    buffer = DNSBuffer()
    rd.pack(buffer)
    return bytes(buffer.data)


def join(rdatas: list[bytes]) -> bytes:
    """The wire form of an RRset's records: each RDATA preceded by its length."""
    return b"".join(_LENGTH.pack(len(rd)) + rd for rd in rdatas)


def records(wire: bytes) -> Iterator[bytes]:
    """Each record of an RRset's wire form as RDLENGTH + RDATA (what follows TYPE, CLASS and TTL)."""
    pos, end = 0, len(wire)
    while pos < end:
        size = 2 + (wire[pos] << 8 | wire[pos + 1])
        yield wire[pos:pos + size]
        pos += size


def decode(rtype: str, wire: bytes) -> tuple[RD, ...]:
    """The records of an RRset's wire form as dnslib objects."""
    from dnslib import RD, RDMAP, DNSBuffer

    cls = RDMAP.get(rtype, RD)
    out = []
    for record in records(wire):
        out.append(cls.parse(DNSBuffer(record[2:]), len(record) - 2))
    return tuple(out)
