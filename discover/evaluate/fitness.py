"""From validation losses to one fitness number (lower is better).

For one program on one task, a trial is (learning rate, seed). The loss at a
learning rate is the mean over seeds of the final validation loss (inf if any
seed failed). It is normalized by the task's *baseline loss* (AdamW, or another
reference, tuned per task on a wide lr grid): ``ratio = loss / baseline`` (so 1.0
means "as good as the tuned baseline", 0.9 is 10% lower loss). The fitness at
a learning rate is the geometric mean of the ratios over tasks; the program's
fitness is the best over its lr grid, and that grid factor is the one folded
into its ``lr`` so it runs as is. One learning rate serves every task, as it
would for a user who takes the program as it is.

Example:
    >>> per_lr([1.0, 3.0, math.inf, 2.0], n_seeds=2)       # two lrs x two seeds
    [2.0, inf]
    >>> fitness_at([[2.0, 4.0], [1.0, 1.0]], [2.0, 1.0])  # two tasks x two lrs
    (1.0, 0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

WIDE_FACTORS: tuple[float, ...] = tuple(10 ** (k / 2) for k in range(-4, 5))
"""Grid for tuning baselines and warm-start programs: 0.01x .. 100x the program's lr, half-decades."""

SEARCH_FACTORS: tuple[float, ...] = (1 / 3, 1.0, 3.0)
"""Grid for candidates during search: the program's own lr scaled by these factors."""


def per_lr(losses: Sequence[float], n_seeds: int) -> list[float]:
    """Mean loss over seeds for each learning rate (trials are lr-major); inf if any seed failed."""
    out = []
    for j in range(0, len(losses), n_seeds):
        chunk = [float(v) for v in losses[j:j + n_seeds]]
        out.append(math.inf if not all(math.isfinite(v) for v in chunk) else sum(chunk) / len(chunk))
    return out


def best_loss(losses: Sequence[float], n_seeds: int) -> tuple[float, int]:
    """The best mean loss over the lr grid and its index (first of ties)."""
    means = per_lr(losses, n_seeds)
    j = min(range(len(means)), key=lambda i: (means[i], i))
    return means[j], j


def fitness_at(task_losses: Sequence[Sequence[float]], baselines: Sequence[float]) -> tuple[float, int]:
    """Best fitness over the grid and its index from ``task_losses[task][lr]`` and per-task baselines."""
    n = len(task_losses[0])
    best, best_j = math.inf, 0
    for j in range(n):
        logs = []
        for losses, base in zip(task_losses, baselines):
            ratio = ratio_of(losses[j], base)
            if not math.isfinite(ratio):
                logs = None
                break
            logs.append(math.log(ratio))
        value = math.exp(sum(logs) / len(logs)) if logs else math.inf
        if value < best:
            best, best_j = value, j
    return best, best_j


def ratio_of(loss: float, baseline: float) -> float:
    """``loss / baseline``; inf for a non-finite or non-positive loss (task losses must be positive)."""
    if not (math.isfinite(loss) and loss > 0 and math.isfinite(baseline) and baseline > 0):
        return math.inf
    return loss / baseline


@dataclass
class Score:
    """The outcome of evaluating one program on a set of tasks.

    ``fitness``: geometric mean over tasks of loss / baseline at the best lr factor
    (lower is better, inf if it failed); ``factor``: that lr factor; ``ratios`` and
    ``losses``: per task at that factor; ``reasons``: why trials failed, if any.
    """

    fitness: float
    factor: float = 1.0
    ratios: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"fitness": self.fitness, "factor": self.factor, "ratios": self.ratios,
                "losses": self.losses, "reasons": self.reasons}

    @classmethod
    def from_json(cls, d: dict) -> "Score":
        return cls(fitness=d["fitness"], factor=d["factor"], ratios=dict(d["ratios"]),
                   losses=dict(d["losses"]), reasons=list(d.get("reasons", [])))


def score_from_losses(tasks: Sequence[str], losses: Sequence[Sequence[float]], factors: Sequence[float],
                      n_seeds: int, baselines: dict[str, float], reasons: Sequence[str] = ()) -> Score:
    """A `Score` from ``losses[task][trial]`` (trials lr-major) of one program."""
    means = [per_lr(l, n_seeds) for l in losses]
    fit, j = fitness_at(means, [baselines[t] for t in tasks])
    return Score(fitness=fit, factor=float(factors[j]),
                 ratios={t: ratio_of(m[j], baselines[t]) for t, m in zip(tasks, means)},
                 losses={t: m[j] for t, m in zip(tasks, means)},
                 reasons=sorted(set(r for r in reasons if r))[:5])
