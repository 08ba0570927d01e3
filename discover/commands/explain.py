"""`discover explain SPEC`: state memory, size, nearest built-in and probed properties of a program."""
from __future__ import annotations

import argparse
import math


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="what a program is: memory, nearest built-in, properties",
                       description="Report a program's optimizer state (buffers per parameter and bytes for a "
                                   "model size), op count, the built-ins that behave most like it on probe "
                                   "inputs, and properties found by probing: sign-based, invariant to gradient "
                                   "scale, uses weight decay, bias-corrected.")
    p.add_argument("spec", metavar="SPEC", help="built-in name, WRAPPER+INNER, or path to a .opt file")
    p.add_argument("--params", type=float, default=1e8, metavar="N",
                   help="model size in parameters for the memory line (default 1e8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain
    from ..library import load

    if not (math.isfinite(args.params) and args.params >= 1):
        raise ValueError(f"--params must be a model size of at least 1 parameter, got {args.params:g}")
    print(explain(load(args.spec), int(args.params)))
    return 0
