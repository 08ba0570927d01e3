"""`discover validate PROGRAM... [--baselines adam,adamw] [--seeds N] [--tasks ...] [--json]`."""
from __future__ import annotations

import argparse
import json
import sys

from . import ListAction


def register(sub: argparse._SubParsersAction) -> None:
    from ..tasks import VALIDATE_TASKS

    p = sub.add_parser(
        "validate", help="check programs against tuned baselines on tasks the search never sees",
        description="An independent check of discovered programs: each program and baseline gets its learning "
                    "rate tuned per task on a wide grid around its own lr (0.01x to 100x in half decades, refined "
                    "to quarter decades around the best and extended at the edges, on a tuning seed), then trains "
                    "at that lr on --seeds fresh seeds. Prints each task's final validation loss (mean ± standard "
                    "error) and each program's geometric-mean loss ratio to each baseline with its standard error, "
                    "paired by seed; 'better' means below 1 by more than two standard errors.",
        epilog="examples:\n  discover validate runs/my-run/best.opt\n"
               "  discover validate runs/a/best.opt runs/b/best.opt --baselines adam,adamw --seeds 5 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("programs", nargs="+", metavar="PROGRAM", help="built-in names, WRAPPER+INNER, or .opt files")
    p.add_argument("--baselines", nargs="+", action=ListAction, default=["adamw"], metavar="PROG",
                   help="programs to compare against (default adamw)")
    p.add_argument("--seeds", type=int, default=3, help="report seeds per task (default 3)")
    p.add_argument("--tasks", nargs="+", action=ListAction, metavar="TASK",
                   help=f"tasks (default the validation set: {', '.join(VALIDATE_TASKS)})")
    p.add_argument("--steps", type=int, default=None, help="training steps per task (default: each task's own)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1: in process)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate.validation import validate
    from ..library import load
    from ..tasks import get_task

    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1 (3 or more to see the noise), got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive number of training steps, got {args.steps}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    for spec in list(args.programs) + list(args.baselines):
        load(spec)  # a clear error for a bad program before any training
    for t in args.tasks or []:
        get_task(t)
    quiet = args.json

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    report = validate(args.programs, baselines=args.baselines, tasks=args.tasks, seeds=args.seeds,
                      steps=args.steps, backend="auto", workers=args.workers, progress=say)
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(report.table())
    return 0
