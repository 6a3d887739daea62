"""`gslb explain NAME`: why a client gets the answer it gets (the server's own decision code)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from gslb.cmds.apiclient import api_request
from gslb.config.latency import load_latency_table
from gslb.config.regions import load_regions
from gslb.config.zone import load_zones
from gslb.errors import ConfigError
from gslb.explain import explain
from gslb.health.snapshot import HealthSnapshot
from gslb.steering.client import Client
from gslb.steering.decide import SteeringData
from gslb.steering.location import Locator


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("explain", help="show how the answer for a name and client is decided")
    p.add_argument("name")
    p.add_argument("--type", default="A", choices=["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SOA", "SRV", "CAA",
                                                   "PTR"])
    who = p.add_mutually_exclusive_group()
    who.add_argument("--client", metavar="IP", help="the client's address (default 127.0.0.1)")
    who.add_argument("--subnet", metavar="CIDR", help="the client subnet, as a resolver sends it in ECS")
    p.add_argument("--api", default="http://127.0.0.1:8053",
                   help="ask this running server, with its live health (default http://127.0.0.1:8053)")
    p.add_argument("--offline", action="store_true", help="do not ask a server: decide from zone files")
    p.add_argument("--zones", default="zones", metavar="DIR", help="zones for --offline (default ./zones)")
    p.add_argument("--data", default="data", metavar="DIR", help="GeoIP and regions for --offline")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _client(args: argparse.Namespace) -> Client:
    if args.subnet:
        return Client(ipaddress.ip_network(args.subnet, strict=False), True)
    return Client(ipaddress.ip_network(args.client or "127.0.0.1"))


def _ask_server(args: argparse.Namespace) -> dict | None:
    params = {"name": args.name, "type": args.type}
    if args.subnet:
        params["subnet"] = args.subnet
    else:
        params["client"] = args.client or "127.0.0.1"
    url = f"{args.api.rstrip('/')}/v1/explain?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(api_request(url), timeout=3) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError):
        return None


def run(args: argparse.Namespace) -> int:
    try:
        client = _client(args)
    except ValueError as exc:
        print(f"gslb explain: {exc}")
        return 2
    result = None if args.offline else _ask_server(args)
    if result is None:
        try:
            regions = load_regions(os.path.join(args.data, "regions.yaml"))
            zones = load_zones(args.zones, regions)
            data = SteeringData(regions, load_latency_table(os.path.join(args.data, "latency.yaml")))
        except ConfigError as exc:
            print(exc)
            return 1
        geoip = os.path.join(args.data, "gslb-geo.mmdb")
        locator = Locator(geoip if os.path.exists(geoip) else None)
        result = explain(zones, args.name, args.type, client, HealthSnapshot(), data, locator).as_json()
        result["lines"].insert(0, f"(offline: zones from {args.zones}, health unknown = up)")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(result["lines"]))
    return 0
