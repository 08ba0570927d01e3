"""Scores a person can trust: each program at its own tuned lr per task, reported on fresh seeds.

This is the protocol of the funnel, of `discover validate` and of ablation:

1. *tune*: for each task, train the program on a log grid of learning rates
   around its own ``lr`` (tuning seeds); while the best is at an edge of what was
   tried, go two grid steps further out (up to ``extend`` times); then try the
   log-midpoints on either side of the best; take the lr with the lowest mean
   final validation loss;
2. *report*: train it at that lr on ``report_seeds``, seeds the tuning never
   saw, so the reported losses carry no winner's-curse bias from the choice of lr.

Two programs are compared *paired by seed*: on each task and report seed they
start from the same initialisation and see the same data, so the seed-to-seed
spread they share cancels. `paired_ratio` gives the geometric mean over tasks
of the loss ratio and its standard error.

Example:
    >>> from discover import load
    >>> a, b = tune([load("adamw"), load("sgd")], ["quadratic"], grid=(0.3, 1.0, 3.0), steps=20,
    ...             report_seeds=(1, 2))
    >>> sorted(a.tasks), len(a.tasks["quadratic"].losses)
    (['quadratic'], 2)
    >>> ratio, se = paired_ratio(a, b)
    >>> ratio > 0 and se >= 0
    True
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..lang.ir import Program
from ..library import load
from .backends import Backend, get_backend
from .fitness import geomean, per_lr
from .work import WorkItem, center_lr, ensure_lr

__all__ = ["TUNE_FACTORS", "TaskResult", "Tuned", "tune", "tuned_fitness", "paired_ratio", "mean_se",
           "tuned_from_json"]

TUNE_FACTORS: tuple[float, ...] = tuple(10 ** (k / 2) for k in range(-3, 4))
"""Default coarse grid: 0.03x .. 30x the program's lr in half-decades (refined to quarter-decades)."""


