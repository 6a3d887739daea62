"""Parse the server config's `limits:` mapping (docs/server.md, "Limits") into `ZoneLimits`."""

from __future__ import annotations

import dataclasses
from typing import Any

from gslb.config.kit import Int, mapping_of
from gslb.config.model import ZoneLimits
from gslb.errors import Problem

LIMIT_FIELDS = {f.name: Int(0, 2**53, "a whole number (0: no limit)") for f in dataclasses.fields(ZoneLimits)}


def parse_limits(src: Any, problems: list[Problem], where: tuple[str, int] = ("?", 0)) -> ZoneLimits:
    """`ZoneLimits` from YAML (None: the defaults). Problems are appended with file:line, not raised."""
    section = mapping_of(src, problems, where, "limits",
                         "a mapping like {zone_bytes: 100000000, zone_names: 2000000}", label="limits: ")
    return ZoneLimits() if section is None else ZoneLimits(**section.read(LIMIT_FIELDS))
