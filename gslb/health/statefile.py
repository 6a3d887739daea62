"""The health state file: what the embedded prober last saw, so a restart neither sends traffic to a site
that was down nor withdraws healthy ones. Written atomically (temp file + rename)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

from gslb.config.model import Check, Target

log = logging.getLogger("gslb.health")
FILE_NAME = "health.json"


def target_key(target: Target) -> str:
    """A stable text key for a target: its address and every field of its check."""
    return json.dumps({"address": target.address, "check": dataclasses.asdict(target.check)}, sort_keys=True)


def target_from_key(key: str) -> Target:
    data = json.loads(key)
    check = data["check"]
    check["expect"] = tuple(check["expect"])
    return Target(data["address"], Check(**check))


def save(state_dir: str, states: dict[Target, tuple[str, float | None]], overrides: dict[str, str]) -> None:
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, FILE_NAME)
    body = {"saved_at": time.time(), "overrides": overrides,
            "targets": [{"key": target_key(t), "state": s, "rtt_ms": r} for t, (s, r) in states.items()]}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh)
    os.replace(tmp, path)


def load(state_dir: str, max_age: float) -> tuple[dict[Target, tuple[str, float | None]], dict[str, str]]:
    """Saved states and overrides, or nothing if the file is missing, unreadable or older than max_age."""
    path = os.path.join(state_dir, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            body = json.load(fh)
        age = time.time() - float(body["saved_at"])
        if age > max_age:
            log.info("health state file %s is %.0f s old (max %.0f s): not used", path, age, max_age)
            return {}, {}
        states = {target_from_key(item["key"]): (item["state"], item["rtt_ms"]) for item in body["targets"]}
        log.info("restored the health of %d targets from %s (%.0f s old)", len(states), path, age)
        return states, dict(body.get("overrides", {}))
    except FileNotFoundError:
        return {}, {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("health state file %s ignored: %s", path, exc)
        return {}, {}
