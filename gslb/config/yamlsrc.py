"""A YAML loader that remembers where every value came from, so that errors can say file:line.

Mappings load as `SourceMap` and sequences as `SourceList`; both carry the file name, their own line,
and the line of each of their values (`line_of(key)`). Scalars stay plain Python values.

Aliases (`*name`) and merge keys (`<<:`) are refused in every file gslb reads: a few lines of nested
aliases expand to gigabytes (the "billion laughs"), and no gslb file needs them. They are found on the
composed node graph, where an alias is one node reached twice, before anything is expanded.
`short(value)` is how errors quote a value: a bounded prefix, never the repr of the whole thing.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from gslb.errors import ConfigError, Problem


class SourceMap(dict):
    """A dict loaded from YAML that knows the file and the line of itself and of each value."""

    file: str = "?"
    line: int = 0
    lines: dict

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lines = {}              # an empty mapping made in code (an empty file) knows no lines

    def line_of(self, key: Any) -> int:
        """Line of the value under `key` (or of the mapping itself if the key is absent)."""
        return self.lines.get(key, self.line)


class SourceList(list):
    """A list loaded from YAML that knows the file and the line of itself and of each item."""

    file: str = "?"
    line: int = 0
    lines: list

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


# libyaml's parser is about ten times faster on big zones and keeps the same marks (line numbers).
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """SafeLoader that builds SourceMap/SourceList and rejects duplicate keys."""

    filename = "?"


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> SourceMap:
    out = SourceMap()
    out.file, out.line, out.lines = loader.filename, node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {short(key)}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = value_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> SourceList:
    out = SourceList(loader.construct_object(child, deep=True) for child in node.value)
    out.file, out.line = loader.filename, node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to at most `limit` characters ("..." marks a cut); costs O(limit), not O(value).

    Error messages quote values with this: a 1 GB string or list must not be turned into a 1 GB message.
    """
    text = _bounded_repr(value, limit + 1)
    return text if len(text) <= limit else text[:max(limit - 3, 0)] + "..."


def _bounded_repr(value: Any, budget: int) -> str:
    """A repr that stops building once it is longer than `budget` (it may then be a little longer)."""
    if isinstance(value, (str, bytes)):
        return repr(value[:budget])
    if isinstance(value, (list, tuple, dict)):
        opening, closing = ("{", "}") if isinstance(value, dict) else ("(", ")") if isinstance(value, tuple) \
            else ("[", "]")
        items = value.items() if isinstance(value, dict) else value
        parts, size = [], 1
        for item in items:
            if size > budget:
                parts.append("...")
                break
            part = (f"{_bounded_repr(item[0], budget - size)}: {_bounded_repr(item[1], budget - size)}"
                    if isinstance(value, dict) else _bounded_repr(item, budget - size))
            parts.append(part)
            size += len(part) + 2
        trailing = "," if isinstance(value, tuple) and len(parts) == 1 and len(value) == 1 else ""
        return opening + ", ".join(parts) + trailing + closing
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * budget:
        return f"<a {value.bit_length()}-bit number>"
    return repr(value)


# Where an alias or a merge key may be: a '*' starting a token, '<<' or a '!!merge' tag. A file without
# any (nearly every file) skips the walk over its nodes; a match inside a quoted string only costs the walk.
_MAYBE_ALIAS = re.compile(r"(?:^|[\s\[{,])\*[^\s,\[\]{}]|<<|merge")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFUSED = "YAML aliases and anchors are not supported"


def _refuse_aliases(root: yaml.Node, filename: str) -> None:
    """Raise on the first node reached twice (an alias) or merge key, without expanding anything."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, root.start_mark.line + 1)]
    while stack:
        node, line = stack.pop()
        if id(node) in seen:
            raise ConfigError([Problem(filename, line, f"{_REFUSED} (an alias repeats the value anchored on "
                                                       f"line {node.start_mark.line + 1}; write the value out)")])
        seen.add(id(node))
        # Children go on the stack last first, so that the walk is in file order and the alias (the
        # second use) is the one reported, not the anchor.
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                if key.tag == _MERGE_TAG:
                    raise ConfigError([Problem(filename, key.start_mark.line + 1,
                                               f"{_REFUSED} (merge key '<<'; write the keys out)")])
                stack.append((value, key.start_mark.line + 1))
                stack.append((key, key.start_mark.line + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, node.start_mark.line + 1) for child in reversed(node.value))


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML text into SourceMap/SourceList/scalars.

    :raises ConfigError: with file:line when the text is not valid YAML or repeats a key.
    """
    loader = _Loader(text)
    loader.filename = filename
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _MAYBE_ALIAS.search(text):
            _refuse_aliases(node, filename)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([Problem(filename, line, f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(filename, 0, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigError([Problem(filename, 1, "invalid YAML: nested too deeply")]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str, max_bytes: int | None = None, limit_key: str = "") -> Any:
    """Read and parse a YAML file; see load_yaml. A file over `max_bytes` is refused before it is read
    (`limit_key` names the setting to raise in the message).

    :raises ConfigError: when the file cannot be read, is too big or cannot be parsed.
    """
    try:
        with open(path, "rb") as fh:
            if max_bytes is not None:
                size = os.fstat(fh.fileno()).st_size
                data = fh.read(max_bytes + 1)
                if size > max_bytes or len(data) > max_bytes:
                    raise ConfigError([Problem(path, 1, f"the file is {max(size, len(data)):,} bytes, more than "
                                                        f"the limit of {max_bytes:,}" +
                                               (f" ({limit_key})" if limit_key else ""))])
            else:
                data = fh.read()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError([Problem(path, 0, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(path, 0, f"not UTF-8 text: {exc.reason}")]) from None
    return load_yaml(text, path)
