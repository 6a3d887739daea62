"""policy: geo — the first rule matching the client (net, subdivision, country, continent, default)."""

from __future__ import annotations

from gslb.config.pools import geo_key_kind
from gslb.config.registry import POLICIES
from gslb.steering.policies.base import Context, Tier


def _matches(key: str, ctx: Context) -> bool:
    kind = geo_key_kind(key)
    if kind == "net":
        return key == ctx.net_rule     # matched once per client by the pool's net table (steering/decide.py)
    code = key.split(":", 1)[-1]
    loc = ctx.location
    return {"subdivision": loc.subdivision, "country": loc.country, "continent": loc.continent,
            "default": code}[kind] == code


@POLICIES.implements("geo")
def rank(ctx: Context) -> list[Tier]:
    """The matched rule's sites, in its order. No rule and no default: every site in file order."""
    for key, site_names in ctx.pool.geo:   # sorted at load: net, subdivision, country, continent, default
        if _matches(key, ctx):
            return [Tier((ctx.pool.site(name),), f"geo rule {key}") for name in site_names]
    return [Tier((site,), "geo: no rule matched, file order") for site in ctx.pool.sites]
