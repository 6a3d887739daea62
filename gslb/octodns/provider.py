"""`GslbProvider`: octoDNS reads and writes gslb zone files (docs/migrating.md, "octoDNS").

```yaml
providers:
  gslb:
    class: gslb.octodns.GslbProvider
    directory: ./zones                      # gslb's zones directory
    soa: {mname: ns1.example.com., rname: hostmaster.example.com.}   # only for new zone files
```

A zone lives in `DIRECTORY/<zone name>yaml` (`example.com.yaml`, as gslb's own example and octoDNS's
YamlProvider name them; `.yml` is read too). The provider owns `records:` and `pools:`; it keeps the
file's other keys (soa, ttl, ecs). Before a file is replaced the new text is loaded by gslb's own zone
loader, so `octodns-sync --doit` never leaves a zone gslb would refuse.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from octodns.provider import ProviderException
from octodns.provider.base import BaseProvider
from octodns.record import Record, Update

from gslb.config.regions import Regions
from gslb.config.yamlsrc import load_yaml
from gslb.config.zone import parse_zone, zone_files
from gslb.errors import ConfigError
from gslb.octodns.mapping import (
    STATIC_TYPES,
    MappingError,
    OctoRecord,
    common_ttl,
    from_gslb,
    plain,
    to_gslb,
)
from gslb.octodns.zonefile import dump_zone, read_zone_file, write_atomically

SOA_DEFAULTS = {"refresh": 3600, "retry": 600, "expire": 1209600, "minimum": 60}


class GslbProviderError(ProviderException):
    """A zone that cannot be read or written; the message names the file or the record."""


class GslbProvider(BaseProvider):
    """octoDNS provider (and source) for a directory of gslb zone files."""

    SUPPORTS_GEO = False                 # octoDNS's legacy `geo:` records; dynamic records are the way
    SUPPORTS_DYNAMIC = True
    SUPPORTS_POOL_VALUE_STATUS = True
    SUPPORTS_DYNAMIC_SUBNETS = True
    SUPPORTS_MULTIVALUE_PTR = True
    SUPPORTS_ROOT_NS = True
    SUPPORTS = frozenset(STATIC_TYPES)

    def __init__(self, id: str, directory: str, soa: dict[str, Any] | None = None, *args, **kwargs):
        self.log = logging.getLogger(f"GslbProvider[{id}]")
        super().__init__(id, *args, **kwargs)
        self.directory = directory
        self.soa = dict(soa or {})

    # --- reading ---------------------------------------------------------------------------------

    def _path(self, zone_name: str) -> str:
        """The zone's file: an existing `<name>yaml` or `<name>yml`, else where a new one goes."""
        for ext in ("yaml", "yml"):
            path = os.path.join(self.directory, f"{zone_name}{ext}")
            if os.path.exists(path):
                return path
        return os.path.join(self.directory, f"{zone_name}yaml")

    def list_zones(self) -> list[str]:
        """Zone names of the directory's files, from their `origin:` (octodns-dump, dynamic zone config)."""
        try:
            files = zone_files(self.directory)
        except ConfigError:
            return []
        names = []
        for path in files:
            data = self._read(path) or {}
            origin = str(data.get("origin") or "")
            if origin:
                names.append(origin if origin.endswith(".") else origin + ".")
        return sorted(names)

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            return read_zone_file(path)
        except ConfigError as exc:
            raise GslbProviderError(str(exc)) from None

    def populate(self, zone, target: bool = False, lenient: bool = False) -> bool:
        """Add the records of the zone's gslb file to `zone`; False when there is no file yet."""
        path = self._path(zone.name)
        data = self._read(path)
        if data is None:
            self.log.info("populate: %s does not exist yet", path)
            return False
        origin = str(data.get("origin") or "").lower()
        if origin.rstrip(".") != zone.name.rstrip(".").lower():
            raise GslbProviderError(f"{path}: origin {origin or '(missing)'} is not the zone {zone.name}")
        try:
            records = from_gslb(zone.name, data)
        except MappingError as exc:
            raise GslbProviderError(f"{path}: {exc}") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # a file gslb itself would refuse; its loader says where
            raise GslbProviderError(f"{path}: cannot read ({type(exc).__name__}: {exc}); "
                                    f"`gslb check {path}` shows file:line") from None
        for rec in records:
            record = Record.new(zone, rec.name, {"type": rec.type, **rec.data}, source=self, lenient=lenient)
            zone.add_record(record, lenient=lenient)
        self.log.info("populate: %d records from %s", len(records), path)
        return True

    # --- planning --------------------------------------------------------------------------------

    def _process_desired_zone(self, desired):
        desired = super()._process_desired_zone(desired)
        try:            # refuse at plan time, not half-way through --doit
            to_gslb(desired.name, [self._octo(r) for r in desired.records])
        except MappingError as exc:
            raise GslbProviderError(f"{self.id}: {exc}") from None
        return desired

    def _extra_changes(self, existing, desired, changes):
        """Healthcheck and `octodns.gslb` edits, which octoDNS's record comparison does not look at."""
        changed = {(c.record.name, c.record._type) for c in changes}
        have = {(r.name, r._type): r for r in existing.records}
        extra = []
        for record in desired.records:
            key = (record.name, record._type)
            if key in changed or key not in have or not getattr(record, "dynamic", None):
                continue
            if self._health_key(record) != self._health_key(have[key]):
                extra.append(Update(have[key], record))
        return extra

    @staticmethod
    def _health_key(record) -> tuple:
        gslb = plain(record.octodns.get("gslb"))
        return (record.healthcheck_protocol, record.healthcheck_host(), record.healthcheck_path,
                record.healthcheck_port, repr(gslb))

    @staticmethod
    def _octo(record) -> OctoRecord:
        return OctoRecord(record.name, record._type, plain(dict(record.data)))

    # --- writing ---------------------------------------------------------------------------------

    def _apply(self, plan) -> None:
        zone = plan.desired
        copy = plan.existing.copy()
        copy.apply(plan.changes)
        records = [self._octo(r) for r in copy.records]
        path = self._path(zone.name)
        base = self._read(path) or {}
        zone_ttl = int(base.get("ttl") or common_ttl(records))
        try:
            out_records, out_pools = to_gslb(zone.name, records, zone_ttl)
        except MappingError as exc:
            raise GslbProviderError(f"{self.id}: {exc}") from None
        new = dict(base)
        new.setdefault("origin", zone.name)
        new["ttl"] = zone_ttl
        if "soa" not in new:
            new["soa"] = self._new_soa(zone.name, records)
        new["records"] = out_records
        if out_pools:
            new["pools"] = out_pools
        else:
            new.pop("pools", None)
        text = dump_zone(new)
        try:
            parse_zone(load_yaml(text, path), path, Regions.empty())
        except ConfigError as exc:
            raise GslbProviderError(f"{self.id}: the zone written for {zone.name} would not load in gslb, "
                                    f"{path} is unchanged:\n{exc}") from None
        write_atomically(path, text)
        self.log.info("_apply: wrote %s (%d names, %d pools)", path, len(out_records), len(out_pools))

    def _new_soa(self, zone_name: str, records: list[OctoRecord]) -> dict[str, Any]:
        """The SOA of a new zone file: the `soa:` option, else the first apex NS and hostmaster@zone."""
        soa = {"mname": None, "rname": f"hostmaster.{zone_name}", **SOA_DEFAULTS, **self.soa}
        if soa["mname"] is None:
            ns = sorted(v for r in records if r.name == "" and r.type == "NS" for v in r.values)
            if not ns:
                raise GslbProviderError(f"{self.id}: {zone_name}: a new gslb zone needs an SOA: give the provider "
                                        f"soa: {{mname: ..., rname: ...}} or the zone an apex NS record")
            soa["mname"] = ns[0]
        return soa
