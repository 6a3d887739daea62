"""`gslb proxy`: not written yet."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return sub.add_parser("proxy", help="(not written yet)")


def run(args: argparse.Namespace) -> int:
    raise SystemExit("gslb proxy: not written yet")
