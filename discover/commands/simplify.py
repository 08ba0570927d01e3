"""`discover simplify FILE [-o OUT] [--ablate --tasks ... --tolerance X]`: shrink a program to its essence."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import ListAction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simplify", help="simplify a program, proving each step by probe traces",
        description="Remove dead code and dead state, fold constants, share common subexpressions, "
                    "propagate copies and simplify algebra with sympy; every step is checked by comparing "
                    "the program's updates on probe inputs before and after. With --ablate, also drop "
                    "ops whose removal leaves the fitness on --tasks within --tolerance. Prints (or writes) "
                    "the program in nested form and a report of what changed. A raw program that assigns "
                    "to a hyperparameter (lr = lr * 0.0002) is read with the assignment as a new local.")
    p.add_argument("file", metavar="FILE", help="a .opt file (or a built-in name)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the simplified program here")
    p.add_argument("--ablate", action="store_true", help="evaluation-driven simplification (trains programs)")
    p.add_argument("--tasks", nargs="+", action=ListAction, metavar="TASK",
                   help="tasks for --ablate (default: the search's default tasks; 'logistic' with --fitness proxy)")
    p.add_argument("--tolerance", type=float, default=0.02,
                   help="keep an ablation when the fitness moves by at most this fraction of it (default 0.02: 2%%)")
    p.add_argument("--keep-improvements", action="store_true",
                   help="also keep ablations that improve the fitness by more than the tolerance")
    p.add_argument("--fitness", choices=("evaluator", "proxy"), default="evaluator",
                   help="evaluator: each candidate at its lr tuned per task, loss relative to tuned AdamW "
                        "(discover.evaluate.tuned_fitness); proxy: short training runs with "
                        "discover.ProgramOptimizer (default evaluator)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ablation's training runs")
    p.add_argument("--keep-constants", action="store_true",
                   help="do not turn EMA coefficients and weight-decay factors into named hyperparameters")
    p.add_argument("-v", "--verbose", action="store_true", help="print every ablation candidate's fitness")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.lenient import load_lenient
    from ..analysis.simplify import simplify
    from ..lang.printer import unparse

    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise ValueError(f"--tolerance must be a fitness change of 0 or more, got {args.tolerance:g}")
    if args.output and Path(args.output).is_dir():
        raise ValueError(f"-o {args.output} is a directory; give the file to write, e.g. {Path(args.output) / 'simple.opt'}")
    program, notes = load_lenient(args.file)
    fitness = None
    if args.ablate:
        fitness = _fitness(args)
    elif args.tasks:
        raise ValueError("--tasks is only used with --ablate")
    log = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    result = simplify(program, notes=notes, fitness=fitness, tolerance=args.tolerance,
                      keep_improvements=args.keep_improvements, lift_constants=not args.keep_constants, log=log)
    out = result.program.with_(doc=f"Simplified from {args.file} by `discover simplify`.")
    text = unparse(out)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {args.output}")
    else:
        print(text)
    print(result.report())
    return 0 if result.equivalent else 1


def _fitness(args: argparse.Namespace):
    from ..tasks import DEFAULT_TASKS, get_task

    tasks = args.tasks or (["logistic"] if args.fitness == "proxy" else list(DEFAULT_TASKS))
    for t in tasks:
        get_task(t)  # an unknown task is a clear error before anything trains
    if args.fitness == "proxy":
        from ..analysis.compare import proxy_fitness

        return proxy_fitness(tasks, seeds=(args.seed,))
    # each candidate at its own lr tuned per task: an ablated program is a different optimizer,
    # whose best lr may be far from the original's
    from ..evaluate.tuned import tuned_fitness

    return tuned_fitness(tasks, seeds=(args.seed,))
