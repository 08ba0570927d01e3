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
from ..library import load
from ..tasks import DEFAULT_TASKS, META_TASKS
from .backends import BACKENDS, Backend, LocalBackend, ProcessBackend, get_backend
from .trials import run_item
from .evaluator import Evaluator, Fidelity, seed_spread
from .fitness import PROTOCOLS, SEARCH_FACTORS, WIDE_FACTORS, Score
from .work import ItemResult, StopRule, WorkItem, ensure_lr, make_work, merge_results

__all__ = ["BACKENDS", "Backend", "Evaluator", "Fidelity", "ItemResult", "LocalBackend", "ProcessBackend",
           "PROTOCOLS", "Score", "SEARCH_FACTORS", "StopRule", "WIDE_FACTORS", "WorkItem", "ensure_lr",
           "get_backend", "make_work", "merge_results", "run_item", "score_programs", "seed_spread",
           "DEFAULT_TASKS", "META_TASKS"]


def score_programs(programs: Sequence["Program | str"], tasks: Sequence[str] | None = None, *, seed: int = 0,
                   device: str = "cpu", seeds: int = 1, factors: Sequence[float] = SEARCH_FACTORS,
                   steps: "int | None" = None, baseline: str = "adamw", backend: str = "local",
                   workers: int = 1, protocol: str = "per_task") -> list[float]:
    """Fitness of each program: lower is better, 1.0 = as good as the tuned baseline, inf for failed.

    Each program trains on each task (default `DEFAULT_TASKS`) at its own ``lr``
    scaled by each of `factors` (with the task's lr schedule), from ``seeds``
    initialisations (``seed``, ``seed + 1``, ...), all trials of all programs
    together in one batched run per task. A task's loss is the mean final
    validation loss over seeds; it is divided by the baseline's (AdamW tuned per
    task on a wide lr grid, same seeds and steps), and the fitness is the
    geometric mean over tasks, each task at its best lr factor (``protocol=
    "shared"``: one factor for all tasks). A program that makes NaN/Inf, diverges
    or raises gets inf; it never stops the others.

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
        protocol: ``per_task`` or ``shared`` (see `discover.evaluate.fitness`).

    Example:
        >>> [s > 0 for s in score_programs(["adamw", "sgd"], ["quadratic"], factors=[1.0])]
        [True, True]
    """
    ev = Evaluator(list(tasks or DEFAULT_TASKS), seeds=range(seed, seed + seeds), factors=factors,
                   baseline=baseline, steps=steps, device=device, backend=backend, workers=workers,
                   protocol=protocol)
    try:
        return [s.fitness for s in ev.score([load(p) for p in programs])]
    finally:
        ev.close()
