"""The `gslb` command. Each verb lives in its own module under gslb/cmds/ (like octoDNS's cmds/):
the module has `add_parser(subparsers)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib import metadata

from gslb import logs

DISTRIBUTION = "gslb-server"   # the name on PyPI; the command and the import package are `gslb`
VERBS = ("serve", "check", "explain", "probe", "status", "proxy", "drain", "undrain")


def version() -> str:
    """The installed distribution's version; gslb.__version__ when run from a tree that is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from gslb import __version__
        return __version__


def chosen_verb(argv: list[str] | None) -> str | None:
    """The verb named on the command line, if any."""
    return next((a for a in (sys.argv[1:] if argv is None else argv) if a in VERBS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a verb, only that verb's module is imported: `gslb drain` during an
    incident does not wait for the imports of the server (aiohttp, dnslib, steering), about a quarter of the
    time of importing every verb."""
    parser = argparse.ArgumentParser(prog="gslb", description="gslb: global server load balancer")
    parser.add_argument("--version", action="version", version=f"gslb {version()}")
    parser.add_argument("--log-level", default=os.environ.get("GSLB_LOG_LEVEL", "INFO"),
                        help="DEBUG, INFO, WARNING or ERROR (default INFO, or $GSLB_LOG_LEVEL)")
    parser.add_argument("--log-format", default=os.environ.get("GSLB_LOG_FORMAT", "text"), choices=("text", "json"),
                        help="text, or json: one object per line with stable keys (docs/observability.md; "
                             "default text, or $GSLB_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    chosen = chosen_verb(argv)
    for verb in (chosen,) if chosen else VERBS:
        module = importlib.import_module(f"gslb.cmds.{verb}")
        verb_parser = module.add_parser(sub)
        verb_parser.set_defaults(run=module.run)
        # Also after the verb (`gslb serve --log-format json`); SUPPRESS keeps the global value when absent.
        verb_parser.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS,
                                 help="text or json log lines (as before the verb)")
        verb_parser.add_argument("--log-level", default=argparse.SUPPRESS, help="as before the verb")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `gslb` console script; returns the exit status."""
    args = build_parser(argv).parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    return args.run(args)
