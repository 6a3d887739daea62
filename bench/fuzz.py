#!/usr/bin/env python3
"""Fuzz both DNS paths at depth, offline: generated and mutated packets, the fast/slow contract checked.

    python bench/fuzz.py [--count 1000000] [--seed 1] [--jobs 2]
    python bench/fuzz.py --replay HEX [--tcp] [--client IP]      # one packet, with tracebacks

No sockets: every packet goes to gslb.dns.fast.answer_fast and gslb.dns.slow.answer_slow on an answer
table built from the bundled zones (zones/, data/regions.yaml, data/gslb-geo.mmdb), the same way
tests/test_dns_paths.py builds one. The contract checked for every packet (the test's, made strict):

- neither path raises;
- when the fast path answers, its bytes equal the slow path's (the module `random` is seeded alike
  before each call, so even a pool's random pick must match);
- the slow path drops (None) only what is shorter than a header or is a response (QR set);
- every response has the query's ID, QR set and the query's opcode; a response with a question has the
  query's name in the client's letter case, type and class; a response with opcode 0 is parsed by dnspython
  without trailing bytes; over UDP it fits 512 bytes, or the client's EDNS payload capped at 1232;
- a well-formed query (generated, not mutated) never gets SERVFAIL: every pool here has endpoints up.

Packets: valid queries for every name of the zone and many types, in random letter case (0x20), with random
flags, EDNS (versions, payloads, DO), EDNS Client Subnet and other options; and mutations of them: bit
flips, byte overwrites, truncations, insertions, deletions, trailing bytes, corrupted label lengths,
compression pointers (loops, forward, into the header), extended label bytes 0x40-0xBF, names over 255
octets, odd opcodes, header-only packets, two OPTs, an OPT not at the root, malformed ECS and OPT lengths,
records in the answer/authority sections, QDCOUNT 0 or 2, QR set, spliced queries and random bytes.

Seeded and reproducible: the packets are made in chunks of 5,000, chunk i from Random(f"{seed}:{i}"), so the
same --seed gives the same packets whatever --jobs is. Prints packets/s, outcomes (answered by the fast
path, by the slow path, dropped; by rcode; by packet kind) and every contract violation with the packet's
hex (the first few of each kind); exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import multiprocessing
import os
import random
import struct
import sys
import time
import traceback

# This file is in bench/ beside dns.py: keep its folder off the import path so `import dns` is dnspython.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import dns.exception
import dns.message
import dns.rcode

from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.dns.fast import answer_fast
from gslb.dns.slow import answer_slow
from gslb.dns.table import AnswerTable
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator

CHUNK = 5000
EXAMPLES_PER_VIOLATION = 3
TYPES = [1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 43, 46, 48, 52, 64, 65, 99, 257, 255, 252, 251, 41, 0, 65535]
COMMON_TYPES = [1, 28, 1, 28, 2, 6, 16, 15, 33, 257, 5, 12]
CLIENTS = ["127.0.0.1", "::1", "193.0.0.1", "8.8.8.8", "203.0.113.7", "2001:db8::1", "2a00:1450::1",
           "1.1.1.1", "41.0.0.1"]
OPCODES = list(range(1, 16))


def build_table() -> AnswerTable:
    """The answer table of the bundled zones, regions and GeoIP database (no health: every endpoint up)."""
    regions = load_regions(os.path.join(REPO, "data", "regions.yaml"))
    zones = load_zones(os.path.join(REPO, "zones"), regions)
    mmdb = os.path.join(REPO, "data", "gslb-geo.mmdb")
    return AnswerTable(zones, HealthSnapshot(), SteeringData(regions), Locator(mmdb if os.path.exists(mmdb) else None))


def zone_names(table: AnswerTable) -> list[str]:
    """Every name of the zones, plus names that do not exist, match wildcards or are outside every zone."""
    names = sorted({n for zone in table.zones.values() for n in zone.names})
    origins = sorted(table.zones)
    extra = ["."]
    for origin in origins:
        extra += [f"nope.{origin}", f"a.b.c.{origin}", f"x.wild.{origin}", f"deep.x.wild.{origin}",
                  f"wild.{origin}", f"sub.www.{origin}", f"-_.{origin}", f"*.wild.{origin}"]
    extra += ["example.org.", "com.", "example.com.", "localhost.", "1.0.0.127.in-addr.arpa."]
    return names + extra


# --- building packets ---------------------------------------------------------------------------------

def encode_name(name: str, rng: random.Random) -> bytes:
    """Wire form of a name in random letter case (0x20)."""
    if name == ".":
        return b"\x00"
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = bytes(c ^ 0x20 if 97 <= c <= 122 and rng.random() < 0.5 else c for c in label.encode())
        out.append(len(raw))
        out += raw
    return bytes(out) + b"\x00"


def ecs_option(rng: random.Random) -> bytes:
    """A valid EDNS Client Subnet option (RFC 7871): random family, prefix and masked address."""
    if rng.random() < 0.6:
        family, width = 1, 32
        source = rng.choice([0, 8, 16, 20, 24, 24, 24, 25, 32, rng.randint(0, 32)])
    else:
        family, width = 2, 128
        source = rng.choice([0, 32, 48, 56, 56, 64, 128, rng.randint(0, 128)])
    value = rng.getrandbits(width) & (((1 << source) - 1) << (width - source))
    raw = value.to_bytes(width // 8, "big")[:(source + 7) // 8]
    body = struct.pack("!HBB", family, source, 0) + raw
    return struct.pack("!HH", 8, len(body)) + body


def other_option(rng: random.Random) -> bytes:
    code, data = rng.choice([(10, rng.randbytes(8)), (10, rng.randbytes(24)), (3, b""), (12, bytes(rng.randint(0, 40))),
                             (11, b""), (rng.randint(0, 65535), bytes(rng.randint(0, 12)))])
    return struct.pack("!HH", code, len(data)) + data


def opt_rr(rng: random.Random, version: int = 0, options: bytes | None = None, owner: bytes = b"\x00") -> bytes:
    payload = rng.choice([512, 1232, 1232, 4096, 0, 511, 1400, 65535, rng.randint(0, 65535)])
    if options is None:
        parts = []
        if rng.random() < 0.5:
            parts.append(ecs_option(rng))
        while rng.random() < 0.25:
            parts.append(other_option(rng))
        rng.shuffle(parts)
        options = b"".join(parts)
    flags = (0x8000 if rng.random() < 0.4 else 0) | (rng.getrandbits(15) if rng.random() < 0.05 else 0)
    ext_rcode = rng.randint(1, 255) if rng.random() < 0.03 else 0
    return owner + struct.pack("!HHBBHH", 41, payload, ext_rcode, version, flags, len(options)) + options


def valid_query(rng: random.Random, names: list[str]) -> bytes:
    """A well-formed query: one question, maybe one OPT, random ID and flags, random letter case."""
    name = rng.choice(names)
    roll = rng.random()
    qtype = rng.choice(COMMON_TYPES) if roll < 0.7 else rng.choice(TYPES) if roll < 0.95 else rng.randint(0, 65535)
    qclass = 1 if rng.random() < 0.95 else rng.choice([3, 4, 254, 255, rng.randint(0, 65535)])
    flags = (0x0100 if rng.random() < 0.5 else 0) | (0x0010 if rng.random() < 0.2 else 0) \
        | (0x0020 if rng.random() < 0.2 else 0)
    if rng.random() < 0.05:
        flags |= rng.choice([0x0040, 0x0200, 0x0400, 0x0080])      # Z, TC, AA or RA set in a query
    roll = rng.random()
    opt = b""
    if roll < 0.65:
        opt = opt_rr(rng)
    elif roll < 0.70:
        opt = opt_rr(rng, version=rng.randint(1, 255))
    header = struct.pack("!HHHHHH", rng.getrandbits(16), flags, 1, 0, 0, 1 if opt else 0)
    return header + encode_name(name, rng) + struct.pack("!HH", qtype, qclass) + opt


def question_span(data: bytes) -> tuple[int, int]:
    """Offsets of the question name (start, end after the root byte) of a packet we built."""
    pos = 12
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return 12, min(pos + 1, len(data))


def label_offsets(data: bytes) -> list[int]:
    start, end = question_span(data)
    out, pos = [], start
    while pos < end - 1:
        out.append(pos)
        pos += data[pos] + 1
    return out


def set_count(data: bytearray, index: int, value: int) -> None:
    struct.pack_into("!H", data, 4 + 2 * index, value)


def long_name(rng: random.Random, origin: str) -> bytes:
    """A name at, just over, or far over 255 octets; or a label of 63/64+ bytes (encoded as given)."""
    target = rng.choice([254, 255, 256, 257, 300, 1000, rng.randint(240, 600)])
    suffix = encode_name(origin, rng)
    out = bytearray()
    while len(out) + len(suffix) < target:
        n = min(63, max(1, target - len(out) - len(suffix) - 1), rng.choice([1, 10, 63]))
        out.append(n)
        out += bytes(rng.choice(b"abcdefghij") for _ in range(n))
    if rng.random() < 0.2:
        out = bytearray([64]) + bytes(64) + out    # a 64-byte label: its length byte is 0x40
    return bytes(out) + suffix


def mutate(rng: random.Random, names: list[str], origins: list[str]) -> tuple[str, bytes]:
    """A kind name and a mutated packet."""
    base = bytearray(valid_query(rng, names))
    kind = rng.choice(MUTATIONS)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            bit = rng.randrange(len(base) * 8)
            base[bit // 8] ^= 1 << (bit % 8)
    elif kind == "byteset":
        for _ in range(rng.randint(1, 6)):
            base[rng.randrange(len(base))] = rng.getrandbits(8)
    elif kind == "truncate":
        base = base[:rng.randrange(len(base))]
    elif kind == "insert":
        pos = rng.randint(0, len(base))
        base[pos:pos] = rng.randbytes(rng.randint(1, 20))
    elif kind == "delete":
        pos = rng.randrange(len(base))
        del base[pos:pos + rng.randint(1, 10)]
    elif kind == "append":
        base += rng.randbytes(rng.randint(1, 40))
    elif kind == "labellen":
        offsets = label_offsets(base)
        if offsets:
            base[rng.choice(offsets)] = rng.choice([0, 63, 64, rng.randint(0, 255), rng.randint(0x40, 0xBF),
                                                    rng.randint(0xC0, 0xFF)])
    elif kind == "pointer":
        offsets = label_offsets(base) or [12]
        at = rng.choice(offsets)
        _, end = question_span(base)
        target = rng.choice([12, at, at + 1, 0, 2, end, rng.randint(0, 0x3FFF), rng.randint(0, len(base) + 4)])
        pointer = struct.pack("!H", 0xC000 | target)
        base[at:end] = pointer if rng.random() < 0.7 else pointer + b"\x00"
    elif kind == "extlabel":
        offsets = label_offsets(base) or [12]
        at = rng.choice(offsets)
        n = rng.randint(0x40, 0xBF)
        filler = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 3, n & 0x3F, n])))
        base[at:at] = bytes([n]) + filler
    elif kind == "longname":
        start, end = question_span(base)
        base[start:end] = long_name(rng, rng.choice(origins))
    elif kind == "opcode":
        base[2] = (base[2] & 0x87) | (rng.choice(OPCODES) << 3)
        if rng.random() < 0.3:
            base = base[:12]
    elif kind == "header":
        base = bytearray(struct.pack("!HHHHHH", rng.getrandbits(16), rng.getrandbits(16) & (0x7FFF if rng.random() < 0.8 else 0xFFFF),
                                     rng.choice([0, 1, 2, 65535]), rng.choice([0, 0, 1]), rng.choice([0, 0, 1]),
                                     rng.choice([0, 0, 1, 2])))
        if rng.random() < 0.3:
            base = base[:rng.randint(0, 12)]
    elif kind == "multiopt":
        opts = base[11] + rng.randint(1, 3)                 # ARCOUNT low byte: 0 or 1 OPT already there
        for _ in range(opts - base[11]):
            base += opt_rr(rng, version=rng.choice([0, 0, 1]))
        set_count(base, 3, opts)
    elif kind == "optowner":
        start, end = question_span(base)
        if base[11]:
            opt_at = end + 4
            base = base[:opt_at] + opt_rr(rng, owner=rng.choice([b"\xc0\x0c", b"\x01a\x00", b"\x01\x00"]))
        else:
            base += opt_rr(rng, owner=b"\xc0\x0c")
            set_count(base, 3, 1)
    elif kind == "ecsbad":
        family = rng.choice([1, 2, 0, 3, 65535])
        source = rng.choice([0, 24, 33, 129, 255])
        scope = rng.choice([0, 0, 1, 24])
        raw = rng.randbytes(rng.choice([0, 1, 3, 4, 16, 17, (source + 7) // 8]))
        body = struct.pack("!HBB", family, source, scope) + raw if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 3))
        option = struct.pack("!HH", 8, len(body)) + body
        if rng.random() < 0.3:
            option += ecs_option(rng)                       # two ECS options
        start, end = question_span(base)
        base = base[:end + 4] + opt_rr(rng, options=option)
        set_count(base, 3, 1)
    elif kind == "optlen":
        start, end = question_span(base)
        base = base[:end + 4] + opt_rr(rng)
        set_count(base, 3, 1)
        rdlen_at = end + 4 + 9
        if rdlen_at + 2 <= len(base):
            struct.pack_into("!H", base, rdlen_at, rng.choice([0, 1, 3, 4, 5, 65535, rng.getrandbits(16)]))
        if len(base) > rdlen_at + 6 and rng.random() < 0.5:
            struct.pack_into("!H", base, rdlen_at + 4, rng.getrandbits(16))     # first option's length
    elif kind == "sections":
        start, end = question_span(base)
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + rng.randbytes(4)
        if rng.random() < 0.3:
            rr = rr[:rng.randrange(len(rr))]
        which = rng.choice([1, 2])
        base = base[:end + 4] + rr + base[end + 4:]
        set_count(base, which, rng.choice([1, 1, 2, 65535]))
    elif kind == "qdcount":
        start, end = question_span(base)
        count = rng.choice([0, 2, 3, 65535])
        set_count(base, 0, count)
        if count == 2 and rng.random() < 0.7:
            base = base[:end + 4] + base[start:end + 4] + base[end + 4:]
    elif kind == "qr":
        base[2] |= 0x80
    elif kind == "splice":
        other = valid_query(rng, names)
        base = base[:rng.randint(0, len(base))] + other[rng.randint(0, len(other)):]
    elif kind == "random":
        base = bytearray(rng.randbytes(rng.choice([0, 1, 11, 12, 13, 17, rng.randint(0, 600)])))
    return kind, bytes(base)


MUTATIONS = ["bitflip", "bitflip", "byteset", "byteset", "truncate", "insert", "delete", "append", "labellen",
             "pointer", "extlabel", "longname", "opcode", "header", "multiopt", "optowner", "ecsbad", "optlen",
             "sections", "qdcount", "qr", "splice", "random"]


# --- checking -----------------------------------------------------------------------------------------

class Violation(Exception):
    """A broken contract; `what` is the short kind used to group them."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


