"""Proxy training of many candidate programs at once, and their fitness.

The main entry points:

* `score_programs(programs, tasks)` -> one fitness per program (lower is better,
  1.0 = as good as the tuned baseline, inf for failed);
* `Evaluator`: the same with its settings kept (tasks, seeds, grid, device,
  backend), the baseline losses computed once, and full `Score` records;
  search uses it.

How a batch is evaluated: `make_work` (the batch of work: one `WorkItem` per
task and chunk of candidates), a `Backend` runs it (`LocalBackend` in process,
`ProcessBackend` over local processes), `merge_results` puts the losses back in
input order, and `discover.evaluate.fitness` turns them into scores.

Example:
    >>> from discover import load
    >>> scores = score_programs([load("adamw"), load("lion")], ["quadratic"])
    >>> len(scores), scores[0] >= 1.0   # 1.0 is AdamW tuned on a wider lr grid
    (2, True)
"""
from __future__ import annotations

from typing import Sequence

from ..lang.ir import Program
from ..lang.printer import unparse
from ..library import load
from ..tasks import DEFAULT_TASKS, META_TASKS, get_task
from .backends import BACKENDS, Backend, LocalBackend, ProcessBackend, get_backend
from .batched import run_item
from .fitness import SEARCH_FACTORS, WIDE_FACTORS, Score, best_loss, score_from_losses
from .work import ItemResult, WorkItem, ensure_lr, make_work, merge_results

__all__ = ["BACKENDS", "Backend", "Evaluator", "ItemResult", "LocalBackend", "ProcessBackend", "Score",
           "SEARCH_FACTORS", "WIDE_FACTORS", "WorkItem", "ensure_lr", "get_backend", "make_work",
           "merge_results", "run_item", "score_programs", "DEFAULT_TASKS", "META_TASKS"]

_BASELINE_MEMO: dict[tuple, float] = {}


class Evaluator:
    """Scores programs on a fixed set of tasks against a tuned baseline.

    Args:
        tasks: task specs (registered names or ``"pkg.mod:Class"``).
        seeds: initialisation seeds of each trial (the same for every program).
        factors: the lr grid of `score` (multiples of each program's own ``lr``).
        baseline: the reference program (default AdamW), tuned per task on
            ``baseline_factors``; fitness is loss / baseline loss.
        steps: training steps (default each task's own), an int for all, or per task.
        device: ``"cpu"`` or ``"cuda"``.
        backend: a `Backend` or a name (``local``, ``process``, ``ray``, ``auto``) with ``workers``.
        backend_options: options of a named backend (for ``ray``: address, gpus_per_worker, ...).
        chunk: candidates per work item (default all: one item per task).
        candidate_time_limit: seconds of update time per candidate per task before it fails.
        baselines: known baseline losses by task (e.g. from a checkpoint).
    """

    def __init__(self, tasks: Sequence[str], *, seeds: Sequence[int] = (0,),
                 factors: Sequence[float] = SEARCH_FACTORS, baseline: "str | Program" = "adamw",
                 baseline_factors: Sequence[float] = WIDE_FACTORS, steps: "int | dict | None" = None,
                 device: str = "cpu", backend: "Backend | str" = "local", workers: int = 1,
                 chunk: int | None = None, candidate_time_limit: float | None = None,
                 baselines: dict[str, float] | None = None, backend_options: dict | None = None) -> None:
        if not tasks:
            raise ValueError("no tasks to evaluate on")
        for t in tasks:
            get_task(t)  # a clear error for an unknown task, before any training
        self.tasks = list(tasks)
        self.seeds = [int(s) for s in seeds]
        self.factors = [float(f) for f in factors]
        self.baseline = ensure_lr(load(baseline))
        self.baseline_factors = [float(f) for f in baseline_factors]
        self.steps = steps
        self.device = device
        self.backend = (get_backend(backend, workers, **(backend_options or {})) if isinstance(backend, str)
                        else backend)
        self.chunk = chunk
        self.candidate_time_limit = candidate_time_limit
        self._baselines = dict(baselines or {})

    def _memo_key(self, task: str) -> tuple:
        steps = self.steps.get(task) if isinstance(self.steps, dict) else self.steps
        return (task, tuple(self.seeds), steps, self.device, tuple(self.baseline_factors), unparse(self.baseline))

    def baselines(self) -> dict[str, float]:
        """The baseline's best mean loss per task over ``baseline_factors`` (computed once)."""
        missing = [t for t in self.tasks if t not in self._baselines]
        for t in list(missing):
            if self._memo_key(t) in _BASELINE_MEMO:
                self._baselines[t] = _BASELINE_MEMO[self._memo_key(t)]
                missing.remove(t)
        if missing:
            losses = self.losses([self.baseline], self.baseline_factors, tasks=missing)[0]
            for t, l in zip(missing, losses):
                value, _ = best_loss(l, len(self.seeds))
                if not value < float("inf"):
                    raise ValueError(f"the baseline {self.baseline.name} fails on task {t!r} at every learning rate")
                self._baselines[t] = value
                _BASELINE_MEMO[self._memo_key(t)] = value
        return {t: self._baselines[t] for t in self.tasks}

    def losses(self, programs: Sequence[Program], factors: Sequence[float],
               tasks: Sequence[str] | None = None) -> list[list[list[float]]]:
        """Final validation losses ``[program][task][trial]`` (trials: lr-major, then seed)."""
        tasks = list(tasks or self.tasks)
        if not programs:
            return []
        items = make_work(programs, tasks, factors, self.seeds, steps=self.steps, device=self.device,
                          chunk=self.chunk, candidate_time_limit=self.candidate_time_limit)
        results = self.backend.run(items)
        return merge_results(items, results, len(programs), len(tasks))

    def score(self, programs: Sequence[Program], factors: Sequence[float] | None = None) -> list[Score]:
        """Scores of `programs` over the lr grid `factors` (default: this evaluator's)."""
        factors = list(self.factors if factors is None else factors)
        baselines = self.baselines()
        out = []
        for per_task in self.losses(programs, factors):
            out.append(score_from_losses(self.tasks, per_task, factors, len(self.seeds), baselines))
        return out

    def close(self) -> None:
        self.backend.close()


