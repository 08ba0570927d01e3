"""`discover check FILE...`: parse and type-check program files (exit 1 on any error); warn about likely mistakes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..lang.errors import ProgramError
from ..lang.lint import lint
from ..lang.parse import parse_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check program files for errors",
                       description="Parse and type-check .opt files. Prints file:line:col messages; exits 1 if any fails. "
                                   "Also warns about valid programs that probably do not do what was meant: a "
                                   "state returned in another state's place, a state never updated, no `lr`.")
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
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            for warning in lint(program, text, path):
                print(warning, file=sys.stderr)
    return 1 if failed else 0
