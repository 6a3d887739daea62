"""`gslb drain SELECTOR --reason TEXT [--for DURATION] --api URL [--api URL ...]`: set a runtime override
(`down`, or `up` with --state up) on every node named, and `gslb undrain SELECTOR --api URL ...` (in
gslb/cmds/undrain.py) to clear it. One line per node; exit 1 when any node failed (docs/overrides.md)."""

from __future__ import annotations

import argparse
import concurrent.futures
import getpass
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from gslb.config.overrides import SelectorError, parse_duration, parse_selector

TIMEOUT = 5.0


def add_common(p: argparse.ArgumentParser) -> None:
    """The arguments drain and undrain share."""
    p.add_argument("selector", help="POOL, POOL/SITE or POOL/SITE/ADDRESS (an address may be a CIDR); "
                                    "ZONE:POOL/... when several zones have the pool")
    p.add_argument("--api", action="append", required=True, metavar="URL",
                   help="a node's API, e.g. http://10.0.0.1:8053 (repeat for every node)")
    p.add_argument("--token", default=None,
                   help="the operator token (api.token; default $GSLB_API_TOKEN)")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("drain", help="take a pool, site or endpoint out of the answers on every node named")
    add_common(p)
    p.add_argument("--reason", required=True, help="why (a ticket, the work): shown by gslb status and explain")
    p.add_argument("--for", dest="duration", default=None, metavar="DURATION",
                   help="end it after this long: 30m, 2h, 1d (default: until gslb undrain)")
    p.add_argument("--by", default=None, help="who (default: your user name)")
    p.add_argument("--state", choices=("down", "up"), default="down",
                   help="down (default): drain; up: answer it even when its checks fail")
    return p


def token_of(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get("GSLB_API_TOKEN") or None


def call(url: str, method: str, token: str | None, body: dict | None = None) -> tuple[int, dict]:
    """One API request; (status, JSON answer). :raises OSError: when the node cannot be reached."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            answer = json.load(exc)
        except ValueError:
            answer = {"error": exc.reason}
        return exc.code, answer if isinstance(answer, dict) else {"error": str(answer)[:200]}


def on_every_node(apis: list[str], ask: Callable[[str], str]) -> int:
    """Run `ask(api)` for every node at once; print `API: ok ...` or `API: error ...` per node in the
    order given; 0 when every node succeeded, else 1. `ask` raises RuntimeError with the reason on failure."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(apis))) as pool:
        futures = [pool.submit(ask, api.rstrip("/")) for api in apis]
    failed = 0
    for api, future in zip(apis, futures):
        try:
            print(f"{api}: ok: {future.result()}")
        except RuntimeError as exc:
            failed += 1
            print(f"{api}: error: {exc}")
        except (OSError, ValueError) as exc:
            failed += 1
            reason = getattr(exc, "reason", exc)
            print(f"{api}: error: cannot reach it: {reason}")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    try:
        selector = parse_selector(args.selector)
        if args.duration is not None:
            parse_duration(args.duration)
    except (SelectorError, ValueError) as exc:
        print(f"gslb drain: {exc}")
        return 2
    by = args.by or _user()
    body = {"selector": str(selector), "state": args.state, "reason": args.reason, "by": by}
    if args.duration is not None:
        body["for"] = args.duration
    token = token_of(args)

    def ask(api: str) -> str:
        status, answer = call(f"{api}/v1/overrides", "POST", token, body)
        if status != 200:
            raise RuntimeError(f"{status}: {answer.get('error', answer)}")
        o = answer["override"]
        until = f" until {o['until_text']}" if o.get("until_text") else ""
        n = o['matches']
        return f"{o['selector']} {o['state']}{until}, {n} endpoint{'s' if n != 1 else ''}"

    return on_every_node(args.api, ask)


def run_undrain(args: argparse.Namespace) -> int:
    """`gslb undrain`: clear the runtime override of the selector on every node (a node without one is ok)."""
    try:
        selector = parse_selector(args.selector)
    except SelectorError as exc:
        print(f"gslb undrain: {exc}")
        return 2
    token = token_of(args)
    query = urllib.parse.urlencode({"selector": str(selector)})

    def ask(api: str) -> str:
        status, answer = call(f"{api}/v1/overrides?{query}", "DELETE", token)
        if status == 200:
            return f"{selector} cleared (was {answer['cleared']['state']}: {answer['cleared']['reason']})"
        if status == 404:
            return f"{selector}: no runtime override here, nothing to clear"
        raise RuntimeError(f"{status}: {answer.get('error', answer)}")

    return on_every_node(args.api, ask)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None
