"""The `health:` section of the server config (docs/health-checks.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import Problem

HEALTH_KEYS = {"region", "embedded", "quorum", "secret", "state_dir", "state_max_age", "grace",
               "report_interval", "region_keys"}
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
    secret: str | None = None         # shared secret for prober reports and overrides ($GSLB_SECRET)
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


def parse_health_settings(src: SourceMap | None, problems: list[Problem],
                          where: tuple[str, int] = ("?", 0)) -> HealthSettings:
    """Build HealthSettings from the `health:` mapping (None: defaults); problems are appended.

    `where` (file, line) places a `health:` that is not a mapping. A relative `state_dir` is taken
    from the config file's folder, like the server config's other paths.
    """
    secret = os.environ.get("GSLB_SECRET") or None
    if src is None:
        return HealthSettings(secret=secret)
    if not isinstance(src, SourceMap):
        problems.append(Problem(*where, f"health: {short(src)}, expected a mapping"))
        return HealthSettings(secret=secret)
    values: dict[str, Any] = {"secret": secret}

    def bad(key: str, what: str) -> None:
        problems.append(Problem(src.file, src.line_of(key), f"health {key}: {what}"))

    for key, value in src.items():
        if key not in HEALTH_KEYS:
            bad(key, f"unknown key (known: {', '.join(sorted(HEALTH_KEYS))})")
        elif key == "embedded":
            if not isinstance(value, bool):
                bad(key, "expected true or false")
            else:
                values[key] = value
        elif key == "quorum":
            if value in ("majority", "any", "all") or (isinstance(value, int) and not isinstance(value, bool)
                                                        and value >= 1):
                values[key] = value
            else:
                bad(key, f"{short(value)}, expected majority, any, all or a number of regions >= 1")
        elif key in ("state_max_age", "grace", "report_interval"):
            lo = 0.1 if key == "report_interval" else 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lo:
                bad(key, f"{short(value)}, expected seconds >= {lo}")
            else:
                values[key] = float(value)
        elif key == "region_keys":
            keys = _region_keys(value, bad)
            if keys is not None:
                values[key] = keys
        elif key == "state_dir" and value in (None, ""):
            values[key] = None
        elif key == "state_dir" and isinstance(value, str) and src.file != "?":
            values[key] = os.path.join(os.path.dirname(os.path.abspath(src.file)), value)
        elif not isinstance(value, str) or not value:
            bad(key, "expected a non-empty string")
        else:
            values[key] = value
    return HealthSettings(**values)


def _region_keys(value: Any, bad) -> Mapping[str, str] | None:
    """`region_keys:` a mapping of region name to a key of at least 16 characters."""
    if not isinstance(value, Mapping):
        bad("region_keys", "expected a mapping of region name to key, e.g. {eu-west-1: KEY}")
        return None
    keys = {}
    for region, key in value.items():
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            bad("region_keys", f"region name {short(region, 40)}: letters, digits, '.', '_' or '-', up to 64")
        elif not isinstance(key, str) or len(key) < 16:
            bad("region_keys", f"{region}: expected a key of at least 16 characters")
        else:
            keys[region] = key
    return MappingProxyType(keys)
