"""Log output for every command: `--log-format text` (a line for a person) or `json` (one object per line
for a machine; docs/observability.md, "Logs").

JSON keys are stable: always `time` (RFC 3339, UTC, milliseconds), `level`, `logger`, `message`, `node`;
an event's line (gslb/events.py) adds `event` (its kind), `event_id` and those of `zone`, `pool`, `site`,
`address`, `region` and `reason` it names; a query log line adds its own fields (docs/observability.md).
A traceback goes in `exception`.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
FIELDS = ("event", "event_id", "zone", "pool", "site", "address", "region", "reason")
_node = socket.gethostname()


def set_node(node: str | None) -> None:
    """The `node` every JSON line carries (the server's node_id; the host name until it is known)."""
    global _node
    if node:
        _node = node


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring for the keys."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict = {"time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname.lower(),
                     "logger": record.name, "message": record.getMessage(), "node": _node}
        for key in FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        extra = getattr(record, "fields", None)      # a query log line's own fields
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "INFO", fmt: str = "text", stream=None) -> None:
    """Send every log record to stderr (or `stream`) in `fmt` ("text" or "json") from `level` up.

    :raises ValueError: an unknown format or level.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected text or json")
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Like logging.basicConfig: a handler someone else installed (a test harness) is left alone.
    ours = [h for h in root.handlers if getattr(h, "gslb", False)]
    if root.handlers and not ours:
        return
    for old in ours:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.gslb = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
