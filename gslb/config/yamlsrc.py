"""A YAML loader that remembers where every value came from, so that errors can say file:line.

Mappings load as `SourceMap` and sequences as `SourceList`; both carry the file name, their own line,
and the line of each of their values (`line_of(key)`). Scalars stay plain Python values.
"""

from __future__ import annotations

from typing import Any

import yaml

from gslb.errors import ConfigError, Problem


class SourceMap(dict):
    """A dict loaded from YAML that knows the file and the line of itself and of each value."""

    file: str = "?"
    line: int = 0
    lines: dict

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
    loader.flatten_mapping(node)
    out = SourceMap()
    out.file, out.line, out.lines = loader.filename, node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
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


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML text into SourceMap/SourceList/scalars.

    :raises ConfigError: with file:line when the text is not valid YAML or repeats a key.
    """
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([Problem(filename, line, f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(filename, 0, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def load_yaml_file(path: str) -> Any:
    """Read and parse a YAML file; see load_yaml.

    :raises ConfigError: when the file cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError([Problem(path, 0, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(path, 0, f"not UTF-8 text: {exc.reason}")]) from None
    return load_yaml(text, path)
