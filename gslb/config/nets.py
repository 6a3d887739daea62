"""CIDR rules of a geo pool (`net:10.0.0.0/8` keys of `geo:`), as a table built once at load.

The address space of each family is cut into CIDR blocks such that every address of a block matches the
same rule (the most specific net that holds it, or none). A query costs one bisect over integers, and the
block's prefix length is the ECS scope the match holds for: never wider than the matched network, and
narrow enough not to cover a more specific rule inside it (docs/steering.md, "CIDR rules").
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

BITS = {4: 32, 6: 128}
NO_RULE = -1


@dataclass(frozen=True, slots=True)
class NetMatch:
    """Where a client address falls: `block` identifies its CIDR block (the same block, the same match),
    `rule` is the matched `net:` key or None, `scope` the block's prefix length."""

    block: tuple[int, int]
    rule: str | None
    scope: int


@dataclass(frozen=True, slots=True)
class _Family:
    starts: tuple[int, ...]       # first address of each block, ascending; the blocks cover the space
    prefixes: tuple[int, ...]     # each block's prefix length
    rules: tuple[int, ...]        # each block's rule (index into NetTable.keys) or NO_RULE


@dataclass(frozen=True, slots=True)
class NetTable:
    """The `net:` rules of one pool; `match` finds an address's rule with integers only."""

    keys: tuple[str, ...]
    families: tuple[tuple[int, _Family], ...]

    def match(self, version: int, address: int) -> NetMatch:
        """The rule for an address (`version` 4 or 6, `address` as an integer) and the block it is in."""
        for v, fam in self.families:
            if v == version:
                i = bisect.bisect_right(fam.starts, address) - 1
                rule = fam.rules[i]
                return NetMatch((version, i), None if rule == NO_RULE else self.keys[rule], fam.prefixes[i])
        return NetMatch((version, -1), None, 0)


def _blocks(lo: int, hi: int, bits: int) -> list[tuple[int, int]]:
    """The fewest CIDR blocks (start, prefix length) exactly covering the addresses lo..hi."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits          # the largest block aligned at lo ...
        while size > hi - lo + 1:                     # ... that does not run past hi
            size >>= 1
        out.append((lo, bits - size.bit_length() + 1))
        lo += size
    return out


def _family_table(nets: list[tuple[int, int, int]], bits: int) -> _Family:
    """nets: (start, prefix length, rule index), no two alike. CIDR nets are nested or disjoint, so a sweep
    with a stack of the nets open at each boundary finds the most specific one (the top)."""
    top = (1 << bits) - 1
    spans = sorted((start, start + (1 << (bits - plen)) - 1, plen, rule) for start, plen, rule in nets)
    spans.sort(key=lambda s: (s[0], s[2]))            # outer net first where two start together
    cuts = sorted({0} | {s[0] for s in spans} | {s[1] + 1 for s in spans if s[1] < top})
    intervals: list[list[int]] = []                   # [lo, hi, rule], neighbours with one rule merged
    stack: list[tuple[int, int, int, int]] = []
    j = 0
    for k, cut in enumerate(cuts):
        while stack and stack[-1][1] < cut:
            stack.pop()
        while j < len(spans) and spans[j][0] == cut:
            stack.append(spans[j])
            j += 1
        rule = stack[-1][3] if stack else NO_RULE
        hi = cuts[k + 1] - 1 if k + 1 < len(cuts) else top
        if intervals and intervals[-1][2] == rule:
            intervals[-1][1] = hi
        else:
            intervals.append([cut, hi, rule])
    starts, prefixes, rules = [], [], []
    for lo, hi, rule in intervals:
        for start, plen in _blocks(lo, hi, bits):
            starts.append(start)
            prefixes.append(plen)
            rules.append(rule)
    return _Family(tuple(starts), tuple(prefixes), tuple(rules))


def build_net_table(rules: list[tuple[str, int, int, int]]) -> NetTable | None:
    """The table of a pool's rules: (key, version, network address as an integer, prefix length), no
    network listed twice (the zone loader checks). None when the pool has no `net:` rule."""
    if not rules:
        return None
    keys = tuple(r[0] for r in rules)
    families = []
    for version in (4, 6):
        nets = [(start, plen, i) for i, (_, v, start, plen) in enumerate(rules) if v == version]
        if nets:
            families.append((version, _family_table(nets, BITS[version])))
    return NetTable(keys, tuple(families))
