"""The `discover` command (also `python -m discover`).

Each subcommand is a module in `discover.commands` with ``register(subparsers)``
that adds its parser and sets ``func(args) -> int`` as the handler; this file
only collects them. Errors a user can fix (bad program text, unknown names)
print one clear message and exit 1, never a traceback.

Example:
    $ discover --version
    $ discover list
    $ discover show lion --torch
    $ discover check my_optimizer.opt
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import __version__, commands
from .extras import DISTRIBUTION
from .lang.errors import ProgramError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discover",
        description="Symbolic optimizer discovery: evolve optimizer programs, run them as torch optimizers, simplify them.")
    parser.add_argument("--version", action="version", version=f"discover {__version__} ({DISTRIBUTION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ProgramError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"discover {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ndiscover {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
