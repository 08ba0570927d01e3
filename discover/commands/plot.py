"""`discover plot RUN [RUN...] [-o FILE.png]`: see a search run (or several, overlaid)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="plot a search run: fitness, best so far, failures, funnel",
        description="Draw a search run from its directory: each candidate's fitness and the best so far over "
                    "evaluations (restarts marked) and over wall time, the failure and cache-hit rates, and the "
                    "funnel's meta-validation scores with their standard errors. Several runs are overlaid. "
                    "Works on a run in progress. Needs the plot extra (matplotlib).",
        epilog="examples:\n  discover plot runs/20240101-120000\n  discover plot runs/a runs/b -o ab.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="search run directories")
    p.add_argument("-o", "--output", metavar="FILE.png",
                   help="where to write the PNG (default RUN/progress.png for one run, runs.png for several)")
    p.add_argument("--tensorboard", metavar="DIR",
                   help="also write each run's scalars per batch for TensorBoard to DIR/<run>/ "
                        "(pip install tensorboard; then: tensorboard --logdir DIR)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.runplot import load_run, plot_runs
    from ..extras import need

    need("matplotlib", "plot", "discover plot")  # before reading anything
    if args.tensorboard:
        need("torch.utils.tensorboard", "tensorboard", "--tensorboard")
    runs = [load_run(path) for path in args.runs]
    out = Path(args.output) if args.output else (Path(args.runs[0]) / "progress.png" if len(runs) == 1
                                                 else Path("runs.png"))
    if out.suffix.lower() != ".png":
        raise ValueError(f"the output {out} should end in .png")
    plot_runs(runs, out)
    for r in runs:
        best = min(r.best_so_far(), default=float("inf"))
        print(f"{r.name}: {len(r.evals)} evaluations, best search fitness {best:.4f}"
              + (f", {len(r.funnel)} meta-scored" if r.funnel else ""))
    print(f"wrote {out}")
    if args.tensorboard:
        from ..analysis.runboard import write_tensorboard

        for r in runs:
            print(f"wrote {write_tensorboard(r, Path(args.tensorboard))} (tensorboard --logdir {args.tensorboard})")
    return 0
