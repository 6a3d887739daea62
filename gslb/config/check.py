"""Parse a `check:` mapping (zone pools and proxy pools share it) into a `Check` (docs/health-checks.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from gslb.config.kit import NAMED, Choice, Custom, Flag, Int, Invalid, Seconds, Section, Text
from gslb.config.model import Check
from gslb.config.registry import CHECK_TYPES
from gslb.config.yamlsrc import SourceMap, short
from gslb.errors import GslbError, Problem

MISSING = ("keep", "up", "down")
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
    sec = Section(src, problems, file, f"{where}: check ", unknown=NAMED)
    sec.unknown(CHECK_FIELDS)
    kind = sec.value("type", CHECK_FIELDS["type"], "http")
    unused = {key for key, types in _ONLY.items() if kind not in types}
    for key in src:
        if key in unused:
            sec.bad(key, f"not used by a {kind} check (only {', '.join(_ONLY[key])})")
    if kind == "tcp" and "port" not in src:
        sec.bad("type", "a tcp check needs a port")
    if kind == "file" and "path" not in src:
        sec.bad("path", "a file check needs the path of its health file", line)
    fields = {key: field for key, field in CHECK_FIELDS.items() if key not in unused and key != "type"}
    if "expect" in fields:
        fields["expect"] = _TCP_EXPECT if kind == "tcp" else _HTTP_EXPECT
    values = sec.read(fields, unknown=False)
    if "headers" in values:
        values["headers"] = _headers(values["headers"], sec)
    if kind == "tcp":
        values.update(values.pop("expect", {}))
    if kind == "file":
        if "path" in values:
            values["path"] = _file_path(values["path"], file)
        values.setdefault("rise", 1)        # the file's writer has already decided; rise/fall may add damping
        values.setdefault("fall", 1)
    elif "path" in values and not values["path"].startswith("/"):
        sec.bad("path", f"{short(values.pop('path'))} must start with /")
    return Check(type=kind, **values)


def _env_problem(text: str) -> str | None:
    """Why a value's `${NAME}`s cannot be filled in here, or it fills in to a line break; None if fine."""
    try:
        filled = expand_env(text)
    except EnvError as exc:
        return str(exc)
    if "\r" in filled or "\n" in filled:
        return "contains a line break (after filling in ${...})"
    return None


def _user_agent(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid
    problem = _env_problem(value)
    if problem:
        raise Invalid(problem)
    return value


def _send(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid
    if len(value.encode()) > SEND_LIMIT:
        raise Invalid(f"{len(value.encode())} bytes, at most {SEND_LIMIT}")
    return value


def _headers(src: Any, sec: Section) -> tuple[tuple[str, str], ...]:
    """Every header of `headers:`; each wrong one is its own problem (on its own line)."""
    if not isinstance(src, SourceMap) or not src:
        sec.bad("headers", f"{short(src)}, expected a mapping like {{X-Health-Token: \"${{HEALTH_TOKEN}}\"}}")
        return ()
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in src.items():
        at, label = src.line_of(name), f"headers {short(name)}"
        lower = name.lower() if isinstance(name, str) else ""
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            problem = "not a header name (letters, digits and !#$%&'*+.^_`|~-)"
        elif lower in _RESERVED_HEADERS:
            instead = _RESERVED_HEADERS[lower]
            problem = f"set with the check's {instead} key" if instead else "set by the HTTP client itself"
        elif lower in seen:
            problem = "given twice (header names ignore case)"
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problem = f"{short(value)}, expected a text value"
        else:
            problem = _env_problem(str(value))
        if problem:
            sec.bad(label, problem, at)
            continue
        seen.add(lower)
        out.append((name, str(value)))
    return tuple(out)


def _http_expect(src: Any) -> tuple[int | str, ...]:
    items = src if isinstance(src, list) else [src]
    parsed = [_status_item(item) for item in items]
    if not items or None in parsed:
        wrong = next((item for item, p in zip(items, parsed, strict=True) if p is None), src)
        raise Invalid(f"{short(wrong)}, expected status codes (100..599), classes like \"2xx\" "
                      "or ranges like \"200-299\"")
    return tuple(dict.fromkeys(parsed))


def _tcp_expect(src: Any) -> dict[str, str]:
    if isinstance(src, str) and src:
        return {"expect_text": src}
    if isinstance(src, SourceMap) and len(src) == 1:
        (kind, value), = src.items()
        if kind in ("text", "regex") and isinstance(value, str) and value:
            if kind == "regex":
                try:
                    re.compile(value)
                except re.error as exc:
                    raise Invalid(f"regex {short(value)}: {exc}") from None
            return {f"expect_{kind}": value}
    raise Invalid


_STATUS = {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599},
                     {"type": "string", "pattern": r"^\s*([1-5][xX][xX]|\d{3}(\s*-\s*\d{3})?)\s*$"}]}
_EXPECT_SCHEMA = {"anyOf": [_STATUS, {"type": "array", "minItems": 1, "items": _STATUS},
                            {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                             "properties": {"text": {"type": "string", "minLength": 1},
                                            "regex": {"type": "string", "minLength": 1}}}]}
_HTTP_EXPECT = Custom("status codes", _EXPECT_SCHEMA, _http_expect)
_TCP_EXPECT = Custom('text the reply contains, or {regex: "^\\\\+PONG"}', _EXPECT_SCHEMA, _tcp_expect)
_COUNT = Int(1, 100, "a count 1..100")
# Every key of `check:`, in the order messages list them; `expect` is read by the check type's own field.
CHECK_FIELDS = {
    "body": Text(), "expect": Custom('http(s): codes, "3xx" classes, "200-299" ranges; tcp: text or {regex: ...}',
                                     _EXPECT_SCHEMA),
    "fall": _COUNT, "headers": Custom("a mapping of header name to value (${ENV} filled in on the prober)", {
        "type": "object", "minProperties": 1, "additionalProperties": {"type": ["string", "number"]}}),
    "host": Text(), "interval": Seconds(0.2, 3600),
    "method": Custom("a non-empty string", {"type": "string", "minLength": 1},
                     lambda value: Text().convert(value).upper()),
    "missing": Choice(MISSING), "path": Text(), "port": Int(1, 65535, "1..65535"), "query": Text(),
    "query_type": Text(), "rise": _COUNT,
    "send": Custom('the text to send, e.g. "PING\\r\\n"', {"type": "string", "minLength": 1}, _send),
    "sni": Text(), "timeout": Seconds(0.05, 3600), "tls_verify": Flag(says="expected true or false"),
    "type": Choice(CHECK_TYPES, ", "), "user_agent": Custom("a non-empty string", {"type": "string", "minLength": 1},
                                                            _user_agent),
}
