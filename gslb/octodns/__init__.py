"""octoDNS support: `gslb.octodns.GslbProvider` reads and writes gslb zone files (docs/migrating.md).

Needs the optional extra: `pip install 'gslb-server[octodns]'`.
"""

from __future__ import annotations

try:
    import octodns  # noqa: F401
except ImportError as exc:          # pragma: no cover - depends on the installation
    raise ImportError("gslb.octodns needs octoDNS: pip install 'gslb-server[octodns]' (or pip install octodns)") \
        from exc

from gslb.octodns.provider import GslbProvider, GslbProviderError

__all__ = ["GslbProvider", "GslbProviderError"]
