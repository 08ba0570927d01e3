"""`discover export SPEC [-o FILE.py] [--class-name NAME]`: a program as a self-contained torch optimizer file."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="write a program as a self-contained torch.optim.Optimizer file",
        description="Write one Python file that defines a torch.optim.Optimizer subclass running the program: "
                    "its hyperparameters are keyword arguments with the program's defaults, its docstring the "
                    "program's formulas. The file needs only torch (not discover) and trains as "
                    "discover.ProgramOptimizer(..., backend='foreach') does; their state_dicts load into each other.",
        epilog="example:\n  discover export runs/old/best.opt -o my_opt.py --class-name MyOpt\n"
               "  python -c \"from my_opt import MyOpt\"",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="built-in name, WRAPPER+INNER, or path to a .opt file")
    p.add_argument("-o", "--output", metavar="FILE.py", help="write here (default: print the file)")
    p.add_argument("--class-name", metavar="NAME",
                   help="the optimizer class's name (default: the program's name in CamelCase)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import class_name_for, export_source
    from ..library import load

    program = load(args.spec)
    name = args.class_name or class_name_for(program)
    source = export_source(program, name)
    if args.output:
        path = Path(args.output)
        if path.suffix != ".py":
            raise ValueError(f"the output {path} should end in .py (it is a Python module)")
        path.write_text(source, encoding="utf-8")
        print(f"wrote {path}: class {name}(torch.optim.Optimizer); use it as: from {path.stem} import {name}")
    else:
        print(source, end="")
    return 0
