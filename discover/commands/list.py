"""`discover list`: the built-in programs, one line each."""
from __future__ import annotations

import argparse
import re

from ..library import builtin_names, load


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the built-in programs",
                       description="List the built-in programs with a one-line description and their state per parameter.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in builtin_names():
        program = load(name)
        summary = first_sentence(program.doc)
        states = ", ".join(("scalar " if s.scalar else f"{s.shape} " if s.shape else "") + s.name
                           for s in program.states) or "-"
        n_buffers = sum(not s.scalar for s in program.states)
        rows.append((name, f"{n_buffers} buffer{'s' if n_buffers != 1 else ''} ({states})", summary))
    width = max(len(r[0]) for r in rows)
    swidth = max(len(r[1]) for r in rows)
    print(f"{'program':<{width}}  {'state per parameter':<{swidth}}  description")
    for name, states, summary in rows:
        print(f"{name:<{width}}  {states:<{swidth}}  {summary}")
    return 0


def first_sentence(doc: str) -> str:
    """The first sentence of a program's description, even when it runs over several lines.

    Example:
        >>> first_sentence("Lookahead: every k steps the slow weights\\nmove. Use it as lookahead+adam.")
        'Lookahead: every k steps the slow weights move.'
    """
    text = " ".join(doc.split())
    match = re.search(r"\.(\s|$)", text)  # a period ending a word, not the one in torch.optim.SGD
    return text[: match.start() + 1] if match else text
