"""`gslb status`: the health a running server believes, per pool, site, endpoint and prober region; with
several `--api`, every node side by side and where they disagree (gslb/cmds/fleet.py)."""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from gslb.cmds.apiclient import api_request
from gslb.cmds.fleet import Node, compare, render

DEFAULT_API = "http://127.0.0.1:8053"
TIMEOUT = 5.0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("status", help="show the health a running server believes; several --api: compare nodes",
                       description="One --api: that server's health. Several: every node's endpoint states, "
                                   "overrides and zone serials side by side; exit status 2 when the nodes "
                                   "disagree, 1 when a node cannot be read, 0 when all agree.")
    p.add_argument("--api", action="append", metavar="URL",
                   help=f"a server's API; repeat for every node (default {DEFAULT_API})")
    p.add_argument("--token", metavar="TOKEN",
                   help="bearer token for the reads (default $GSLB_API_READ_TOKEN, else $GSLB_API_TOKEN)")
    p.add_argument("--json", action="store_true", help="print the JSON read (and, with several nodes, the comparison)")
    return p


def _get(url: str, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    with urllib.request.urlopen(api_request(url, headers=headers), timeout=TIMEOUT) as resp:
        return json.load(resp)


def _label(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc or url


def read_node(url: str, token: str | None) -> Node:
    """A node's /v1/health and /v1/zones, or the reason they could not be read."""
    base = url.rstrip("/")
    node = Node(_label(base), base)
    try:
        node.health = _get(f"{base}/v1/health", token)
        node.zones = _get(f"{base}/v1/zones", token)
    except urllib.error.HTTPError as exc:
        node.error = f"HTTP {exc.code} {exc.reason}" + (" (a read token is needed: --token or "
                                                       "$GSLB_API_READ_TOKEN)" if exc.code == 401 else "")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        node.error = str(getattr(exc, "reason", exc))
    if node.health is not None and node.health.get("node_id"):
        node.label = str(node.health["node_id"])
    return node


def run(args: argparse.Namespace) -> int:
    apis = args.api or [DEFAULT_API]
    if len(apis) == 1:
        url = f"{apis[0].rstrip('/')}/v1/health"
        try:
            health = _get(url, args.token)
        except urllib.error.HTTPError as exc:
            print(f"gslb status: cannot read {url}: HTTP {exc.code} {exc.reason}")
            return 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"gslb status: cannot read {url}: {exc}")
            return 1
        # Imported here: the fleet view (and `gslb drain` during an incident) needs none of the server's imports.
        from gslb.api.health import render_text
        print(json.dumps(health, indent=2) if args.json else render_text(health))
        return 0
    with ThreadPoolExecutor(max_workers=min(len(apis), 16)) as pool:
        nodes = list(pool.map(lambda u: read_node(u, args.token), apis))
    _unique_labels(nodes)
    view = compare(nodes, time.time())
    if args.json:
        print(json.dumps({"nodes": [{"label": n.label, "url": n.url, "error": n.error, "health": n.health,
                                     "zones": n.zones} for n in nodes],
                          "disagreements": view.disagreements, "warnings": view.warnings,
                          "unreachable": view.unreachable, "exit_status": view.exit_status}, indent=2))
    else:
        print(render(view))
    return view.exit_status


def _unique_labels(nodes: list[Node]) -> None:
    """Two nodes with the same node_id (a copied config) are told apart by their address."""
    seen: dict[str, int] = {}
    for n in nodes:
        seen[n.label] = seen.get(n.label, 0) + 1
    for n in nodes:
        if seen[n.label] > 1:
            n.label = f"{n.label}@{_label(n.url)}"
