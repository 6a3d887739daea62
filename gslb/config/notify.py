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

from gslb.config.kit import Custom, Invalid, Number, Section, object_schema
from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem
from gslb.events import KINDS

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


def _secret(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        raise Invalid
    match = _ENV.fullmatch(value.strip())
    if match is None:
        return value
    found = os.environ.get(match.group(1))
    if not found:
        raise Invalid(f"environment variable {match.group(1)} is not set")
    return found


def _url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid
    return value


def _events(value: Any) -> tuple[str, ...]:
    events = [value] if isinstance(value, str) else value
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise Invalid("expected a list of event kinds or patterns like endpoint.*")
    for pattern in events:
        if not any(fnmatch.fnmatchcase(kind, pattern) for kind in KINDS):
            raise Invalid(f"{short(pattern)} matches no event kind (kinds: {', '.join(KINDS)})")
    return tuple(events)


_URL = {"type": "string", "pattern": "^https?://"}
NOTIFY_FIELDS = {
    "events": Custom("event kinds or fnmatch patterns (endpoint.*); default every event", {
        "anyOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {"type": "string"}}]}, _events),
    "secret": Custom("a non-empty string (or ${ENV_NAME})", {
        "type": "string", "minLength": 1,
        "description": "signs each POST (X-Gslb-Signature); ${NAME} reads the environment"}, _secret, secret=True),
    "timeout": Number(0.1, 60, "seconds 0.1..60", says="expected {expected}"),
    "url": Custom("http://HOST[:PORT]/PATH or https://...", _URL, _url),
}


def _target(item: Any, problems: list[Problem], file: str, line: int) -> NotifyTarget | None:
    if isinstance(item, str):
        item = {"url": item}
    elif not isinstance(item, SourceMap):
        problems.append(Problem(file, line, "notify: each entry is {url, events, secret} (or a URL)"))
        return None
    before = len(problems)
    values = Section(item, problems, file, "notify ", line=line).read(NOTIFY_FIELDS)
    if "url" not in values and "url" not in item:
        problems.append(Problem(file, line, f"notify url: {short(None)}, expected {NOTIFY_FIELDS['url'].expected}"))
    if len(problems) > before:
        return None
    return NotifyTarget(**values)


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
    entry = {"anyOf": [_URL, object_schema(NOTIFY_FIELDS, NotifyTarget(""), required=("url",))]}
    return {"anyOf": [{"type": "null"}, entry, {"type": "array", "items": entry}]}
