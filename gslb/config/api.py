"""The `api:` key of the server config: where the HTTP API listens and the keys it asks for (docs/server.md).

`api: ADDR:PORT` (a plain string) is the listen address, as before; the mapping form adds the keys:

    api:
      listen: 127.0.0.1:8053     # or off
      token: ...                 # operator writes: overrides, reload ($GSLB_API_TOKEN)
      read_token: ...            # optional: reads need it too ($GSLB_API_READ_TOKEN)

The prober key (`health.secret`) only signs reports: it is refused as `api.token` so that a prober's
key can never change overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from gslb.config.kit import Custom, Invalid, Section
from gslb.config.yamlsrc import SourceMap
from gslb.errors import Problem

DEFAULT_LISTEN = "127.0.0.1:8053"
TOKEN_ENV = "GSLB_API_TOKEN"
READ_TOKEN_ENV = "GSLB_API_READ_TOKEN"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    listen: str | None = DEFAULT_LISTEN    # None: no HTTP API
    token: str | None = None               # operator writes; None: writes are refused (403)
    read_token: str | None = None          # None: reads are open to whoever reaches `listen`


def _listen(value: Any) -> str | None:
    return None if value in (None, False, "off") else str(value)


def _token(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid
    return value


# The tokens are keys: a message never quotes them.
_TOKEN = Custom("a non-empty string", {"type": "string", "minLength": 1}, _token, secret=True)
API_FIELDS = {"listen": Custom("ADDR:PORT, or off", {"type": ["string", "boolean", "null"]}, _listen),
              "read_token": _TOKEN, "token": _TOKEN}


def parse_api(value: Any, problems: list[Problem], where: tuple[str, int], present: bool) -> ApiSettings:
    """ApiSettings from the `api:` value (a string, a mapping, or absent when `present` is False);
    the tokens default to $GSLB_API_TOKEN and $GSLB_API_READ_TOKEN. Problems are appended."""
    token = os.environ.get(TOKEN_ENV) or None
    read_token = os.environ.get(READ_TOKEN_ENV) or None
    if not present:
        return ApiSettings(DEFAULT_LISTEN, token, read_token)
    if not isinstance(value, SourceMap):
        return ApiSettings(_listen(value), token, read_token)
    values = Section(value, problems, where[0], "api ").read(API_FIELDS)
    return ApiSettings(values.get("listen", DEFAULT_LISTEN), values.get("token", token),
                       values.get("read_token", read_token))


def key_problems(api: ApiSettings, secret: str | None, region_keys: dict[str, str],
                 where: tuple[str, int]) -> list[Problem]:
    """The operator token must not be a prober key: whoever holds a prober's key could drain."""
    if api.token is None:
        return []
    if api.token == secret:
        return [Problem(*where, "api token: the same as health.secret (the probers' key); "
                                "give operators a key of their own")]
    if api.token in region_keys.values():
        return [Problem(*where, "api token: the same as a key of health.region_keys; "
                                "give operators a key of their own")]
    return []
