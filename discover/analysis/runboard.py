"""``discover plot RUN --tensorboard DIR``: a run's events as TensorBoard scalars, one point per batch.

Scalars (step: evaluations done at the end of the batch; wall time: the run's start plus
the events' ``time`` where they have one): ``search/best_fitness``, ``search/median_fitness``
(finite children of the batch), ``search/failed_fraction``, ``search/cache_hit_fraction``,
and ``funnel/best_meta_fitness`` after each funnel. Each run goes to ``DIR/<run name>/``,
rewritten on every call (so it can follow a run in progress). TensorBoard is the optional
``tensorboard`` extra.

Example::

    write_tensorboard(load_run("runs/a"), Path("tb"))    # then: tensorboard --logdir tb
"""
from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from .runplot import RunData


def per_batch(run: RunData) -> list[dict]:
    """One row per batch: ``step`` (evaluations done), ``time``, and the scalars above.

    Example:
        >>> from discover.analysis.runplot import RunData
        >>> r = RunData("r", Path("r"), evals=[0, 1, 2], batches=[0, 0, 1], fitness=[1.2, math.inf, 0.9],
        ...             times=[1.0, 1.0, 2.5], cache_hits=[False, True, False], warm=[1.1])
        >>> [(row["step"], row["best_fitness"], row["failed_fraction"]) for row in per_batch(r)]
        [(2, 1.1, 0.5), (3, 0.9, 0.0)]
    """
    rows: list[dict] = []
    best = run.best_so_far()
    for i, batch in enumerate(run.batches):
        if rows and rows[-1]["batch"] == batch:
            row = rows[-1]
        else:
            row = {"batch": batch, "fitness": [], "hits": 0}
            rows.append(row)
        row["fitness"].append(run.fitness[i])
        row["hits"] += run.cache_hits[i]
        row["step"], row["time"], row["best_fitness"] = i + 1, run.times[i], best[i]
    out = []
    for row in rows:
        finite = [f for f in row["fitness"] if math.isfinite(f)]
        n = len(row["fitness"])
        out.append({"step": row["step"], "time": row["time"], "best_fitness": row["best_fitness"],
                    "median_fitness": statistics.median(finite) if finite else math.inf,
                    "failed_fraction": (n - len(finite)) / n, "cache_hit_fraction": row["hits"] / n})
    return out


def write_tensorboard(run: RunData, logdir: Path) -> Path:
    """Write `run` as TensorBoard scalars under ``logdir/<run name>/``; returns that folder."""
    from ..extras import need

    board = need("torch.utils.tensorboard", "tensorboard", "--tensorboard")
    folder = Path(logdir) / (re.sub(r"[^A-Za-z0-9._-]+", "_", run.path.resolve().name) or "run")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events.out.tfevents.*"):  # ours, from an earlier call: rewritten whole
        old.unlink()
    start = (run.path / "config.json").stat().st_mtime if (run.path / "config.json").exists() else None
    writer = board.SummaryWriter(log_dir=str(folder))
    try:
        for row in per_batch(run):
            wall = start + row["time"] if start is not None and row["time"] is not None else None
            for name in ("best_fitness", "median_fitness", "failed_fraction", "cache_hit_fraction"):
                if math.isfinite(row[name]):
                    writer.add_scalar(f"search/{name}", row[name], row["step"], walltime=wall)
        best_meta = math.inf
        for point in sorted(run.funnel, key=lambda p: (p.at if p.at is not None else p.candidate)):
            if math.isfinite(point.meta):
                best_meta = min(best_meta, point.meta)
                step = point.at if point.at is not None else max(point.candidate, 0)
                wall = start + point.time if start is not None and point.time is not None else None
                writer.add_scalar("funnel/best_meta_fitness", best_meta, step, walltime=wall)
    finally:
        writer.close()
    return folder
