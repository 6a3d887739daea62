"""The `notify:` key of the server and proxy configs: webhooks that receive events (docs/observability.md).

    notify:
      - url: https://hooks.example.com/gslb      # http or https; each event is POSTed as JSON
        events: [endpoint.*, fail_open.*]        # kinds or patterns (fnmatch); default every event
        secret: ${GSLB_HOOK_SECRET}              # optional: sign (X-Gslb-Signature, as prober reports)
        timeout: 5                               # optional: seconds per attempt

A secret written `${NAME}` is read from the environment when the config is loaded.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem
from gslb.events import KINDS

NOTIFY_KEYS = {"url", "events", "secret", "timeout"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """One webhook receiver."""

    url: str
    events: tuple[str, ...] = ("*",)     # fnmatch patterns over event kinds
    secret: str | None = None            # None: sent unsigned
    timeout: float = 5.0                 # seconds per attempt

    def wants(self, kind: str) -> bool:
        """Whether events of `kind` go to this receiver."""
        return any(fnmatch.fnmatchcase(kind, pattern) for pattern in self.events)


def _secret(value: Any, problems: list[Problem], file: str, line: int) -> str | None:
    if not isinstance(value, str) or not value:
        problems.append(Problem(file, line, "notify secret: expected a non-empty string (or ${ENV_NAME})"))
        return None
    match = _ENV.fullmatch(value.strip())
    if match is None:
        return value
    found = os.environ.get(match.group(1))
    if not found:
        problems.append(Problem(file, line, f"notify secret: environment variable {match.group(1)} is not set"))
    return found or None


def _target(item: Any, problems: list[Problem], file: str, line: int) -> NotifyTarget | None:
    if isinstance(item, str):
        item = SourceMap(url=item)
    if not isinstance(item, SourceMap):
        problems.append(Problem(file, line, "notify: each entry is {url, events, secret} (or a URL)"))
        return None
    before = len(problems)
    for key in item:
        if key not in NOTIFY_KEYS:
            problems.append(Problem(file, item.line_of(key) or line, f"notify: unknown key {short(key)} "
                                                                      f"(known: {', '.join(sorted(NOTIFY_KEYS))})"))
    url = item.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(Problem(file, item.line_of("url") or line,
                                f"notify url: {short(url)}, expected http://HOST[:PORT]/PATH or https://..."))
    events = item.get("events", ["*"])
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        problems.append(Problem(file, item.line_of("events") or line,
                                "notify events: expected a list of event kinds or patterns like endpoint.*"))
        events = ["*"]
    for pattern in events:
        if not any(fnmatch.fnmatchcase(kind, pattern) for kind in KINDS):
            problems.append(Problem(file, item.line_of("events") or line,
                                    f"notify events: {short(pattern)} matches no event kind "
                                    f"(kinds: {', '.join(KINDS)})"))
    secret = _secret(item["secret"], problems, file, item.line_of("secret") or line) if "secret" in item else None
    timeout = item.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0.1 <= timeout <= 60:
        problems.append(Problem(file, item.line_of("timeout") or line, "notify timeout: expected seconds 0.1..60"))
        timeout = 5.0
    if len(problems) > before:
        return None
    return NotifyTarget(url, tuple(events), secret, float(timeout))


def parse_notify(value: Any, problems: list[Problem], where: tuple[str, int]) -> tuple[NotifyTarget, ...]:
    """The webhook receivers of a `notify:` value (absent: none). Problems are appended with file:line."""
    file, line = where
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for index, item in enumerate(items):
        item_line = value.line_of(index) if isinstance(value, SourceList) else line
        target = _target(item, problems, file, item_line)
        if target is not None:
            out.append(target)
    return tuple(out)


def notify_schema() -> dict:
    """The JSON Schema of a `notify:` value (gslb/schema.py: server and proxy configs)."""
    url = {"type": "string", "pattern": "^https?://"}
    entry = {"anyOf": [url, {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
        "url": url,
        "events": {"anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}],
                   "description": "event kinds or fnmatch patterns (endpoint.*); default every event"},
        "secret": {"type": "string", "minLength": 1, "description": "signs each POST (X-Gslb-Signature); "
                                                                    "${NAME} reads the environment"},
        "timeout": {"type": "number", "minimum": 0.1, "maximum": 60, "default": 5}}}]}
    return {"anyOf": [{"type": "null"}, entry, {"type": "array", "items": entry}]}
