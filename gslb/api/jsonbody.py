"""Reading a JSON request body with bounds: size and nesting depth are checked before parsing, so a
deeply nested or huge body gets a 400/413 with a clear message, never a RecursionError or a stalled loop."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

MAX_JSON_BYTES = 64 * 1024     # an override or any other API call body is a few dozen bytes
MAX_JSON_DEPTH = 32
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


class BadJson(Exception):
    """A body that is not acceptable JSON; `status` is the HTTP answer (400 or 413)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in `data` (brackets inside strings do not count)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b'""', data)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body no deeper than `max_depth`. :raises BadJson:"""
    if json_depth(data) > max_depth:
        raise BadJson(f"JSON body nested deeper than {max_depth} levels")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:   # RecursionError: cannot happen past the depth check
        raise BadJson(f"body is not JSON: {str(exc)[:100]}") from None


async def read_json(request: web.Request, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The request's JSON body, at most `max_bytes` long and `max_depth` deep. :raises BadJson:"""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BadJson(f"JSON body larger than {max_bytes} bytes", 413)
    body = bytearray()
    while chunk := await request.content.read(2**14):
        body += chunk
        if len(body) > max_bytes:
            raise BadJson(f"JSON body larger than {max_bytes} bytes", 413)
    return parse_json(bytes(body), max_depth)
