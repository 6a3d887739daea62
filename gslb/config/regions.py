"""Named regions (data/regions.yaml): where cloud regions and prober regions are on the globe."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gslb.config.yamlsrc import SourceMap, load_yaml_file, short
from gslb.errors import ConfigError, Problem


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    lat: float
    lon: float
    continent: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Regions:
    """Region name -> Region, as read from a regions.yaml.

    `missing` is the path tried when the file does not exist: zones that look a region up then get one
    error naming that path (the data directory is wrong) instead of one per site.
    """

    by_name: Mapping[str, Region]
    missing: str | None = None

    @classmethod
    def empty(cls) -> Regions:
        return cls(MappingProxyType({}))

    def get(self, name: str) -> Region | None:
        return self.by_name.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name


def load_regions(path: str) -> Regions:
    """Read a regions.yaml (`regions: {name: {lat, lon, continent, country}}`); a missing file is empty,
    marked `missing` (only a zone that needs a region from it is an error, see `missing_problem`).

    :raises ConfigError: on a malformed file, with file:line.
    """
    if not os.path.exists(path):
        return Regions(MappingProxyType({}), missing=path)
    src = load_yaml_file(path)
    table = src.get("regions") if isinstance(src, SourceMap) else None
    if not isinstance(table, SourceMap):
        raise ConfigError([Problem(path, 1, "expected a mapping `regions: {name: {lat, lon}}`")])
    problems, out = [], {}
    for name, item in table.items():
        line = table.line_of(name)
        if not isinstance(item, dict):
            problems.append(Problem(path, line, f"region {short(name)}: expected {{lat, lon}}"))
            continue
        lat, lon = item.get("lat"), item.get("lon")
        if not isinstance(lat, (int, float)) or not isinstance(lon, (int, float)) \
                or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            problems.append(Problem(path, line, f"region {short(name)}: lat/lon missing or out of range"))
            continue
        out[str(name)] = Region(str(name), float(lat), float(lon), item.get("continent"), item.get("country"))
    if problems:
        raise ConfigError(problems)
    return Regions(MappingProxyType(out))


def missing_problem(regions: Regions) -> Problem:
    """The one error for zones whose sites name regions when regions.yaml is not where it was looked for.
    Always the same text, so the loaders can report it once however many sites and files hit it."""
    path = regions.missing or "regions.yaml"
    folder = os.path.dirname(os.path.abspath(path))
    where = f"the data directory {folder} does not exist" if not os.path.isdir(folder) \
        else f"{os.path.abspath(path)}: no such file"
    return Problem(path, 0, f"cannot look up the regions the latency pools name: {where} (run from the "
                            f"directory that holds data/, or give --data DIR, or `data:` or `regions:` in the "
                            f"server config)")
