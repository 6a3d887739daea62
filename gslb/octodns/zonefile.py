"""Read a gslb zone file as plain data and write one atomically, in a stable, readable layout."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import yaml

from gslb.config.yamlsrc import load_yaml_file

HEADER = ("# Written by octoDNS (gslb.octodns.GslbProvider): the next `octodns-sync` replaces records and pools;\n"
          "# other keys (soa, ttl, ecs) are kept. Format: docs/zone-format.md\n")
# Top-level keys in the order a reader expects them; others (added later) follow in file order.
TOP_ORDER = ("origin", "ttl", "soa", "ecs", "records", "pools")


def as_plain(value: Any) -> Any:
    """SourceMap/SourceList (dict/list subclasses carrying lines) as plain dicts and lists."""
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    return value


def read_zone_file(path: str) -> dict[str, Any] | None:
    """The zone file's YAML as plain data, None when there is no such file.

    :raises gslb.errors.ConfigError: the file cannot be read or is not YAML (file:line in the message).
    """
    if not os.path.exists(path):
        return None
    data = load_yaml_file(path)
    return as_plain(data) if isinstance(data, dict) else {}


class _Dumper(yaml.SafeDumper):
    """Block style for the structure, flow style (`{address: 192.0.2.1, weight: 3}`) for leaves."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)      # indent lists under their key

    def ignore_aliases(self, data: Any) -> bool:
        return True         # gslb refuses YAML aliases: a list used twice is written out twice


def _is_leaf(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not isinstance(v, dict) and (not isinstance(v, list) or _is_leaf(v)) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, list) and (not isinstance(v, dict) or _is_leaf(v)) for v in value)
    return True


def _short(data: Any) -> bool:
    return len(str(data)) <= 90         # a longer mapping on one line would wrap mid-way


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = _is_leaf(data) and _short(data)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow or None)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow or None)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_zone(zone: dict[str, Any]) -> str:
    """The zone as YAML text: top-level keys in TOP_ORDER, the rest as given."""
    ordered = {k: zone[k] for k in TOP_ORDER if k in zone}
    ordered.update({k: v for k, v in zone.items() if k not in ordered})
    body = yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110,
                     default_flow_style=False)
    return HEADER + body


def write_atomically(path: str, text: str) -> None:
    """Replace `path` with `text` so a reader (gslb's reloader) sees the old file or the new one, never half.

    The temporary file is hidden (`.name.tmp...`): gslb skips hidden files when it scans a zones directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)        # the rename itself survives a crash
    finally:
        os.close(dir_fd)
