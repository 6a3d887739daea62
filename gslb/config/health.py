"""The `health:` section of the server config (docs/health-checks.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gslb.config.kit import NAMED, Choice, Custom, Either, Flag, Int, Invalid, Seconds, Text, mapping_of
from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import Problem

_REGION = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The name the embedded prober reports under when `region` is not set. Such a prober is a stand-in: it
# counts in the quorum only while no named region is live (docs/health-checks.md, "Quorum").
UNNAMED_REGION = "local"


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How this server checks endpoints and combines the views of prober regions."""

    region: str | None = None         # this node's region: the embedded prober's (in regions.yaml for latency)
    embedded: bool = True             # run a prober inside `gslb serve`
    quorum: str | int = "majority"    # regions that must see a target down: majority | any | all | N
    secret: str | None = None         # shared key that signs prober reports only ($GSLB_SECRET); api.token writes
    state_dir: str | None = "state"   # where health.json is kept across restarts ("" or null: not kept)
    state_max_age: float = 300.0      # a saved state older than this is ignored at start
    grace: float = 30.0               # with no live prober left, keep the last state this long, then fail open
    report_interval: float = 1.0      # how often probers report (a region is dropped after 3 missed)
    # region -> key: a region listed here is believed only when its report is signed with its own key,
    # so a prober's key cannot speak for another region. Others sign with `secret`.
    region_keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def embedded_region(self) -> str:
        """The name the embedded prober reports under: `region`, or UNNAMED_REGION when none is set."""
        return self.region or UNNAMED_REGION

    @property
    def standby_region(self) -> str | None:
        """The region that counts only while no other is live: the embedded prober's when it is unnamed."""
        return UNNAMED_REGION if self.embedded and self.region is None else None

    def needed(self, regions: int) -> int:
        """How many of `regions` reporting regions must see a target down to withdraw it."""
        if regions <= 0:
            return 1
        if self.quorum == "majority":
            return regions // 2 + 1
        if self.quorum == "any":
            return 1
        if self.quorum == "all":
            return regions
        return min(int(self.quorum), regions)


def _state_dir(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise Invalid
    return value


def _region_keys(value: Any) -> Mapping[str, str]:
    """`region_keys:` a mapping of region name to a key of at least 16 characters."""
    if not isinstance(value, Mapping):
        raise Invalid("expected a mapping of region name to key, e.g. {eu-west-1: KEY}")
    for region, key in value.items():
        line = value.line_of(region) if isinstance(value, SourceMap) else None
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise Invalid(f"region name {short(region, 40)}: letters, digits, '.', '_' or '-', up to 64", line)
        if not isinstance(key, str) or len(key) < 16:
            raise Invalid(f"{region}: expected a key of at least 16 characters", line)
    return MappingProxyType(dict(value))


_SECONDS = Seconds(0)
# Listed in the order messages name them (alphabetical).
HEALTH_FIELDS = {
    "embedded": Flag(),
    "grace": _SECONDS,
    "quorum": Either(Choice(("majority", "any", "all")), Int(1),
                     expected="majority, any, all or a number of regions >= 1"),
    "region": Text(),
    "region_keys": Custom("a mapping of region name to key (16 characters or more)",
                          {"type": "object", "propertyNames": {"pattern": _REGION.pattern},
                           "additionalProperties": {"type": "string", "minLength": 16}}, _region_keys, secret=True),
    "report_interval": Seconds(0.1),
    "secret": Text(secret=True),
    "state_dir": Custom("a directory, or null for none", {"type": ["string", "null"]}, _state_dir),
    "state_max_age": _SECONDS,
}


def parse_health_settings(src: SourceMap | None, problems: list[Problem],
                          where: tuple[str, int] = ("?", 0)) -> HealthSettings:
    """Build HealthSettings from the `health:` mapping (None: defaults); problems are appended.

    `where` (file, line) places a `health:` that is not a mapping. A relative `state_dir` is taken
    from the config file's folder, like the server config's other paths.
    """
    secret = os.environ.get("GSLB_SECRET") or None
    section = mapping_of(src, problems, where, "health", "a mapping", label="health ", unknown=NAMED)
    if section is None:
        return HealthSettings(secret=secret)
    values = {"secret": secret} | section.read(HEALTH_FIELDS)
    if values.get("state_dir") and src.file != "?":
        values["state_dir"] = os.path.join(os.path.dirname(os.path.abspath(src.file)), values["state_dir"])
    return HealthSettings(**values)
