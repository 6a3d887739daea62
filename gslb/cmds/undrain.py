"""`gslb undrain SELECTOR --api URL [--api URL ...]`: clear the runtime override of SELECTOR on every node
named (what `gslb drain` set); one line per node, exit 1 when any node failed (docs/overrides.md)."""

from __future__ import annotations

import argparse

from gslb.cmds.drain import add_common, run_undrain


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("undrain", help="clear a drain (runtime override) on every node named")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    return run_undrain(args)
