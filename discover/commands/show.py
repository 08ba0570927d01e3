"""`discover show SPEC [--as dsl|torch|math|latex] [--torch] [--numeric]`: print a program."""
from __future__ import annotations

import argparse

from ..lang.printer import unparse
from ..library import load

VIEWS = {"math": "math_view", "latex": "latex_view"}
"""The views of `discover.analysis.views` by name (imported when asked for: sympy is slow to import)."""
NUMERIC_VIEWS = {"math": "numeric_view", "latex": "numeric_latex_view"}
"""Views with hyperparameters at their values and constants folded (``--numeric``), by name."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a program (DSL, generated torch code, ...)",
                       description="Print a built-in, a composition such as lookahead+adam, or a .opt file.")
    p.add_argument("spec", metavar="SPEC", help="built-in name, WRAPPER+INNER, or path to a .opt file")
    p.add_argument("--as", dest="view", default="dsl", help="dsl (default), torch, math or latex")
    p.add_argument("--torch", action="store_const", const="torch", dest="view",
                   help="print the generated torch source (same as --as torch)")
    p.add_argument("--numeric", action="store_true",
                   help="with --as math or latex: hyperparameters at their default values, constants folded")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    program = load(args.spec)
    view = args.view
    if args.numeric:
        if view not in NUMERIC_VIEWS:
            raise ValueError(f"--numeric is for --as {' or '.join(sorted(NUMERIC_VIEWS))}, not --as {view}")
        print(_view(NUMERIC_VIEWS[view])(program))
        return 0
    if view == "dsl":
        print(unparse(program), end="")
        return 0
    if view == "torch":
        from ..compile import torch_source

        print("# The generated step alone (it uses discover's runtime); for a file that runs on its own,\n"
              "# with an optimizer class: discover export SPEC -o my_opt.py")
        print(torch_source(program), end="")
        return 0
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}: choose dsl, torch, {', '.join(sorted(VIEWS))}")
    print(_view(VIEWS[view])(program))
    return 0


def _view(name: str):
    from ..analysis import views

    return getattr(views, name)
