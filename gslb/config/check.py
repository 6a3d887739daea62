"""Parse a `check:` mapping (zone pools and proxy pools share it) into a `Check` (docs/health-checks.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from gslb.config.model import Check
from gslb.config.registry import CHECK_TYPES
from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import GslbError, Problem

MISSING = ("keep", "up", "down")
_FIELDS = {"type", "port", "path", "method", "host", "expect", "body", "tls_verify", "sni", "query",
           "query_type", "interval", "timeout", "rise", "fall", "headers", "user_agent", "send", "missing"}
# Keys that mean something for some types only: given for another type, they are an error, not ignored.
_ONLY = {"headers": ("http", "https"), "user_agent": ("http", "https"), "method": ("http", "https"),
         "body": ("http", "https"), "host": ("http", "https"), "sni": ("https",), "tls_verify": ("https",),
         "send": ("tcp",), "missing": ("file",), "query": ("dns",), "query_type": ("dns",),
         "expect": ("http", "https", "tcp"), "port": ("http", "https", "tcp", "dns")}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")     # an HTTP header name (RFC 9110 token)
_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STATUS_CLASS = re.compile(r"([1-5])xx", re.IGNORECASE)
_STATUS_RANGE = re.compile(r"(\d{3})\s*-\s*(\d{3})")
SEND_LIMIT = 65536
# Set by other keys: a Host header is `host:`, the User-Agent is `user_agent:`; the rest the client sets.
_RESERVED_HEADERS = {"host": "host:", "user-agent": "user_agent:", "content-length": None,
                     "transfer-encoding": None, "connection": None}


class EnvError(GslbError, ValueError):
    """A `${NAME}` in a check value that cannot be filled in: not set, or not a variable name."""


def expand_env(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with every `${NAME}` replaced by that environment variable, and `$$` by `$`.

    :raises EnvError: a variable is not set, a `${...}` is not a variable name, or a `${` is not closed.
    """
    source = os.environ if env is None else env

    def fill(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        if not _ENV_NAME.fullmatch(name):
            raise EnvError(f"${{{name[:40]}}} is not an environment variable name")
        if name not in source:
            raise EnvError(f"environment variable {name} is not set")
        return source[name]

    if "${" in _REF.sub("", text):
        raise EnvError("a ${ without its closing }")
    return _REF.sub(fill, text)


def _status_item(item: Any) -> int | str | None:
    """An `expect:` entry of an http check in its stored form, or None when it is not one."""
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item if 100 <= item <= 599 else None
    if not isinstance(item, str):
        return None
    text = item.strip()
    if text.isdigit():
        return _status_item(int(text))
    if _STATUS_CLASS.fullmatch(text):
        return text.lower()
    if m := _STATUS_RANGE.fullmatch(text):
        low, high = int(m.group(1)), int(m.group(2))
        if 100 <= low <= high <= 599:
            return f"{low}-{high}"
    return None


def _file_path(value: str, file: str) -> str:
    """A health file's path; a relative one is taken from the folder of the file that names it."""
    if os.path.isabs(value) or file in ("", "?"):
        return value
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(file)), value))


