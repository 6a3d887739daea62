#!/usr/bin/env python3
"""Write a big generated zone file for reload benchmarks and tests.

    python bench/zonegen.py FILE [--names 100000] [--pools 1000]

`hN` (N = 1..names) are owner names: one in ten (h10, h20, ...) is answered by pool `pN % pools`, the
others have a static A record. Each pool has two sites of two endpoints, `check: null`.
About 50 bytes a name, so 1,000,000 names make a 50 MB file.
"""

from __future__ import annotations

import argparse
import sys

ORIGIN = "big.gslb.test"


def zone_lines(names: int, pools: int):
    """The zone file's lines (each ending with a newline)."""
    yield f"origin: {ORIGIN}.\n"
    yield f"soa: {{mname: ns1.{ORIGIN}., rname: hostmaster.{ORIGIN}.}}\n"
    yield "pools:\n"
    for p in range(pools):
        a, b = divmod(p, 250)
        yield (f"  p{p}: {{policy: latency, check: null, sites: {{"
               f"us: {{lat: 38.9, lon: -77.4, endpoints: [10.{a}.{b}.1, 10.{a}.{b}.2]}}, "
               f"eu: {{lat: 53.3, lon: -6.3, endpoints: [10.{a}.{b}.3, 10.{a}.{b}.4]}}}}}}\n")
    yield "records:\n"
    yield '  "@": {NS: [ns1]}\n'
    yield "  ns1: {A: 192.0.2.53}\n"
    for n in range(1, names + 1):
        if n % 10 == 0 and pools:
            yield f"  h{n}: {{pool: p{n // 10 % pools}}}\n"
        else:
            yield f"  h{n}: {{A: 10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}, TXT: \"name {n}\"}}\n"


def write_zone(path: str, names: int, pools: int) -> int:
    """Write the zone to `path`; returns its size in bytes."""
    size = 0
    with open(path, "w") as fh:
        for line in zone_lines(names, pools):
            size += fh.write(line)
    return size


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--pools", type=int, default=1_000)
    args = ap.parse_args()
    print(f"{write_zone(args.file, args.names, args.pools)} bytes")
    sys.exit(0)
