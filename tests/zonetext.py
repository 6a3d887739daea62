"""The zone the functional tests share: one load-balanced name, `www`, answered by the pool `web`.

Each test says in its call what matters to it (the sites and their addresses, the check, the policy, any
other pool key); the SOA, NS and record lines that no test looks at are written once here.
"""

from __future__ import annotations


def pool_zone(origin: str, sites: dict[str, list[str]], *, check: str | None = "null", policy: str = "failover",
              **pool_keys: object) -> str:
    """Zone text for ORIGIN whose `www` is pool `web` with POLICY over SITES ({site: [address, ...]}).

    `check` is the pool's check as YAML flow text ("null": none; None leaves the key out, so the pool gets
    the default check); `pool_keys` (ttl=5, all_down="servfail", answers=4) are written into the pool
    as they are. Sites stand at lat 0, lon 0: location plays no part in a failover or weighted pool.
    """
    origin = origin.rstrip(".") + "."
    lines = [
        f"origin: {origin}",
        f"soa: {{mname: ns1.{origin}, rname: h.{origin}}}",
        "records:",
        '  "@": {NS: ns1.other.test.}',
        "  www: {pool: web}",
        "pools:",
        "  web:",
        f"    policy: {policy}",
        *(f"    {key}: {value}" for key, value in pool_keys.items()),
        *([f"    check: {check}"] if check is not None else []),
        "    sites:",
        *(f"      {name}: {{lat: 0, lon: 0, endpoints: [{', '.join(addresses)}]}}" for name, addresses in sites.items()),
    ]
    return "\n".join(lines) + "\n"


def http_check(port: int, **keys: object) -> str:
    """An http check of /healthz on PORT as YAML flow text; `keys` (interval=0.25, fall=1) are added."""
    extra = "".join(f", {key}: {value}" for key, value in keys.items())
    return f"{{type: http, port: {port}, path: /healthz{extra}}}"