def where(exc: BaseException) -> str:
    """The innermost frame of a traceback inside gslb (or the last frame), for grouping."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/gslb/" in f.filename] or frames
    f = ours[-1]
    return f"{type(exc).__name__} at {os.path.relpath(f.filename, REPO)}:{f.lineno} ({f.name})"


def call(path, table, data: bytes, client: str, tcp: bool, pick_seed: int) -> bytes | None:
    random.seed(pick_seed)
    try:
        return path(table, data, client, tcp)
    except Exception as exc:
        raise Violation(f"{path.__name__} raised {where(exc)}", f"{type(exc).__name__}: {str(exc)[:200]}") from exc


def query_view(data: bytes):
    """The query as dnspython reads it, or None."""
    try:
        return dns.message.from_wire(data, ignore_trailing=False)
    except Exception:  # noqa: BLE001 -- dnspython raises many types on junk
        return None


def check_response(data: bytes, out: bytes, tcp: bool, valid: bool) -> None:
    if len(out) < 12:
        raise Violation("response shorter than a header", f"{len(out)} bytes")
    qid, qflags = struct.unpack_from("!HH", data) if len(data) >= 4 else (None, None)
    rid, rflags, rqd = struct.unpack_from("!HHH", out)
    if qid is not None and rid != qid:
        raise Violation("ID not echoed", f"query {qid} response {rid}")
    if not rflags & 0x8000:
        raise Violation("QR not set in a response", f"flags {rflags:#06x}")
    opcode = (rflags >> 11) & 0xF
    if qflags is not None and opcode != (qflags >> 11) & 0xF:
        raise Violation("opcode not echoed", f"query {(qflags >> 11) & 0xF} response {opcode}")
    rcode = rflags & 0xF
    if valid and rcode == dns.rcode.SERVFAIL:
        raise Violation("SERVFAIL for a well-formed query", "")
    q = query_view(data)
    if not tcp:
        limit = 512
        if q is not None and q.edns >= 0:
            limit = max(512, min(q.payload, 1232))
        if len(out) > limit:
            raise Violation("UDP response larger than allowed", f"{len(out)} > {limit}")
    if opcode == 5:
        return          # UPDATE: dnspython reads its sections with rules of their own
    try:
        r = dns.message.from_wire(out, ignore_trailing=False)
    except Exception as exc:  # noqa: BLE001
        raise Violation("response not parsed by dnspython", f"{type(exc).__name__}: {exc}") from None
    if rqd and q is not None and q.question:
        mine, theirs = r.question[0], q.question[0]
        if (mine.name.labels, mine.rdtype, mine.rdclass) != (theirs.name.labels, theirs.rdtype, theirs.rdclass):
            raise Violation("question not echoed", f"query {theirs} response {mine}")


def rcode_name(out: bytes | None) -> str:
    return "drops" if out is None else dns.rcode.to_text(out[3] & 0xF) if len(out) >= 4 else f"{len(out)} bytes"


def check_packet(table, data: bytes, client: str, tcp: bool, valid: bool, pick_seed: int) -> tuple[str, int]:
    """Run both paths and check the contract; returns (path or 'dropped', rcode or -1)."""
    fast = call(answer_fast, table, data, client, tcp, pick_seed)
    slow = call(answer_slow, table, data, client, tcp, pick_seed)
    if fast is not None and fast != slow:
        raise Violation(f"fast path answers {rcode_name(fast)}, the slow path {rcode_name(slow)}"
                        + (" (same rcode, other bytes)" if rcode_name(fast) == rcode_name(slow) else ""),
                        f"fast {fast.hex()} slow {slow.hex() if slow is not None else None}")
    if slow is None:
        if len(data) >= 12 and not data[2] & 0x80:
            raise Violation("slow path dropped a query with a header and QR clear", "")
        return "dropped", -1
    check_response(data, slow, tcp, valid)
    rcode = slow[3] & 0xF
    if len(slow) >= 12 and struct.unpack_from("!H", slow, 10)[0]:
        r = query_view(slow)
        if r is not None:
            rcode = r.rcode()            # extended rcode (BADVERS) from the OPT
    return ("fast" if fast is not None else "slow"), rcode


# --- running ------------------------------------------------------------------------------------------

_TABLE = None
_NAMES: list[str] = []
_ORIGINS: list[str] = []


def _init_worker() -> None:
    global _TABLE, _NAMES, _ORIGINS
    _TABLE = build_table()
    _NAMES = zone_names(_TABLE)
    _ORIGINS = sorted(_TABLE.zones)


def run_chunk(job: tuple[int, int, int]) -> dict:
    seed, chunk, count = job
    rng = random.Random(f"{seed}:{chunk}")
    outcomes: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    violations: dict[str, list] = {}
    counts: collections.Counter = collections.Counter()
    for k in range(count):
        valid = rng.random() < 0.35
        if valid:
            kind, data = "valid", valid_query(rng, _NAMES)
        else:
            kind, data = mutate(rng, _NAMES, _ORIGINS)
        tcp = rng.random() < 0.2
        client = rng.choice(CLIENTS)
        pick_seed = (seed << 40) | (chunk << 16) | k
        try:
            path, rcode = check_packet(_TABLE, data, client, tcp, valid, pick_seed)
        except Violation as v:
            counts[v.what] += 1
            examples = violations.setdefault(v.what, [])
            if len(examples) < EXAMPLES_PER_VIOLATION:
                examples.append({"kind": kind, "hex": data.hex(), "tcp": tcp, "client": client, "detail": v.detail,
                                 "chunk": chunk, "index": k})
            outcomes["violation"] += 1
            kinds[kind] += 1
            continue
        outcomes[path] += 1
        if rcode >= 0:
            outcomes[f"rcode {dns.rcode.to_text(rcode)}"] += 1
        kinds[kind] += 1
    return {"outcomes": outcomes, "kinds": kinds, "violations": violations, "counts": counts, "n": count}


def replay(hexdata: str, tcp: bool, client: str) -> int:
    """Run one packet through both paths and show what each did."""
    table = build_table()
    data = bytes.fromhex(hexdata)
    print(f"{len(data)} bytes, {'TCP' if tcp else 'UDP'} from {client}")
    q = query_view(data)
    print("dnspython reads the query as:" if q is not None else "dnspython cannot read the query")
    if q is not None:
        print("  " + str(q).replace("\n", "\n  "))
    results = {}
    for path in (answer_fast, answer_slow):
        random.seed(0)
        try:
            results[path.__name__] = out = path(table, data, client, tcp)
            print(f"{path.__name__}: {out.hex() if out is not None else None}")
        except Exception:  # noqa: BLE001
            print(f"{path.__name__} raised:")
            traceback.print_exc(file=sys.stdout)
    try:
        check_packet(table, data, client, tcp, False, 0)
        print("contract: ok")
        return 0
    except Violation as v:
        print(f"contract: VIOLATED: {v}")
        return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000, help="packets (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed (default 1): same seed, same packets")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    parser.add_argument("--replay", metavar="HEX", help="run one packet (hex) and show both paths' answers")
    parser.add_argument("--tcp", action="store_true", help="with --replay: as if over TCP")
    parser.add_argument("--client", default="127.0.0.1", help="with --replay: the client address")
    args = parser.parse_args()
    if args.replay:
        ipaddress.ip_address(args.client)
        return replay(args.replay, args.tcp, args.client)
    if args.count < 1 or args.jobs < 1:
        parser.error("--count and --jobs must be at least 1")
    jobs = [(args.seed, i, min(CHUNK, args.count - i * CHUNK)) for i in range((args.count + CHUNK - 1) // CHUNK)]
    outcomes: collections.Counter = collections.Counter()
    kinds: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    violations: dict[str, list] = {}
    done = 0
    start = last = time.monotonic()
    print(f"fuzzing {args.count:,} packets, seed {args.seed}, {args.jobs} process(es), chunks of {CHUNK}", flush=True)
    with multiprocessing.get_context("fork").Pool(args.jobs, initializer=_init_worker) as pool:
        for result in pool.imap_unordered(run_chunk, jobs):
            done += result["n"]
            outcomes.update(result["outcomes"])
            kinds.update(result["kinds"])
            counts.update(result["counts"])
            for what, examples in result["violations"].items():
                mine = violations.setdefault(what, [])
                mine.extend(examples[:EXAMPLES_PER_VIOLATION - len(mine)])
            now = time.monotonic()
            if now - last >= 10 or done == args.count:
                last = now
                print(f"  {done:>10,} packets  {done / (now - start):>8,.0f} packets/s  "
                      f"violations {sum(counts.values()):,}", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n{done:,} packets in {elapsed:.1f} s: {done / elapsed:,.0f} packets/s "
          f"({args.jobs} process(es); each packet runs through both paths and is checked)")
    print("outcomes:")
    for key in ("fast", "slow", "dropped", "violation"):
        print(f"  {key + (' (answered by the fast path)' if key == 'fast' else ' (answered by the slow path)' if key == 'slow' else ''):<36} {outcomes[key]:>10,}")
    print("responses by rcode (the served answer):")
    for key, value in sorted(((k, v) for k, v in outcomes.items() if k.startswith("rcode ")), key=lambda kv: -kv[1]):
        print(f"  {key[6:]:<36} {value:>10,}")
    print("packets by kind:")
    for key, value in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {key:<36} {value:>10,}")
    if not counts:
        print("contract held for every packet: no violation")
        return 0
    print(f"\nCONTRACT VIOLATIONS: {sum(counts.values()):,}")
    for what, n in counts.most_common():
        print(f"  {n:>8,}  {what}")
        for ex in violations[what]:
            print(f"            [{ex['kind']}, chunk {ex['chunk']} #{ex['index']}, {'tcp' if ex['tcp'] else 'udp'} "
                  f"from {ex['client']}] {ex['detail'][:300]}")
            print(f"            replay: python bench/fuzz.py --replay {ex['hex']}"
                  f"{' --tcp' if ex['tcp'] else ''} --client {ex['client']}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
