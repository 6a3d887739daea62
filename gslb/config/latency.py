"""The operator's latency table (data/latency.yaml): client subdivision, country or continent -> region -> ms."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gslb.config.yamlsrc import SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem


@dataclass(frozen=True, slots=True)
class LatencyTable:
    """Operator-supplied RTTs: client country or continent -> region -> ms (data/latency.yaml)."""

    rows: Mapping[str, Mapping[str, float]]

    @classmethod
    def empty(cls) -> LatencyTable:
        return cls(MappingProxyType({}))

    def lookup(self, client_keys: Iterable[str | None], region: str | None) -> tuple[float, str] | None:
        """The ms from the most specific client key (subdivision, country, continent) to a region, and the key."""
        if region is None:
            return None
        for key in client_keys:
            if key and key in self.rows and region in self.rows[key]:
                return self.rows[key][region], key
        return None


def load_latency_table(path: str) -> LatencyTable:
    """Read `latency: {EU: {eu-west-1: 15, us-east-1: 85}, DE: {...}}`; a missing file is an empty table.

    :raises ConfigError: on a malformed file, with file:line.
    """
    if not os.path.exists(path):
        return LatencyTable.empty()
    src = load_yaml_file(path)
    table = src.get("latency") if isinstance(src, SourceMap) else None
    if not isinstance(table, SourceMap):
        raise ConfigError([Problem(path, 1, "expected `latency: {CLIENT: {REGION: ms}}`")])
    rows, problems = {}, []
    for client, regions in table.items():
        if not isinstance(regions, SourceMap):
            problems.append(Problem(path, table.line_of(client), f"{client}: expected {{region: ms}}"))
            continue
        row = {}
        for region, ms in regions.items():
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
                problems.append(Problem(path, regions.line_of(region), f"{client} {region}: {short(ms)} is not ms >= 0"))
            else:
                row[str(region)] = float(ms)
        rows[str(client)] = MappingProxyType(row)
    if problems:
        raise ConfigError(problems)
    return LatencyTable(MappingProxyType(rows))
