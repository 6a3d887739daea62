"""Reading a query straight from the wire, and the small byte-level pieces of a response.

`parse_query` accepts the common shape (one question, at most one OPT record, nothing else) and says
`None` for anything else, which then goes to the dnslib slow path. It raises `FormErr` for an EDNS
option that is malformed in a way RFC 6891/7871 says must get FORMERR.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from gslb.errors import GslbError

TYPE_OPT = 41
OPT_NSID = 3                 # RFC 5001: the client asks which server answered
OPT_ECS = 8
EDNS_PAYLOAD = 1232          # our advertised and maximum UDP payload (DNS flag day 2020)
RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 1, 2, 3, 4, 5
RCODE_BADVERS = 16


class DnsError(GslbError):
    """A query we answer with an error rcode."""

    rcode = RCODE_SERVFAIL


class FormErr(DnsError):
    """The query is malformed (RFC 1035 4.1.1 FORMERR).

    `question` is its question section if it could be read; `edns`/`do` say whether the query had a
    readable OPT record (and its DO bit), so that the response carries ours (RFC 6891 7).
    """

    rcode = RCODE_FORMERR

    def __init__(self, message: str, question: bytes | None = None, edns: bool = False, do: bool = False):
        super().__init__(message)
        self.question = question
        self.edns = edns
        self.do = do


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """The EDNS Client Subnet option of a query (RFC 7871)."""

    family: int              # 1 = IPv4, 2 = IPv6
    source: int              # SOURCE PREFIX-LENGTH
    address: str             # the subnet's address, zero-padded
    raw: bytes               # the address octets as sent (SOURCE PREFIX-LENGTH rounded up to whole octets)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(f"{self.address}/{self.source}")

    def option(self, scope: int) -> bytes:
        """This option as sent back, with our SCOPE PREFIX-LENGTH (RFC 7871 7.2.1)."""
        return struct.pack("!HHHBB", OPT_ECS, 4 + len(self.raw), self.family, self.source, scope) + self.raw


@dataclass(slots=True)       # not frozen: a frozen dataclass's __init__ costs a call per field
class Query:
    """The parts of a query that a response needs."""

    id: int
    flags: int               # the query's 16-bit flags word
    question: bytes          # the question section as sent (name in the client's letter case)
    qname: bytes             # the name's wire form, lower case
    qtype: int
    qclass: int
    edns: bool = False
    payload: int = 512       # the client's UDP payload size (512 without EDNS)
    do: bool = False         # DNSSEC OK bit, copied back (RFC 3225)
    ecs: ClientSubnet | None = None
    nsid: bool = False       # the query carries an NSID option (answered on the slow path)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


MAX_NAME = 255              # octets of a name in wire form, root label included (RFC 1035 3.1)


def _read_name(data: bytes, pos: int) -> int:
    """End offset of an uncompressed name starting at pos; ValueError if it is not one (the slow path
    then reads it with `read_name`, which says what is wrong)."""
    total = 0
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0:
            raise ValueError("compressed or extended label in question")
        pos += length + 1
        total += length + 1
        if total > 254 or pos >= len(data):
            raise ValueError("name too long")


def _parse_ecs(body: bytes) -> ClientSubnet:
    if len(body) < 4:
        raise FormErr("ECS option shorter than 4 bytes")
    family, source, scope = struct.unpack_from("!HBB", body)
    if family not in (1, 2):
        raise FormErr(f"ECS family {family} is neither 1 (IPv4) nor 2 (IPv6)")
    width = 32 if family == 1 else 128
    raw = body[4:]
    if source > width or scope != 0 or len(raw) != (source + 7) // 8:
        raise FormErr("ECS prefix length, scope or address length is wrong (RFC 7871 6)")
    padded = raw + bytes(width // 8 - len(raw))
    value = int.from_bytes(padded, "big")
    if value & ((1 << (width - source)) - 1):
        raise FormErr("ECS address has bits set beyond SOURCE PREFIX-LENGTH")
    address = socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, padded)
    return ClientSubnet(family, source, address, raw)


def parse_query(data: bytes) -> Query | None:
    """Parse a plain query: QR=0, opcode QUERY, one question, no answer/authority, at most one OPT.

    Returns None when the message has another shape, or asks for NSID (the slow path decides what to
    do with it).
    :raises FormErr: for a malformed OPT or ECS option.
    """
    if len(data) < 17:
        return None
    msg_id, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return None                       # a response, another opcode (NOTIMP first) or another shape
    try:
        end = _read_name(data, 12)
    except (ValueError, IndexError):
        return None
    if end + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, end)
    question = data[12:end + 4]
    qname = data[12:end].lower()         # label length bytes are < 64, so lower() only touches letters
    pos = end + 4
    if ar == 0:
        if pos != len(data):
            return None
        return Query(msg_id, flags, question, qname, qtype, qclass)
    # One additional record: it must be an OPT for the root (RFC 6891 6.1.1).
    if pos + 11 > len(data) or data[pos] != 0:
        return None
    rtype, payload, _ext_rcode, version, eflags, rdlen = struct.unpack_from("!HHBBHH", data, pos + 1)
    if rtype != TYPE_OPT or pos + 11 + rdlen != len(data):
        return None
    if version != 0:
        return None                       # BADVERS is built by the slow path
    try:
        ecs, nsid = parse_options(data, pos + 11, pos + 11 + rdlen)
    except FormErr as exc:
        raise FormErr(str(exc), question, True, bool(eflags & 0x8000)) from None
    if nsid:
        return None
    return Query(msg_id, flags, question, qname, qtype, qclass, True, max(512, payload),
                 bool(eflags & 0x8000), ecs)


def read_name(data: bytes, pos: int) -> tuple[bytes, int]:
    """The name at `pos` in uncompressed wire form (letter case kept), and the offset just after it.

    Compression pointers are followed; each must point before the part of the name that holds it, so
    a loop cannot be built (RFC 1035 4.1.4).
    :raises FormErr: for a label type other than a length or a pointer (0x40-0xBF: extended and reserved
        label types, RFC 6891 5), a pointer that does not point backwards, a name over 255 octets, or a
        message that ends inside the name.
    """
    labels: list[bytes] = []
    total = 1
    end = -1
    floor = pos              # a pointer must point below where the current run of labels began
    size = len(data)
    while True:
        if pos >= size:
            raise FormErr("the message ends inside a name")
        length = data[pos]
        if length >= 0xC0:
            if pos + 1 >= size:
                raise FormErr("the message ends inside a compression pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= floor:
                raise FormErr(f"compression pointer to offset {target} does not point backwards")
            pos = floor = target
            continue
        if length & 0xC0:
            raise FormErr(f"label type 0x{length & 0xC0:02x} (extended or reserved, RFC 6891 5) is not supported")
        if length == 0:
            return b"".join(labels) + b"\x00", end if end >= 0 else pos + 1
        total += length + 1
        if total > MAX_NAME:
            raise FormErr(f"name longer than {MAX_NAME} octets (RFC 1035 3.1)")
        if pos + 1 + length > size:
            raise FormErr("the message ends inside a label")
        labels.append(data[pos:pos + 1 + length])
        pos += 1 + length


def parse_options(data: bytes, opt: int, opt_end: int) -> tuple[ClientSubnet | None, bool]:
    """The ECS option among the EDNS options and whether NSID is asked for, checking that every
    option is well formed."""
    ecs, nsid = None, False
    while opt < opt_end:
        if opt + 4 > opt_end:
            raise FormErr("truncated EDNS option")
        code, length = struct.unpack_from("!HH", data, opt)
        if opt + 4 + length > opt_end:
            raise FormErr("EDNS option runs past the OPT record")
        if code == OPT_ECS:
            if ecs is not None:
                raise FormErr("more than one ECS option")
            ecs = _parse_ecs(data[opt + 4:opt + 4 + length])
        elif code == OPT_NSID:
            nsid = True      # a request has empty data (RFC 5001 2.1); other data is ignored, not an error
        opt += 4 + length
    return ecs, nsid


def opt_record(do: bool, options: bytes = b"", ext_rcode: int = 0) -> bytes:
    """Our OPT pseudo-record: root owner, payload 1232, version 0, DO copied, given options."""
    return struct.pack("!BHHBBHH", 0, TYPE_OPT, EDNS_PAYLOAD, ext_rcode, 0, 0x8000 if do else 0,
                       len(options)) + options


_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*")


def name_to_text(wire: bytes) -> str:
    """Presentation form of an uncompressed wire name (lower case as given, trailing dot)."""
    labels, pos = [], 0
    while wire[pos]:
        length = wire[pos]
        labels.append("".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in wire[pos + 1:pos + 1 + length]))
        pos += length + 1
    return ".".join(labels) + "."


def text_to_name(name: str) -> bytes:
    """Wire form of an absolute presentation name (no escapes)."""
    if name == ".":
        return b"\x00"
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split(".")) + b"\x00"
