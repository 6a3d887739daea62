"""Parse the server config's `limits:` mapping (docs/server.md, "Limits") into `ZoneLimits`."""

from __future__ import annotations

import dataclasses
from typing import Any

from gslb.config.model import ZoneLimits
from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import Problem

LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(ZoneLimits))
_MAXIMUM = 2**53


def parse_limits(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> ZoneLimits:
    """`ZoneLimits` from YAML (None: the defaults). Problems are appended with file:line, not raised."""
    if src is None:
        return ZoneLimits()
    file, line = where
    if not isinstance(src, SourceMap):
        problems.append(Problem(file, line, "limits: expected a mapping like {zone_bytes: 100000000, "
                                            "zone_names: 2000000}"))
        return ZoneLimits()
    values: dict[str, int] = {}
    for key, value in src.items():
        if key not in LIMIT_KEYS:
            problems.append(Problem(file, src.line_of(key),
                                    f"limits: unknown key {short(key)} (known: {', '.join(LIMIT_KEYS)})"))
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAXIMUM:
            problems.append(Problem(file, src.line_of(key),
                                    f"limits: {key}: {short(value)}, expected a whole number (0: no limit)"))
        else:
            values[key] = value
    return ZoneLimits(**values)