@dataclass
class TaskResult:
    """One program on one task: the chosen ``lr``, the mean loss at every lr tried (tuning
    seeds), and the final validation loss on each report seed at the chosen lr."""

    lr: float
    tried: dict[float, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    reason: str | None = None

    @property
    def mean(self) -> float:
        return mean_se(self.losses)[0]

    @property
    def se(self) -> float:
        return mean_se(self.losses)[1]

    @property
    def at_edge(self) -> bool:
        """True when the chosen lr is the smallest or largest tried (the optimum may lie outside)."""
        finite = [lr for lr, v in self.tried.items() if math.isfinite(v)]
        return bool(finite) and self.lr in (min(self.tried), max(self.tried))

    def to_json(self) -> dict:
        return {"lr": self.lr, "tried": {f"{k:.6g}": v for k, v in sorted(self.tried.items())},
                "losses": self.losses, "mean": self.mean, "se": self.se, "reason": self.reason}


@dataclass
class Tuned:
    """A program's tuned results by task."""

    name: str
    tasks: dict[str, TaskResult]

    def to_json(self) -> dict:
        return {"name": self.name, "tasks": {t: r.to_json() for t, r in self.tasks.items()}}

    @property
    def lrs(self) -> dict[str, float]:
        return {t: r.lr for t, r in self.tasks.items()}


def tuned_from_json(data: dict) -> Tuned:
    """Inverse of `Tuned.to_json`.

    Example:
        >>> t = Tuned("a", {"x": TaskResult(0.1, {0.1: 1.0}, [1.0, 1.5])})
        >>> tuned_from_json(t.to_json()).tasks["x"].losses
        [1.0, 1.5]
    """
    tasks = {}
    for name, r in data["tasks"].items():
        tasks[name] = TaskResult(lr=float(r["lr"]), tried={float(k): float(v) for k, v in r["tried"].items()},
                                 losses=[float(v) for v in r["losses"]], reason=r.get("reason"))
    return Tuned(str(data["name"]), tasks)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (inf when a value is not finite; se 0 for one value).

    Example:
        >>> mean_se([1.0, 2.0, 3.0])
        (2.0, 0.5773502691896257)
    """
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        return math.inf, math.inf
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def paired_ratio(a: Tuned, b: Tuned, tasks: Sequence[str] | None = None) -> tuple[float, float]:
    """Geometric mean over tasks of ``loss(a) / loss(b)``, paired by report seed, and its standard error.

    Per task, the mean over seeds of ``log(a_s / b_s)`` and its variance; the
    log-ratio is the mean over tasks, its variance the sum of the per-task
    variances of the mean over ``n_tasks ** 2``; the ratio's standard error is
    ``ratio * se(log-ratio)``. inf when either failed somewhere.

    Example:
        >>> A = Tuned("a", {"t": TaskResult(1.0, losses=[1.0, 2.0])})
        >>> B = Tuned("b", {"t": TaskResult(1.0, losses=[2.0, 4.0])})
        >>> paired_ratio(A, B)
        (0.5, 0.0)
    """
    tasks = list(tasks or a.tasks)
    logs, variances = [], []
    for t in tasks:
        la, lb = a.tasks[t].losses, b.tasks[t].losses
        if len(la) != len(lb) or not la:
            raise ValueError(f"task {t!r}: {a.name} and {b.name} were reported on different seeds")
        if not all(math.isfinite(x) and x > 0 for x in la + lb):
            return math.inf, math.inf
        d = [math.log(x / y) for x, y in zip(la, lb)]
        m, se = mean_se(d)
        logs.append(m)
        variances.append(se * se)
    log_ratio = sum(logs) / len(logs)
    se = math.sqrt(sum(variances)) / len(logs)
    ratio = math.exp(log_ratio)
    return ratio, ratio * se


def _next_lrs(tried: Sequence[float], best: float, edge: bool) -> list[float]:
    """The lrs to try next: two further grid steps beyond `best` when it is at an edge of what was
    tried (``edge``), else the log-midpoints on either side of it.

    Example:
        >>> _next_lrs([0.1, 1.0, 10.0], 10.0, edge=True), _next_lrs([0.1, 1.0, 10.0], 1.0, edge=False)
        ([100.0, 1000.0], [0.316228, 3.16228])
    """
    lrs = sorted(tried)
    i = lrs.index(best)
    if edge and len(lrs) > 1:
        if i == 0:
            step = lrs[1] / lrs[0]
            out = [best / step, best / step ** 2]
        else:
            step = lrs[-1] / lrs[-2]
            out = [best * step, best * step ** 2]
    else:
        out = ([math.sqrt(lrs[i - 1] * best)] if i > 0 else []) + \
              ([math.sqrt(lrs[i + 1] * best)] if i < len(lrs) - 1 else [])
    return [float(f"{v:.6g}") for v in out]


def tune(programs: Sequence["Program | str"], tasks: Sequence[str], *, grid: Sequence[float] = TUNE_FACTORS,
         tune_seeds: Sequence[int] = (0,), report_seeds: Sequence[int] = (1, 2, 3),
         centers: Sequence[dict[str, float] | None] | None = None, refine: int = 1, extend: int = 3,
         steps: "int | dict | None" = None, device: str = "cpu", backend: "Backend | str" = "local",
         workers: int = 1, candidate_time_limit: float | None = None, progress=None) -> list[Tuned]:
    """Tune each program's lr per task, then report it on fresh seeds (see the module docstring).

    Args:
        programs: `Program` objects or anything `discover.load` takes.
        tasks: task specs.
        grid: the coarse grid, multiples of each program's lr on each task (``centers[i][task]``
            where given, else its own ``lr``).
        tune_seeds: seeds of the tuning runs; report_seeds: seeds of the reported runs (none: each
            task's result is the best mean loss of the tuning runs, as one "seed").
        refine: rounds of refinement around the best lr (log-midpoints on either side).
        extend: most rounds that go two grid steps further out when the best lr is at an edge.
        progress: an optional callable ``progress(message)`` told about each stage.
    """
    programs = [ensure_lr(load(p)) for p in programs]
    names = [p.name for p in programs]
    centers = list(centers) if centers is not None else [None] * len(programs)
    # in process: one torch thread (small models train fastest so, and a busy machine does not stall)
    own = backend if isinstance(backend, Backend) else get_backend(backend, workers, threads=1)
    tasks = list(tasks)

    def train(lr_sets: list[list[list[float]]], seeds: Sequence[int]) -> list[list[tuple[list, list]]]:
        """Train every program at its own lrs ``lr_sets[p][t]`` on every task: (losses, reasons) by trial."""
        items, where = [], []
        for t, task in enumerate(tasks):
            todo = [i for i in range(len(programs)) if lr_sets[i][t]]
            if not todo:
                continue
            task_steps = steps.get(task) if isinstance(steps, dict) else steps
            items.append(WorkItem(task=task, programs=tuple(programs[i] for i in todo),
                                  lrs=tuple(tuple(lr_sets[i][t]) for i in todo), seeds=tuple(int(s) for s in seeds),
                                  steps=task_steps, device=device, candidate_time_limit=candidate_time_limit,
                                  key=(len(items), 0)))
            where.append((t, todo))
        results = own.run(items)
        out: list[list[tuple[list, list]]] = [[([], []) for _ in tasks] for _ in programs]
        for (t, todo), res in zip(where, results):
            for c, i in enumerate(todo):
                out[i][t] = (list(res.val_loss[c]), list(res.reasons[c]) if res.reasons else [])
        return out

    try:
        tried: list[list[dict[float, float]]] = [[{} for _ in tasks] for _ in programs]
        why: list[list[str | None]] = [[None for _ in tasks] for _ in programs]
        pending = [[[float(f"{center_lr(p, c, t) * f:.6g}") for f in grid] for t in tasks]
                   for p, c in zip(programs, centers)]
        extended = [[0] * len(tasks) for _ in programs]
        refined = [[0] * len(tasks) for _ in programs]
        round_ = 0
        while any(any(row) for row in pending):
            round_ += 1
            if progress:
                progress(f"tuning lr: round {round_}")
            res = train(pending, tune_seeds)
            for i in range(len(programs)):
                for t in range(len(tasks)):
                    if not pending[i][t]:
                        continue
                    losses, reasons = res[i][t]
                    means = per_lr(losses, len(tune_seeds))
                    for lr, m in zip(pending[i][t], means):
                        tried[i][t][lr] = m
                    known = [r for r in reasons if r]
                    if known:
                        why[i][t] = known[0]
            pending = [[[] for _ in tasks] for _ in programs]
            for i in range(len(programs)):
                for t in range(len(tasks)):
                    got = tried[i][t]
                    best = min(got, key=lambda lr: (got[lr], lr))
                    if not math.isfinite(got[best]):
                        continue
                    # out past an edge first (the optimum is not inside the grid), then finer around the best
                    if best in (min(got), max(got)) and extended[i][t] < extend:
                        extended[i][t] += 1
                        pending[i][t] = [lr for lr in _next_lrs(list(got), best, edge=True) if lr not in got]
                    elif refined[i][t] < refine:
                        refined[i][t] += 1
                        pending[i][t] = [lr for lr in _next_lrs(list(got), best, edge=False) if lr not in got]
        chosen = [[min(tried[i][t], key=lambda lr: (tried[i][t][lr], lr)) for t in range(len(tasks))]
                  for i in range(len(programs))]
        if not report_seeds:  # tuning only: the best loss tried stands for the program
            return [Tuned(names[i], {task: TaskResult(lr=chosen[i][t], tried=dict(sorted(tried[i][t].items())),
                                                      losses=[tried[i][t][chosen[i][t]]], reason=why[i][t])
                                     for t, task in enumerate(tasks)}) for i in range(len(programs))]
        if progress:
            progress(f"reporting on {len(report_seeds)} seeds at the tuned lrs")
        res = train([[[chosen[i][t]] for t in range(len(tasks))] for i in range(len(programs))], report_seeds)
        out = []
        for i in range(len(programs)):
            per_task = {}
            for t, task in enumerate(tasks):
                losses, reasons = res[i][t]
                bad = [r for r in reasons if r]
                per_task[task] = TaskResult(lr=chosen[i][t], tried=dict(sorted(tried[i][t].items())),
                                            losses=[float(v) for v in losses],
                                            reason=bad[0] if bad else (why[i][t] if not math.isfinite(
                                                tried[i][t][chosen[i][t]]) else None))
            out.append(Tuned(names[i], per_task))
        return out
    finally:
        if not isinstance(backend, Backend):
            own.close()


def tuned_fitness(tasks: Sequence[str], *, seeds: Sequence[int] = (0,), grid: Sequence[float] = TUNE_FACTORS,
                  baseline: str = "adamw", steps: "int | dict | None" = None, device: str = "cpu",
                  backend: "Backend | str" = "local"):
    """A batched fitness for ablation: each program's lr tuned per task (`tune`, no report seeds), the
    best mean loss per task divided by the tuned baseline's, geometric mean over tasks (inf if it fails).

    Example:
        >>> from discover import load
        >>> f = tuned_fitness(["quadratic"], steps=20, grid=(0.3, 1.0, 3.0))
        >>> f([load("adamw")])[0] == 1.0
        True
    """
    own = backend if isinstance(backend, Backend) else get_backend(backend, threads=1)
    base: dict[str, float] = {}

    def fitness(programs: list[Program]) -> list[float]:
        if not base:
            (b,) = tune([baseline], tasks, grid=grid, tune_seeds=seeds, report_seeds=(), steps=steps,
                        device=device, backend=own)
            base.update({t: r.losses[0] for t, r in b.tasks.items()})
        out = []
        for res in tune(programs, tasks, grid=grid, tune_seeds=seeds, report_seeds=(), steps=steps,
                        device=device, backend=own):
            ratios = [res.tasks[t].losses[0] / base[t] if math.isfinite(res.tasks[t].losses[0]) else math.inf
                      for t in tasks]
            out.append(geomean(ratios))
        return out

    return fitness
