"""From validation losses to one fitness number (lower is better).

For one program on one task, a trial is (learning rate, seed). The loss at a
learning rate is the mean over seeds of the final validation loss (inf if any
seed failed). It is normalized by the task's *baseline loss* (AdamW, or another
reference, tuned per task on a wide lr grid): ``ratio = loss / baseline`` (so 1.0
means "as good as the tuned baseline", 0.9 is 10% lower loss).

Two protocols say which learning rate counts:

* ``per_task`` (the default): each task at its own best lr on the grid, the way
  a user tunes an optimizer for each model. The fitness is the geometric mean
  over tasks of those best ratios, so a program is judged at its tuned lr
  everywhere and nothing is gained by being robust to one lr across tasks of
  different scale. Each task's chosen lr is reported (`Score.lrs`).
* ``shared``: one lr factor for every task (the best geometric mean over the
  grid) -- the self-tuning track, for programs meant to work without an lr search.

Example:
    >>> per_lr([1.0, 3.0, math.inf, 2.0], n_seeds=2)       # two lrs x two seeds
    [2.0, inf]
    >>> fitness_at([[2.0, 4.0], [1.0, 1.0]], [2.0, 1.0])  # two tasks x two lrs, one shared lr
    (1.0, 0)
    >>> fitness_per_task([[2.0, 4.0], [1.0, 0.5]], [2.0, 1.0])  # each task at its own best lr
    (0.7071067811865476, [0, 1])
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


def fitness_per_task(task_losses: Sequence[Sequence[float]],
                     baselines: Sequence[float]) -> tuple[float, list[int]]:
    """Geometric mean over tasks of each task's best ratio, and each task's best grid index.

    ``task_losses[task][lr]`` are mean losses; inf when a task fails at every lr.
    """
    logs, best_js = [], []
    for losses, base in zip(task_losses, baselines):
        ratios = [ratio_of(v, base) for v in losses]
        j = min(range(len(ratios)), key=lambda i: (ratios[i], i))
        best_js.append(j)
        logs.append(math.log(ratios[j]) if math.isfinite(ratios[j]) else math.inf)
    value = math.exp(sum(logs) / len(logs)) if logs and all(math.isfinite(v) for v in logs) else math.inf
    return value, best_js


def ratio_of(loss: float, baseline: float) -> float:
    """``loss / baseline``; inf for a non-finite or non-positive loss (task losses must be positive)."""
    if not (math.isfinite(loss) and loss > 0 and math.isfinite(baseline) and baseline > 0):
        return math.inf
    return loss / baseline


PROTOCOLS = ("per_task", "shared")
"""How the lr grid is read: each task at its own best lr, or one lr for every task."""


@dataclass
class Score:
    """The outcome of evaluating one program on a set of tasks.

    ``fitness``: geometric mean over tasks of loss / baseline, each task at its
    chosen lr (lower is better, inf if it failed); ``factors``: the chosen lr grid
    factor per task and ``lrs`` the absolute lr it stands for; ``factor``: the
    shared factor (``shared`` protocol) or the geometric mean of ``factors``;
    ``ratios`` and ``losses``: per task at its chosen lr; ``reasons``: why trials
    failed or stopped, if any.
    """

    fitness: float
    factor: float = 1.0
    ratios: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    factors: dict[str, float] = field(default_factory=dict)
    lrs: dict[str, float] = field(default_factory=dict)
    progress: dict[str, list[float]] = field(default_factory=dict)  # at the rungs, at each task's chosen lr

    def to_json(self) -> dict:
        return {"fitness": self.fitness, "factor": self.factor, "ratios": self.ratios,
                "losses": self.losses, "reasons": self.reasons, "factors": self.factors, "lrs": self.lrs,
                "progress": self.progress}

    @classmethod
    def from_json(cls, d: dict) -> "Score":
        return cls(fitness=d["fitness"], factor=d["factor"], ratios=dict(d["ratios"]),
                   losses=dict(d["losses"]), reasons=list(d.get("reasons", [])),
                   factors=dict(d.get("factors", {})), lrs=dict(d.get("lrs", {})),
                   progress={t: list(v) for t, v in d.get("progress", {}).items()})


def geomean(values: Sequence[float]) -> float:
    """Geometric mean of positive numbers (inf if any is not finite and positive).

    Example:
        >>> geomean([1.0, 4.0])
        2.0
    """
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        return math.inf
    return math.exp(sum(math.log(v) for v in values) / len(values))


def score_from_losses(tasks: Sequence[str], losses: Sequence[Sequence[float]], factors: Sequence[float],
                      n_seeds: int, baselines: dict[str, float], reasons: Sequence[str] = (), *,
                      protocol: str = "per_task", centers: dict[str, float] | None = None) -> Score:
    """A `Score` from ``losses[task][trial]`` (trials lr-major) of one program.

    ``centers[task]`` is the lr the grid ``factors`` multiplies on that task (for `Score.lrs`).

    Example:
        >>> sc = score_from_losses(["a", "b"], [[2.0, 1.0], [1.0, 2.0]], [0.5, 2.0], 1, {"a": 1.0, "b": 1.0},
        ...                        centers={"a": 0.1, "b": 0.1})
        >>> sc.fitness, sc.factors, sc.lrs
        (1.0, {'a': 2.0, 'b': 0.5}, {'a': 0.2, 'b': 0.05})
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown lr protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    means = [per_lr(l, n_seeds) for l in losses]
    base = [baselines[t] for t in tasks]
    if protocol == "shared":
        fit, j = fitness_at(means, base)
        js = [j] * len(tasks)
    else:
        fit, js = fitness_per_task(means, base)
    chosen = {t: float(factors[j]) for t, j in zip(tasks, js)}
    centers = centers or {}
    return Score(fitness=fit, factor=geomean(list(chosen.values())) if protocol == "per_task" else chosen[tasks[0]],
                 ratios={t: ratio_of(m[j], b) for t, m, j, b in zip(tasks, means, js, base)},
                 losses={t: m[j] for t, m, j in zip(tasks, means, js)},
                 reasons=sorted(set(r for r in reasons if r))[:5], factors=chosen,
                 lrs={t: float(f"{centers[t] * chosen[t]:.12g}") for t in tasks if t in centers})
