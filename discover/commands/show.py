"""`discover show SPEC [--as dsl|torch] [--torch]`: print a program."""
from __future__ import annotations

import argparse

from ..lang.printer import unparse
from ..library import load

VIEWS = {}
"""Extra views by name: view(program) -> str. Modules add theirs here (math, latex, ...)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a program (DSL, generated torch code, ...)",
                       description="Print a built-in, a composition such as lookahead+adam, or a .opt file.")
    p.add_argument("spec", metavar="SPEC", help="built-in name, WRAPPER+INNER, or path to a .opt file")
    p.add_argument("--as", dest="view", default="dsl", help="dsl (default), torch, math or latex")
    p.add_argument("--torch", action="store_const", const="torch", dest="view",
                   help="print the generated torch source (same as --as torch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    program = load(args.spec)
    view = args.view
    if view == "dsl":
        print(unparse(program), end="")
        return 0
    if view == "torch":
        from ..compile import torch_source

        print(torch_source(program), end="")
        return 0
    _load_views()
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: choose dsl, torch, {', '.join(sorted(VIEWS))}")
    print(VIEWS[view](program))
    return 0


def _load_views() -> None:
    try:
        from ..analysis import views  # noqa: F401  (registers math/latex)
    except ImportError:
        pass
