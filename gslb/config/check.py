"""Parse a `check:` mapping (zone pools and proxy pools share it) into a `Check`."""

from __future__ import annotations

from typing import Any

from gslb.config.model import Check
from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import Problem

CHECK_TYPES = ("http", "https", "tcp", "dns")
_FIELDS = {"type", "port", "path", "method", "host", "expect", "body", "tls_verify", "sni", "query",
           "query_type", "interval", "timeout", "rise", "fall"}


def parse_check(src: Any, where: str, file: str, line: int, problems: list[Problem]) -> Check | None:
    """A `Check` from YAML; `null`/`false` means "no health check". Problems are appended, not raised."""
    if src is None or src is False:
        return None
    if not isinstance(src, SourceMap):
        problems.append(Problem(file, line, f"{where}: check must be a mapping like {{type: http, path: /healthz}}"))
        return None

    def bad(key: str, what: str) -> None:
        problems.append(Problem(file, src.line_of(key), f"{where}: check {key}: {what}"))

    for key in src:
        if key not in _FIELDS:
            bad(key, f"unknown key (known: {', '.join(sorted(_FIELDS))})")
    kind = src.get("type", "http")
    if kind not in CHECK_TYPES:
        bad("type", f"{short(kind)}, expected one of {', '.join(CHECK_TYPES)}")
        kind = "http"
    values: dict[str, Any] = {"type": kind}
    port = src.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        bad("port", f"{short(port)}, expected 1..65535")
    elif port is not None:
        values["port"] = port
    elif kind == "tcp":
        bad("type", "a tcp check needs a port")
    for key in ("path", "method", "host", "body", "sni", "query", "query_type"):
        if key in src:
            if not isinstance(src[key], str) or not src[key]:
                bad(key, f"{short(src[key])}, expected a non-empty string")
            else:
                values[key] = src[key]
    if "path" in values and not values["path"].startswith("/"):
        bad("path", f"{short(values['path'])} must start with /")
    if "method" in values:
        values["method"] = values["method"].upper()
    if "expect" in src:
        expect = src["expect"] if isinstance(src["expect"], list) else [src["expect"]]
        if not expect or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
            bad("expect", f"{short(src['expect'])}, expected HTTP status codes (100..599)")
        else:
            values["expect"] = tuple(expect)
    if "tls_verify" in src:
        if not isinstance(src["tls_verify"], bool):
            bad("tls_verify", "expected true or false")
        else:
            values["tls_verify"] = src["tls_verify"]
    for key, lo in (("interval", 0.2), ("timeout", 0.05)):
        if key in src:
            value = src[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= 3600:
                bad(key, f"{short(value)}, expected seconds {lo}..3600")
            else:
                values[key] = float(value)
    for key in ("rise", "fall"):
        if key in src:
            value = src[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                bad(key, f"{short(value)}, expected a count 1..100")
            else:
                values[key] = value
    return Check(**values)
