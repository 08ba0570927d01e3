"""`discover check FILE...`: parse and type-check program files; exit 1 on any error."""
from __future__ import annotations

import argparse
import sys

from ..lang.errors import ProgramError
from ..lang.parse import parse_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check program files for errors",
                       description="Parse and type-check .opt files. Prints file:line:col messages; exits 1 if any fails.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            program = parse_file(path)
        except ProgramError as exc:
            print(exc, file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: ok ({program.name}: {len(program.body)} ops, state {', '.join(program.state_names) or '-'})")
    return 1 if failed else 0
