"""Prometheus lines for what the DNS handler refused or limited (bad input, our failures, RRL)."""

from __future__ import annotations

from typing import Any


def _counter(name: str, help_text: str, value: int) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]


def dns_guard_metrics(handler: Any) -> list[str]:
    """Counters of a `gslb.dns.server.Handler`: malformed and unsupported queries, internal failures,
    and responses held back by response rate limiting (dropped, or slipped as TC=1)."""
    lines = _counter("gslb_dns_malformed_total", "Queries answered FORMERR (could not be read).", handler.malformed)
    lines += _counter("gslb_dns_unsupported_total", "Queries answered NOTIMP or BADVERS (opcode, EDNS version).",
                      handler.unsupported)
    lines += _counter("gslb_dns_internal_errors_total", "Queries answered SERVFAIL because of a bug (see the log).",
                      handler.failures)
    rrl = handler.rate_limit
    lines += [("# HELP gslb_dns_rrl_limited_total UDP responses held back by rate limiting: dropped, or sent "
               "as a TC=1 answer (slipped)."), "# TYPE gslb_dns_rrl_limited_total counter",
              f'gslb_dns_rrl_limited_total{{action="dropped"}} {rrl.dropped if rrl else 0}',
              f'gslb_dns_rrl_limited_total{{action="slipped"}} {rrl.slipped if rrl else 0}']
    return lines
