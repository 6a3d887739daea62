"""The validation kit the config readers share: typed fields, one mapping read at a time, every problem
`file:line: what` with the value quoted by `short()`, and the JSON Schema of the same declarations.

A reader declares its keys once, as a mapping of key -> `Field` (`Int(1, 256)`, `Seconds(0.05, 600)`,
`Flag()`, `Choice(...)`, `Text()`, `HostPort()`, `Address()`), reads a YAML mapping with
`Section(...).read(fields)` and builds its frozen dataclass from the values it got (the dataclass keeps the
defaults). `object_schema(fields)` turns the same declarations into JSON Schema (gslb/schema.py), so the
files under schemas/ cannot drift from what the loaders accept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gslb.config.yamlsrc import SourceList, SourceMap, short
from gslb.errors import Problem


class Invalid(ValueError):
    """A value a field refuses. With a message, the message is the problem; without, "VALUE, expected X".
    A `line` places it (an item of a list) instead of the key's line."""

    def __init__(self, message: str | None = None, line: int | None = None):
        super().__init__(*(() if message is None else (message,)))
        self.line = line


class Field:
    """One key's type: what it converts a YAML value to, what it says it expected, and its schema.

    `secret` fields never quote the value they refuse (it could be the key itself). `says` words the
    problem instead of "VALUE, expected X": a template with {value} (quoted) and {expected}.
    """

    def __init__(self, expected: str, schema: dict, convert: Callable[[Any], Any] | None = None,
                 secret: bool = False, says: str | None = None):
        self.expected, self._schema, self.secret, self.says = expected, schema, secret, says
        self._convert = convert

    def convert(self, value: Any) -> Any:
        """The value as the model holds it; raises Invalid when it is not one."""
        if self._convert is None:
            return value
        return self._convert(value)

    def schema(self) -> dict:
        return dict(self._schema)

    def problem(self, value: Any, exc: Invalid) -> str:
        if exc.args:
            return str(exc.args[0])
        if self.says is not None:
            return self.says.format(value=short(value), expected=self.expected)
        return f"expected {self.expected}" if self.secret else f"{short(value)}, expected {self.expected}"


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range(lo: float, hi: float | None, kind: str) -> str:
    return f"{kind} {_num(lo)}..{_num(hi)}" if hi is not None else f"{kind} >= {_num(lo)}"


def _bounds(lo: float, hi: float | None) -> dict:
    return {"minimum": lo} | ({} if hi is None else {"maximum": hi})


# Field constructors are capitalised: a declaration reads as a table of types, `workers: Int(1, 256)`.
def Int(lo: int, hi: int | None = None, expected: str | None = None, says: str | None = None) -> Field:
    """A whole number lo..hi (booleans are not numbers)."""
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
            raise Invalid
        return value
    return Field(expected or _range(lo, hi, "a whole number"), {"type": "integer"} | _bounds(lo, hi), convert,
                 says=says)


def Number(lo: float, hi: float | None = None, expected: str | None = None, says: str | None = None) -> Field:
    """A number lo..hi, held as a float."""
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= lo \
                or (hi is not None and value > hi):
            raise Invalid
        return float(value)
    return Field(expected or _range(lo, hi, "a number"), {"type": "number"} | _bounds(lo, hi), convert, says=says)


def Seconds(lo: float, hi: float | None = None) -> Field:
    """A duration in seconds (a number) lo..hi."""
    return Number(lo, hi, _range(lo, hi, "seconds"))


