"""The runtime overrides' own file, `overrides.json` in `state_dir`: what operators set over the API.

Unlike health.json, no age limit applies: a drain made over the API holds across any restart, however
long the node was down, until its `until` passes or it is cleared. Written atomically (temp file, fsync,
rename) on every change. A file that cannot be parsed is moved aside (logged) rather than overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import time

from gslb.config.overrides import Override, entry_fields

log = logging.getLogger("gslb.overrides")
FILE_NAME = "overrides.json"
LEGACY_FILE = "health.json"       # before overrides.json, address overrides were kept in health.json


def save(state_dir: str, overrides: list[Override]) -> None:
    """Write overrides.json in state_dir (made if missing). :raises OSError: when it cannot be written."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, FILE_NAME)
    body = {"saved_at": time.time(), "overrides": [
        {"selector": str(o.selector), "state": o.state, "reason": o.reason, "until": o.until, "by": o.by,
         "created": o.created} for o in overrides]}
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _entry(item: object, path: str, index: int) -> Override | None:
    problems: list[str] = []
    if not isinstance(item, dict):
        log.error("%s: entry %d is not an object: skipped", path, index + 1)
        return None
    src = dict(item)
    until = src.pop("until", None)
    values = entry_fields(src, lambda key, what: problems.append(f"{key}: {what}"))
    if values is None or (until is not None and not isinstance(until, (int, float))):
        log.error("%s: entry %d skipped: %s", path, index + 1, "; ".join(problems) or "until: not a unix time")
        return None
    created = src.get("created")
    return Override(source="api", until=float(until) if until is not None else None,
                    created=float(created) if isinstance(created, (int, float)) else None,
                    **{k: v for k, v in values.items() if k != "until"})


def load(state_dir: str) -> list[Override]:
    """The runtime overrides saved in state_dir, whatever their age (expired ones included: the caller
    drops and logs them). A missing file is none; a broken one is moved aside to `overrides.json.broken`."""
    path = os.path.join(state_dir, FILE_NAME)
    try:
        with open(path, encoding="utf-8") as fh:
            body = json.load(fh)
        items = body["overrides"]
        if not isinstance(items, list):
            raise TypeError("overrides is not a list")
    except FileNotFoundError:
        taken = _legacy(state_dir)
        if taken:
            try:
                save(state_dir, taken)     # health.json is about to be rewritten without them
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)
        return taken
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = f"{path}.broken"
        log.error("runtime overrides file %s cannot be read (%s): moved to %s, starting without runtime "
                  "overrides; set them again", path, exc, aside)
        try:
            os.replace(path, aside)
        except OSError as exc2:
            log.error("cannot move %s aside: %s", path, exc2)
        return []
    out = [o for i, item in enumerate(items) if (o := _entry(item, path, i)) is not None]
    log.info("restored %d runtime overrides from %s", len(out), path)
    return out


def _legacy(state_dir: str) -> list[Override]:
    """Address overrides an older gslb kept in health.json, taken over once whatever that file's age."""
    path = os.path.join(state_dir, LEGACY_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            body = json.load(fh)
        old = body.get("overrides") or {}
        saved_at = float(body.get("saved_at") or 0) or None
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    out = []
    for address, state in old.items() if isinstance(old, dict) else ():
        values = entry_fields({"selector": f"*/*/{address}", "state": state,
                               "reason": "taken over from health.json (set before overrides.json existed)"},
                              lambda key, what: None)
        if values is not None:
            out.append(Override(source="api", created=saved_at, **values))
    if out:
        log.warning("took over %d address overrides from %s into %s", len(out), path, FILE_NAME)
    return out
