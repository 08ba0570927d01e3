"""`discover diff A B`: statement-level diff of two programs after canonical renaming."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff", help="statement-level diff of two programs",
                       description="Rename states, locals and temporaries of both programs by order of first "
                                   "definition or use, then diff them one statement per line. Also says whether "
                                   "they make the same updates on probe inputs.")
    p.add_argument("a", metavar="A", help="built-in name, WRAPPER+INNER, or path to a .opt file")
    p.add_argument("b", metavar="B")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.diff import diff
    from ..library import load

    print(diff(load(args.a), load(args.b), names=(args.a, args.b)))
    return 0