def score_programs(programs: Sequence["Program | str"], tasks: Sequence[str] | None = None, *, seed: int = 0,
                   device: str = "cpu", seeds: int = 1, factors: Sequence[float] = SEARCH_FACTORS,
                   steps: "int | None" = None, baseline: str = "adamw", backend: str = "local",
                   workers: int = 1) -> list[float]:
    """Fitness of each program: lower is better, 1.0 = as good as the tuned baseline, inf for failed.

    Each program trains on each task (default `DEFAULT_TASKS`) at its own ``lr``
    scaled by each of `factors`, from ``seeds`` initialisations (``seed``,
    ``seed + 1``, ...), all trials of all programs together in one batched run
    per task. A task's loss is the mean final validation loss over seeds; it is
    divided by the baseline's (AdamW tuned per task on a wide lr grid, same
    seeds and steps), and the fitness is the geometric mean over tasks at the
    best lr factor. A program that makes NaN/Inf, diverges or raises gets inf;
    it never stops the others.

    Args:
        programs: `Program` objects or anything `discover.load` takes (names, paths).
        tasks: task specs; default `DEFAULT_TASKS`.
        seed: first initialisation seed.
        device: ``"cpu"`` or ``"cuda"``.
        seeds: number of initialisation seeds per learning rate.
        factors: the lr grid, as multiples of each program's own ``lr``.
        steps: training steps per task (default: each task's own).
        baseline: the normalizing reference program.
        backend, workers: where to run (``local``; ``process`` with ``workers`` processes).

    Example:
        >>> [s > 0 for s in score_programs(["adamw", "sgd"], ["quadratic"], factors=[1.0])]
        [True, True]
    """
    ev = Evaluator(list(tasks or DEFAULT_TASKS), seeds=range(seed, seed + seeds), factors=factors,
                   baseline=baseline, steps=steps, device=device, backend=backend, workers=workers)
    try:
        return [s.fitness for s in ev.score([load(p) for p in programs])]
    finally:
        ev.close()