def Flag(says: str | None = None) -> Field:
    """true or false (YAML's yes/on are not flags here: 1.2 says they are strings)."""
    def convert(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid
        return value
    return Field("true or false", {"type": "boolean"}, convert, says=says)


def Choice(options: Iterable[str], joiner: str = " | ", expected: str | None = None) -> Field:
    """One of a fixed set of words (a registry's names, usually)."""
    options = tuple(options)

    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise Invalid
        return value
    return Field(expected or f"one of {joiner.join(options)}", {"enum": list(options)}, convert)


def Text(expected: str = "a non-empty string", secret: bool = False, max_bytes: int | None = None,
         printable: bool = False, says: str | None = None) -> Field:
    """A non-empty string; `printable` refuses control characters, `max_bytes` caps its UTF-8 length."""
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value or (printable and not value.isprintable()) \
                or (max_bytes is not None and len(value.encode()) > max_bytes):
            raise Invalid
        return value
    schema = {"type": "string", "minLength": 1} | ({} if max_bytes is None else {"maxLength": max_bytes})
    return Field(expected, schema, convert, secret, says)


def split_hostport(text: Any) -> tuple[str, int] | None:
    """("host", port) from "host:port" or "[v6]:port", or None."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    host, _, port = text[1:].partition("]:") if text.startswith("[") else text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    return host, int(port)


HOSTPORT_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):[0-9]{1,5}$"


def HostPort(expected: str = "ADDR:PORT", says: str | None = None) -> Field:
    """HOST:PORT or [IPv6]:PORT, held as (host, port)."""
    def convert(value: Any) -> tuple[str, int]:
        hp = split_hostport(value)
        if hp is None:
            raise Invalid
        return hp
    return Field(expected, {"type": "string", "pattern": HOSTPORT_PATTERN}, convert, says=says)


def Address(expected: str = "an IP address", says: str | None = None) -> Field:
    """An IPv4 or IPv6 address, held in its normal text form."""
    def convert(value: Any) -> str:
        try:
            return str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise Invalid from None
    return Field(expected, {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}, convert,
                 says=says)


def Custom(expected: str, schema: dict, convert: Callable[[Any], Any] | None = None, secret: bool = False,
           says: str | None = None) -> Field:
    """A field whose check is a function of the reader's own (raising Invalid); its schema is given.
    Without `convert` the value is taken as it is: the reader reads it itself (a nested section)."""
    return Field(expected, schema, convert, secret, says)


def Either(*fields: Field, expected: str) -> Field:
    """The first of `fields` that takes the value (health quorum: a word or a number)."""
    def convert(value: Any) -> Any:
        for field in fields:
            try:
                return field.convert(value)
            except Invalid:
                continue
        raise Invalid
    return Field(expected, {"anyOf": [f.schema() for f in fields]}, convert)


# How a key that is not declared is reported: "health colour: unknown key (known: ...)" (the key named
# like any other) or "limits: unknown key 'x' (known: ...)" (the key quoted after the label, as "LABEL: ").
NAMED = "{label}{key}{sep}unknown key (known: {known})"
QUOTED = "{head}unknown key {quoted} (known: {known})"


class Section:
    """One YAML mapping being read: where its problems go and how they are labelled.

    `label` starts every message ("tcp ", "pool 'web': "), `sep` stands between a key and what is wrong
    with it ("tcp idle_timeout: 'ten', ..." or "pool 'web': ttl -1, ..."). `line` places problems of a
    value that is not a mapping (and of keys in a plain dict).
    """

    def __init__(self, src: Any, problems: list[Problem], file: str, label: str = "", sep: str = ": ",
                 unknown: str = QUOTED, line: int = 0):
        self.src, self.problems, self.file = src, problems, file
        self.label, self.sep, self.unknown_format, self.where = label, sep, unknown, line

    def line(self, key: Any = None) -> int:
        if isinstance(self.src, (SourceMap, SourceList)):
            return self.src.line_of(key) if key is not None else self.src.line
        return self.where

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value under `key` (read by the caller itself)."""
        return self.src.get(key, default)

    def add(self, line: int, what: str) -> None:
        """A problem at `line`, worded by the caller (no label)."""
        self.problems.append(Problem(self.file, line, what))

    def bad(self, key: Any, what: str, line: int | None = None) -> None:
        """A problem with the value under `key`: "LABEL KEY SEP what"."""
        self.add(self.line(key) if line is None else line, f"{self.label}{key}{self.sep}{what}")

    def unknown(self, known: Iterable[str]) -> None:
        """Report every key not in `known` (listed in the order given)."""
        known = tuple(known)
        for key in self.src:
            if key not in known:
                self.unknown_key(key, known)

    def unknown_key(self, key: Any, known: Iterable[str]) -> None:
        head = self.label if not self.label or self.label.endswith(": ") else self.label.rstrip() + ": "
        self.add(self.line(key), self.unknown_format.format(
            label=self.label, head=head, key=key, sep=self.sep, quoted=short(key), known=", ".join(known)))

    def value(self, key: str, field: Field, default: Any = None) -> Any:
        """src[key] converted by `field`; `default` when absent or refused (a problem is added then)."""
        if key not in self.src:
            return default
        value = self.src[key]
        try:
            return field.convert(value)
        except Invalid as exc:
            self.bad(key, field.problem(value, exc), exc.line)
            return default

    def read(self, fields: Mapping[str, Field], unknown: bool = True, own: Iterable[str] = ()) -> dict[str, Any]:
        """Every declared key present and valid -> its value; unknown keys (unless `unknown` is False: the
        caller reads the others) and bad values are problems, in file order. Keys in `own` are declared
        but read by the caller (nested sections, values that need the rest of the file)."""
        out: dict[str, Any] = {}
        own = frozenset(own)
        for key in self.src:
            if key in own:
                continue
            if key in fields:
                value = self.value(key, fields[key], _MISSING)
                if value is not _MISSING:
                    out[key] = value
            elif unknown:
                self.unknown_key(key, fields)
        return out

    def sub(self, key: str, expected: str, label: str | None = None, sep: str | None = None,
            unknown: str | None = None, says: str = "{value}, expected {expected}") -> Section | None:
        """src[key] as a Section of its own, or None when absent or null; a value that is not a mapping
        is a problem ("LABEL KEY: " + `says`, by default "VALUE, expected <expected>")."""
        value = self.src.get(key)
        if value is None:
            return None
        if not isinstance(value, SourceMap):
            self.add(self.line(key), f"{self.label}{key}: " + says.format(value=short(value), expected=expected))
            return None
        return Section(value, self.problems, self.file, self.label + key + " " if label is None else label,
                       self.sep if sep is None else sep, self.unknown_format if unknown is None else unknown)


_MISSING = object()


def line_of(src: Any, key: Any = None) -> int:
    """The line of src[key] (of src itself without a key); 0 for a value that is not from a file."""
    if isinstance(src, (SourceMap, SourceList)):
        return src.line_of(key) if key is not None else src.line
    return 0


def mapping_of(src: Any, problems: list[Problem], where: tuple[str, int], name: str, expected: str,
               **section: Any) -> Section | None:
    """A server-config section (`tcp:`, `rrl:` ...) as a Section; None when absent, or not a mapping
    (then a problem at `where`: "NAME: VALUE, expected <expected>")."""
    if src is None:
        return None
    if not isinstance(src, SourceMap):
        problems.append(Problem(*where, f"{name}: {short(src)}, expected {expected}"))
        return None
    return Section(src, problems, src.file if src.file != "?" else where[0], **section)


def object_schema(fields: Mapping[str, Field], defaults: Any = None, extra: Mapping[str, dict] | None = None,
                  description: str | None = None, required: Iterable[str] = ()) -> dict:
    """JSON Schema of a mapping with exactly these keys; `defaults` (a dataclass instance) adds each
    key's default, `extra` gives the schema of declared keys built elsewhere (nested sections): a key
    there that is not declared is a bug, so schema and reader cannot list different keys."""
    extra = extra or {}
    if set(extra) - set(fields):
        raise AssertionError(f"schema for keys the reader does not declare: {sorted(set(extra) - set(fields))}")
    properties: dict[str, dict] = {}
    for key, field in fields.items():
        if key in extra:
            properties[key] = extra[key]
            continue
        schema = field.schema()
        default = getattr(defaults, key, None) if defaults is not None else None
        if isinstance(default, (bool, int, float, str)):
            schema["default"] = default
        schema.setdefault("description", field.expected)
        properties[key] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if description:
        out["description"] = description
    if required:
        out["required"] = list(required)
    return out
