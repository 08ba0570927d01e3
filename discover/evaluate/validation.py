"""`validate`: an independent check of programs against baselines on tasks the search never sees.

Each program and baseline has its lr tuned per task on a wide grid around its
own ``lr`` (refined to quarter decades, extended at the edges), then trains at
that lr on ``seeds`` fresh seeds (see `discover.evaluate.tuned`). The report
gives each task's final validation loss, mean ± standard error over seeds, and
each program's geometric-mean loss ratio to each baseline with its standard
error, paired by seed. A program is *better* than a baseline only where the
ratio is below 1 by more than two standard errors.

Example:
    >>> rep = validate(["sgd"], baselines=["adamw"], tasks=["quadratic"], seeds=2, steps=20,
    ...                grid=(0.3, 1.0, 3.0))
    >>> sorted(rep.ratios["sgd"])
    ['adamw']
    >>> "quadratic" in rep.table()
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..library import load
from .tuned import Tuned, paired_ratio, tune

__all__ = ["VALIDATE_FACTORS", "ValidationReport", "validate"]

VALIDATE_FACTORS: tuple[float, ...] = tuple(10 ** (k / 2) for k in range(-4, 5))
"""The coarse lr grid of `validate`: 0.01x .. 100x each program's lr, half decades (then refined)."""


@dataclass
class ValidationReport:
    """Tuned results per program (`Tuned`) and the paired ratios ``ratios[program][baseline] = (ratio, se)``."""

    names: list[str]
    baselines: list[str]
    tasks: list[str]
    results: dict[str, Tuned]
    ratios: dict[str, dict[str, tuple[float, float]]]
    seeds: int

    def verdict(self, program: str, baseline: str) -> str:
        """``better``, ``worse`` or ``same`` (within two standard errors) for `program` against `baseline`."""
        r, se = self.ratios[program][baseline]
        if not math.isfinite(r):
            return "failed"
        if r + 2 * se < 1:
            return "better"
        if r - 2 * se > 1:
            return "worse"
        return "same"

    def table(self) -> str:
        """The report as text: losses per task (mean ± s.e., tuned lr), then ratios to each baseline."""
        cols = self.names + [b for b in self.baselines if b not in self.names]
        width = max(24, *(len(c) + 2 for c in cols))
        lines = [f"final validation loss, mean ± s.e. over {self.seeds} seeds, each at its lr tuned per task",
                 "task".ljust(16) + "".join(c.rjust(width) for c in cols)]
        for t in self.tasks:
            row = t.ljust(16)
            for c in cols:
                r = self.results[c].tasks[t]
                cell = f"{r.mean:.4f} ± {r.se:.4f}" if math.isfinite(r.mean) else "failed"
                row += cell.rjust(width)
            lines.append(row)
            lines.append("".ljust(16) + "".join(
                (f"lr {self.results[c].tasks[t].lr:.3g}" + ("*" if self.results[c].tasks[t].at_edge else ""))
                .rjust(width) for c in cols))
        if any(self.results[c].tasks[t].at_edge for c in cols for t in self.tasks):
            lines.append("* the best lr is at the edge of the grid searched: the true optimum may lie outside it")
        lines.append("")
        lines.append("geometric mean over tasks of the loss ratio, paired by seed (< 1: lower loss than the baseline)")
        for p in self.names:
            for b in self.baselines:
                if p == b:
                    continue
                r, se = self.ratios[p][b]
                text = f"{r:.4f} ± {se:.4f}" if math.isfinite(r) else "inf"
                lines.append(f"  {p} / {b}: {text}  ({self.verdict(p, b)})")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"tasks": self.tasks, "seeds": self.seeds, "programs": self.names, "baselines": self.baselines,
                "results": {n: r.to_json() for n, r in self.results.items()},
                "ratios": {p: {b: {"ratio": r, "se": se, "verdict": self.verdict(p, b)}
                               for b, (r, se) in bs.items()} for p, bs in self.ratios.items()}}


def validate(programs: Sequence[str], *, baselines: Sequence[str] = ("adamw",), tasks: Sequence[str] | None = None,
             seeds: int = 3, steps: "int | None" = None, grid: Sequence[float] = VALIDATE_FACTORS,
             device: str = "cpu", backend: str = "local", workers: int = 1, progress=None) -> ValidationReport:
    """Tune and train `programs` and `baselines` on `tasks` (default `VALIDATE_TASKS`), `seeds` report seeds.

    Programs are anything `discover.load` takes; each is labelled as given.
    """
    from ..tasks import VALIDATE_TASKS

    if seeds < 1:
        raise ValueError(f"seeds must be at least 1 (3 or more to see the noise), got {seeds}")
    tasks = list(tasks or VALIDATE_TASKS)
    names = list(dict.fromkeys(list(programs) + list(baselines)))
    loaded = [load(n) for n in names]  # clear errors for bad specs before any training
    results = tune(loaded, tasks, grid=grid, tune_seeds=(0,), report_seeds=tuple(range(1, 1 + seeds)),
                   steps=steps, device=device, backend=backend, workers=workers, progress=progress)
    by_name = {n: Tuned(n, r.tasks) for n, r in zip(names, results)}
    ratios = {p: {b: paired_ratio(by_name[p], by_name[b]) for b in baselines if b != p} for p in programs}
    return ValidationReport(names=list(programs), baselines=list(baselines), tasks=tasks, results=by_name,
                            ratios=ratios, seeds=seeds)
