"""Typed keys of the API application."""

from typing import Any

from aiohttp import web

SERVER = web.AppKey("server", Any)   # the running gslb.server.Server
