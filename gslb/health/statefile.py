"""The health state file: what the server last concluded and what its embedded prober last saw, so a
restart neither sends traffic to a site that was down nor withdraws healthy ones. Written atomically
(temp file + rename).

Two parts: `combined` (the quorum state the server answered from; restored for every server, with or
without an embedded prober) and `local` (the embedded prober's own view with its RTT; restored into
its rise/fall machines so it carries on where it stopped).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field

from gslb.config.model import Check, Target
from gslb.health.snapshot import HealthState

log = logging.getLogger("gslb.health")
FILE_NAME = "health.json"
_STATES = ("unknown", "up", "down")


# Check fields added after target ids were first shared: left out of the key while at their default, so
# a check that does not use them keeps the id older probers and state files know it by.
_LATER_FIELDS = {"headers": (), "user_agent": None, "send": None, "expect_text": None, "expect_regex": None,
                 "missing": "keep"}


def target_key(target: Target) -> str:
    """A stable text key for a target: the address it checks and every field of its check."""
    check = dataclasses.asdict(target.check)
    for name, default in _LATER_FIELDS.items():
        if check.get(name) == default:
            del check[name]
    return json.dumps({"address": target.address, "check": check}, sort_keys=True)


def target_from_key(key: str) -> Target:
    """The target a `target_key` was made from. :raises ValueError, KeyError, TypeError: on a bad key."""
    data = json.loads(key)
    check = data["check"]
    check["expect"] = tuple(check["expect"])
    if "headers" in check:
        check["headers"] = tuple((str(k), str(v)) for k, v in check["headers"])
    return Target(data["address"], Check(**check))


@dataclass(frozen=True, slots=True)
class SavedHealth:
    """What a state file holds."""

    combined: dict[Target, HealthState] = field(default_factory=dict)
    local: dict[Target, tuple[HealthState, float | None]] = field(default_factory=dict)
    age: float = 0.0


def save(state_dir: str, combined: dict[Target, HealthState],
         local: dict[Target, tuple[HealthState, float | None]]) -> None:
    """Write health.json in state_dir (made if missing). :raises OSError: when it cannot be written.
    Overrides are not in it: they have their own file, which no age limit discards (overridefile.py)."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, FILE_NAME)
    body = {"saved_at": time.time(),
            "combined": [{"key": target_key(t), "state": s} for t, s in combined.items()],
            "targets": [{"key": target_key(t), "state": s, "rtt_ms": r} for t, (s, r) in local.items()]}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
    os.replace(tmp, path)


def _state(value: object) -> HealthState:
    if value not in _STATES:
        raise ValueError(f"state {value!r}, expected one of {', '.join(_STATES)}")
    return value  # type: ignore[return-value]


def load(state_dir: str, max_age: float) -> SavedHealth:
    """What was saved, or nothing if the file is missing, unreadable or older than max_age (logged)."""
    path = os.path.join(state_dir, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            body = json.load(fh)
        age = time.time() - float(body["saved_at"])
        if age > max_age:
            log.info("health state file %s is %.0f s old (max %.0f s): not used", path, age, max_age)
            return SavedHealth()
        local = {target_from_key(item["key"]): (_state(item["state"]), item["rtt_ms"]) for item in body["targets"]}
        if "combined" in body:
            combined = {target_from_key(item["key"]): _state(item["state"]) for item in body["combined"]}
        else:                                    # a file from before the combined part existed
            combined = {t: s for t, (s, _) in local.items()}
        log.info("restored the health of %d targets from %s (%.0f s old)", len(combined), path, age)
        return SavedHealth(combined, local, age)
    except FileNotFoundError:
        return SavedHealth()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("health state file %s ignored: %s", path, exc)
        return SavedHealth()
