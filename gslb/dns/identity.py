"""Say who answered: the node's name in NSID (RFC 5001) and in CHAOS TXT `id.server.` / `hostname.bind.`,
and `version.bind.` only when the operator gives a text for it (docs/server.md, "Which node answered").

These queries are rare (a person with `dig +nsid` or `dig -c CH`), so they take the slow path; the fast
path hands over any query with an NSID option and never sees class CHAOS.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from gslb.dns.wire import RCODE_REFUSED, Query

OPT_NSID = 3                  # RFC 5001 2.3
CLASS_CH = 3
TYPE_TXT = 16
TYPE_ANY = 255
QR = 0x8000
QR_AA = 0x8400
ID_NAMES = frozenset({b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"})
VERSION_NAMES = frozenset({b"\x07version\x04bind\x00", b"\x07version\x06server\x00"})


@dataclass(frozen=True, slots=True)
class Identity:
    """What this node says about itself: `node_id` (server config, default the host name) and the
    `version` text for version.bind. (None: such queries are REFUSED)."""

    node_id: str = field(default_factory=socket.gethostname)
    version: str | None = None

    def nsid_option(self) -> bytes:
        """The NSID option of our OPT record: the node id as its bytes (RFC 5001 2.3)."""
        data = self.node_id.encode()[:65535]
        return struct.pack("!HH", OPT_NSID, len(data)) + data


def txt_rdata(text: str) -> bytes:
    """TXT RDATA for `text`: one character-string, several when longer than 255 bytes (RFC 1035 3.3.14)."""
    data = text.encode()
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    return b"".join(bytes([len(c)]) + c for c in chunks)


def txt_rr(owner: bytes, text: str, qclass: int = 1, ttl: int = 0) -> bytes:
    """One TXT record in wire form; `owner` a wire name or a compression pointer."""
    rdata = txt_rdata(text)
    return owner + struct.pack("!HHIH", TYPE_TXT, qclass, ttl, len(rdata)) + rdata


def chaos(identity: Identity, q: Query) -> tuple[int, int, bytes]:
    """The answer to a class CHAOS query as (flags, answer count, body): the node id for id.server. and
    hostname.bind., the configured version for version.bind./version.server.; REFUSED otherwise. A
    known name asked for another type than TXT gets no records (NOERROR)."""
    if q.qname in ID_NAMES:
        text = identity.node_id
    elif q.qname in VERSION_NAMES and identity.version is not None:
        text = identity.version
    else:
        return QR | RCODE_REFUSED, 0, b""
    if q.qtype not in (TYPE_TXT, TYPE_ANY):
        return QR_AA, 0, b""
    return QR_AA, 1, txt_rr(b"\xc0\x0c", text, CLASS_CH)
