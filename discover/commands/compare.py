"""`discover compare SPEC... --tasks ...`: train programs side by side with tuned learning rates."""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from . import ListAction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train programs side by side on proxy tasks",
                       description="Train each program on each task with its learning rate tuned on a grid "
                                   "(multiples of its default lr), print a table (final validation loss at the "
                                   "best lr, mean ± standard error over --seeds, optimizer step time, state "
                                   "memory) and write runs/compare-<date-time>/: table.txt, table.csv, curves.csv "
                                   "and curves.png (validation loss, mean and a ± 1 s.e. band over seeds; "
                                   "smoothed training loss). Programs are labelled as you name them.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="built-in names, WRAPPER+INNER, or .opt files")
    p.add_argument("--tasks", nargs="+", action=ListAction, metavar="TASK",
                   help="tasks, separated by commas or spaces (default: the search's default tasks)")
    p.add_argument("--steps", type=int, help="training steps per task (default: each task's own)")
    p.add_argument("--seeds", type=int, default=1,
                   help="initialisation seeds per learning rate (default 1; 3 or more to see the noise)")
    p.add_argument("--lr-factors", nargs="+", action=ListAction, item=float, metavar="F",
                   help="the lr grid as multiples of each program's default lr (default 0.1 to 1000, half decades)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/compare-<date-time>)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import compare as cmp
    from ..analysis import compare_output as output
    from ..library import load
    from ..tasks import DEFAULT_TASKS, get_task

    tasks = args.tasks or list(DEFAULT_TASKS)
    for t in tasks:
        get_task(t)
    programs = [load(s) for s in args.specs]
    for spec, p in zip(args.specs, programs):
        if p.is_wrapper:
            raise ValueError(f"'{spec}' wraps another optimizer's update; compare it composed, e.g. '{spec}+adam'")
    if args.steps is not None and args.steps < 1:
        raise ValueError("--steps must be at least 1")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    if args.lr_factors is not None and not all(math.isfinite(f) and f > 0 for f in args.lr_factors):
        raise ValueError(f"--lr-factors must be positive multiples of each program's lr, got "
                         f"{' '.join(f'{f:g}' for f in args.lr_factors)}")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder for the table and curves")
    if not args.no_plot:
        _need_matplotlib()  # before training, not after
    start = time.perf_counter()
    results = cmp.compare(args.specs, tasks, factors=args.lr_factors or cmp.LR_FACTORS,
                          seeds=range(args.seeds), steps=args.steps,
                          log=lambda line: print(f"  trained {line}", file=sys.stderr))
    text = output.table(results)
    print(text)
    out = Path(args.out) if args.out else cmp.run_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text + "\n", encoding="utf-8")
    written = [out / "table.txt", *output.write_csv(results, out)]
    if not args.no_plot:
        written.append(output.plot(results, out / "curves.png"))
    print(f"wrote {', '.join(str(p) for p in written)} ({time.perf_counter() - start:.1f}s)")
    return 0


def _need_matplotlib() -> None:
    from ..extras import need

    need("matplotlib", "plot", "the loss-curve plot (or pass --no-plot)")
