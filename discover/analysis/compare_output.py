"""What `discover compare` shows and writes: a table with mean ± standard error over seeds,
``table.csv``, ``curves.csv`` and ``curves.png`` (validation loss with a band over seeds,
smoothed training loss).

Example::

    results = compare(["adam", "my.opt"], ["mlp"], seeds=range(3))
    print(table(results))
    write_csv(results, Path("out"))
    plot(results, Path("out/curves.png"))
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from .compare import ProgramRun
from .explain import format_bytes


def _fmt(x: float) -> str:
    return "diverged" if not math.isfinite(x) else f"{x:.4g}"


def _mean_pm_se(mean: float, se: float) -> str:
    """``0.1689 ± 0.0026``: the standard error to 2 significant digits, the mean to the same decimals.

    Example:
        >>> _mean_pm_se(0.47, 0.00086), _mean_pm_se(16.4789, 0.1615), _mean_pm_se(2.5, float("nan"))
        ('0.47000 ± 0.00086', '16.48 ± 0.16', '2.5')
    """
    if not math.isfinite(mean) or not math.isfinite(se):
        return _fmt(mean)
    if se == 0:
        return f"{mean:.4g} ± 0"
    decimals = max(0, 1 - math.floor(math.log10(se)))
    return f"{mean:.{decimals}f} ± {se:.{decimals}f}"


def _at_edge(r: ProgramRun) -> bool:
    return len(r.lrs) > 1 and r.best_lr in (r.lrs[0], r.lrs[-1]) and math.isfinite(r.best_val)


def table(results: dict[str, list[ProgramRun]]) -> str:
    """A text table: task, program, final validation loss (mean ± s.e. over seeds), best lr,
    step time, state memory."""
    header = ("task", "program", "val loss", "best lr", "step ms", "state")
    rows = []
    edge = False
    seeds = max((len(r.seed_vals) for runs in results.values() for r in runs), default=1)
    for task, runs in results.items():
        for r in runs:
            lr = "-" if math.isnan(r.best_lr) else f"{r.best_lr:.3g}"
            if _at_edge(r):
                lr += "*"
                edge = True
            val = _mean_pm_se(r.best_val, r.val_se)
            rows.append((task, r.name, val, lr, f"{r.step_seconds * 1e3:.3f}", format_bytes(r.state_bytes)))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(f"{c:<{w}}" for c, w in zip(row, widths)).rstrip() for row in rows]
    if edge:
        lines.append("* best lr at the edge of the grid: widen it with --lr-factors")
    if seeds > 1:
        lines.append(f"val loss: final validation loss at the best lr, mean ± standard error over {seeds} seeds "
                     "(two programs differ only where their intervals do not overlap)")
    else:
        lines.append("val loss: final validation loss at the best lr, one seed (no standard error: "
                     "use --seeds 3 to see the noise)")
    lines.append("step ms: optimizer step time per trial; state: optimizer state per trial")
    return "\n".join(lines)


def write_csv(results: dict[str, list[ProgramRun]], out: Path) -> list[Path]:
    """Write ``table.csv`` (one row per task and program) and ``curves.csv`` (one row per task,
    program, seed, kind -- ``val`` or ``train`` -- and step) to the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    table_path, curves_path = out / "table.csv", out / "curves.csv"
    with open(table_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["task", "program", "val_loss_mean", "val_loss_se", "seeds", "best_lr", "best_lr_at_grid_edge",
                    "step_ms", "state_bytes", "failure"])
        for task, runs in results.items():
            for r in runs:
                w.writerow([task, r.name, repr(r.best_val), repr(r.val_se), len(r.seed_vals), repr(r.best_lr),
                            int(_at_edge(r)), f"{r.step_seconds * 1e3:.6g}", r.state_bytes,
                            next((x for x in r.failed if x), "")])
    with open(curves_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["task", "program", "lr", "seed", "kind", "step", "loss"])
        for task, runs in results.items():
            for r in runs:
                for seed, (val, train) in enumerate(zip(r.val_curves or [[]] * len(r.train_curves), r.train_curves)):
                    for step, loss in zip(r.val_steps, val):
                        w.writerow([task, r.name, repr(r.best_lr), seed, "val", step, repr(loss)])
                    for step, loss in enumerate(train, 1):
                        w.writerow([task, r.name, repr(r.best_lr), seed, "train", step, repr(loss)])
    return [table_path, curves_path]


def _mean_se(rows: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per column: the mean over rows and its standard error (NaN where a row is not finite)."""
    means, ses = [], []
    for col in zip(*rows):
        if not all(math.isfinite(v) for v in col):
            means.append(math.nan)
            ses.append(math.nan)
            continue
        m = sum(col) / len(col)
        means.append(m)
        ses.append(math.sqrt(sum((v - m) ** 2 for v in col) / (len(col) - 1) / len(col)) if len(col) > 1 else 0.0)
    return means, ses


def plot(results: dict[str, list[ProgramRun]], path: Path) -> Path:
    """Write ``curves.png``: per task, each program's validation loss at its best lr (mean over seeds,
    a band of ± 1 standard error) and its smoothed training loss (dashed)."""
    from ..plotting import loss_axis, pyplot, smooth

    plt = pyplot("the loss-curve plot (or pass --no-plot)")
    from matplotlib.lines import Line2D

    n = len(results)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows + 0.5), squeeze=False)
    seeds = max((len(r.seed_vals) for runs in results.values() for r in runs), default=1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (task, runs) in zip(axes.flat, results.items()):
        shown: list[float] = []
        for k, r in enumerate(runs):
            color = colors[k % len(colors)]
            label = r.name if math.isnan(r.best_lr) else f"{r.name} (lr {r.best_lr:.3g})"
            if r.val_curves:
                mean, se = _mean_se(r.val_curves)
                ax.plot(r.val_steps, mean, color=color, linewidth=1.8, label=label)
                if seeds > 1:
                    ax.fill_between(r.val_steps, [m - s for m, s in zip(mean, se)], [m + s for m, s in zip(mean, se)],
                                    color=color, alpha=0.2, linewidth=0)
                shown += mean
                label = None
            if r.train_curves:
                train, _ = _mean_se(r.train_curves)
                smoothed = smooth(train, max(1, len(train) // 20))
                ax.plot(range(1, len(smoothed) + 1), smoothed, color=color, linewidth=1.0, linestyle="--",
                        alpha=0.7, label=label)
                shown += smoothed
            if not math.isfinite(r.best_val):
                ax.plot([], [], color=color, label=f"{r.name}: diverged at every lr")
        loss_axis(ax, shown)
        finite = [v for v in shown if math.isfinite(v)]
        if finite and ax.get_yscale() == "linear":  # a diverging tail must not flatten everything else
            low, high = min(finite), max(finite)
            ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low) + 1e-12)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        handles += [Line2D([], [], color="gray", linewidth=1.8), Line2D([], [], color="gray", linestyle="--")]
        labels += ["validation", "train (smoothed)"]
        ax.legend(handles, labels, fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    band = f"band: ± 1 standard error over {seeds} seeds" if seeds > 1 else "one seed"
    fig.suptitle(f"loss at each program's best learning rate; validation: mean ({band}); train: smoothed, dashed",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
