"""gslb: a global server load balancer.

Rooms (see docs/architecture.md):
  config/   YAML -> frozen model, every error with file:line
  health/   probes, rise/fall, quorum, the health snapshot
  steering/ the pure decision: zone + health + client location -> endpoints
  dns/      the wire: sockets, fast path, RFC-correct responses
  api/      the HTTP API
  proxy/    the regional L7 reverse proxy
"""

__version__ = "0.1.0"