def parse_check(src: Any, where: str, file: str, line: int, problems: list[Problem]) -> Check | None:
    """A `Check` from YAML; `null`/`false` means "no health check". Problems are appended, not raised."""
    if src is None or src is False:
        return None
    if not isinstance(src, SourceMap):
        problems.append(Problem(file, line, f"{where}: check must be a mapping like {{type: http, path: /healthz}}"))
        return None

    def bad(key: str, what: str, at: int | None = None) -> None:
        problems.append(Problem(file, src.line_of(key) if at is None else at, f"{where}: check {key}: {what}"))

    for key in src:
        if key not in _FIELDS:
            bad(key, f"unknown key (known: {', '.join(sorted(_FIELDS))})")
    kind = src.get("type", "http")
    if kind not in CHECK_TYPES:
        bad("type", f"{short(kind)}, expected one of {', '.join(CHECK_TYPES)}")
        kind = "http"
    for key, types in _ONLY.items():
        if key in src and kind not in types:
            bad(key, f"not used by a {kind} check (only {', '.join(types)})")
    values: dict[str, Any] = {"type": kind}
    port = src.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535):
        bad("port", f"{short(port)}, expected 1..65535")
    elif port is not None:
        if kind != "file":
            values["port"] = port
    elif kind == "tcp":
        bad("type", "a tcp check needs a port")
    for key in ("path", "method", "host", "body", "sni", "query", "query_type", "user_agent"):
        if key not in src or kind not in _ONLY.get(key, CHECK_TYPES):
            continue
        if not isinstance(src[key], str) or not src[key]:
            bad(key, f"{short(src[key])}, expected a non-empty string")
        else:
            values[key] = src[key]
    if kind == "file":
        if "path" not in values:
            bad("path", "a file check needs the path of its health file", src.line_of("path") if "path" in src else line)
        else:
            values["path"] = _file_path(values["path"], file)
        values.setdefault("rise", 1)        # the file's writer has already decided; rise/fall may add damping
        values.setdefault("fall", 1)
        if "missing" in src:
            if src["missing"] not in MISSING:
                bad("missing", f"{short(src['missing'])}, expected one of {' | '.join(MISSING)}")
            else:
                values["missing"] = src["missing"]
    elif "path" in values and not values["path"].startswith("/"):
        bad("path", f"{short(values['path'])} must start with /")
    if "method" in values:
        values["method"] = values["method"].upper()
    if "user_agent" in values:
        _check_env_value(values["user_agent"], "user_agent", bad)
    if "headers" in src and kind in ("http", "https"):
        values["headers"] = _headers(src["headers"], bad)
    if "expect" in src:
        if kind == "tcp":
            values.update(_tcp_expect(src["expect"], bad))
        elif kind in ("http", "https"):
            _http_expect(src["expect"], values, bad)
    if "send" in src and kind == "tcp":
        if not isinstance(src["send"], str) or not src["send"]:
            bad("send", f"{short(src['send'])}, expected the text to send, e.g. \"PING\\r\\n\"")
        elif len(src["send"].encode()) > SEND_LIMIT:
            bad("send", f"{len(src['send'].encode())} bytes, at most {SEND_LIMIT}")
        else:
            values["send"] = src["send"]
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


def _check_env_value(value: str, key: str, bad: Any, at: int | None = None) -> None:
    """Reports a value whose `${NAME}`s cannot be filled in here, or that fills in to a line break."""
    try:
        filled = expand_env(value)
    except EnvError as exc:
        bad(key, str(exc), at)
        return
    if "\r" in filled or "\n" in filled:
        bad(key, "contains a line break (after filling in ${...})", at)


def _headers(src: Any, bad: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(src, SourceMap) or not src:
        bad("headers", f"{short(src)}, expected a mapping like {{X-Health-Token: \"${{HEALTH_TOKEN}}\"}}")
        return ()
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in src.items():
        at = src.line_of(name)
        label = f"headers {short(name)}"
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            bad(label, "not a header name (letters, digits and !#$%&'*+.^_`|~-)", at)
            continue
        lower = name.lower()
        if lower in _RESERVED_HEADERS:
            instead = _RESERVED_HEADERS[lower]
            bad(label, f"set with the check's {instead} key" if instead else "set by the HTTP client itself", at)
            continue
        if lower in seen:
            bad(label, "given twice (header names ignore case)", at)
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            bad(label, f"{short(value)}, expected a text value", at)
            continue
        text = str(value)
        _check_env_value(text, label, bad, at)
        seen.add(lower)
        out.append((name, text))
    return tuple(out)


def _http_expect(src: Any, values: dict[str, Any], bad: Any) -> None:
    items = src if isinstance(src, list) else [src]
    parsed = [_status_item(item) for item in items]
    if not items or any(p is None for p in parsed):
        wrong = next((item for item, p in zip(items, parsed, strict=True) if p is None), src)
        bad("expect", f"{short(wrong)}, expected status codes (100..599), classes like \"2xx\" "
                      "or ranges like \"200-299\"")
    else:
        values["expect"] = tuple(dict.fromkeys(parsed))


def _tcp_expect(src: Any, bad: Any) -> dict[str, str]:
    if isinstance(src, str) and src:
        return {"expect_text": src}
    if isinstance(src, SourceMap) and len(src) == 1:
        (kind, value), = src.items()
        if kind in ("text", "regex") and isinstance(value, str) and value:
            if kind == "text":
                return {"expect_text": value}
            try:
                re.compile(value)
            except re.error as exc:
                bad("expect", f"regex {short(value)}: {exc}")
                return {}
            return {"expect_regex": value}
    bad("expect", f"{short(src)}, expected text the reply contains, or {{regex: \"^\\\\+PONG\"}}")
    return {}
