"""Units of evaluation work: what to train (a `WorkItem`) and what came back (an `ItemResult`).

Evaluation is split in three steps so that any backend (in-process, local
processes, a cluster) gives the same results for the same inputs:

1. *make the batch of work*: `make_work` turns (programs, tasks, grid, seeds)
   into a list of `WorkItem` in a fixed order; how candidates are grouped into
   items (``chunk``) is part of the input, not of the backend;
2. *run the batch*: a backend (`discover.evaluate.backends`) runs every item
   and returns one `ItemResult` per item, in the same order;
3. *merge*: `merge_results` puts the losses back per (program, task) in the
   order of the inputs.

Items and results are plain picklable data (programs are frozen IR dataclasses).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from ..lang.ir import Program
from ..lang.passes import LR, ensure_lr  # noqa: F401  (ensure_lr: kept importable from here)


@dataclass(frozen=True)
class WorkItem:
    """Train `programs` on one task: every program at each of its learning rates, for every seed.

    ``lrs[c]`` are the absolute learning rates of program ``c``'s trials; member
    order is candidate-major, then learning rate, then seed, so a candidate's
    trials are one contiguous slice of the population axis.
    """

    task: str
    programs: tuple[Program, ...]
    lrs: tuple[tuple[float, ...], ...]
    seeds: tuple[int, ...]
    steps: int | None = None
    device: str = "cpu"
    candidate_time_limit: float | None = None
    time_limit: float | None = None
    key: tuple = ()  # (task index, chunk index): where the result goes when merging
    stop: "StopRule | None" = None  # multi-fidelity: when to stop trials that are far behind

    @property
    def n_members(self) -> int:
        return sum(len(l) for l in self.lrs) * len(self.seeds)


@dataclass(frozen=True)
class StopRule:
    """Multi-fidelity evaluation of one task: stop trials early that cannot matter.

    At each step in ``rungs``, a trial's progress is its training loss averaged
    over the last ``window`` steps and over its seeds. A trial (one lr of one
    candidate) stops there when it is more than ``lr_margin`` behind the best lr of
    the same candidate (it will not be the lr the grid picks), and every trial of a
    candidate stops when its best lr is more than ``margin`` behind ``reference[k]``,
    the tuned baseline's progress at rung ``k`` on the same seeds (it is far behind
    the bar). A stopped trial's loss is its progress at the rung: a training loss
    part-way, which is higher than a finished run's, so stopping never makes a
    candidate look better.

    Example:
        >>> rule = StopRule(rungs=(50,), reference=(2.0,), margin=0.5, lr_margin=1.0)
        >>> rule.keep([3.5, 2.5, 6.0])        # trials by lr: the 3rd is > 2x the best
        [True, True, False]
        >>> rule.keep([3.5, 3.2], rung=0)     # best 3.2 > 1.5 x 2.0: all stop
        [False, False]
    """

    rungs: tuple[int, ...]
    reference: tuple[float, ...] = ()
    margin: float = 0.5
    lr_margin: float = 1.0
    window: int = 10

    def keep(self, progress: Sequence[float], rung: int | None = None) -> list[bool]:
        """Which of one candidate's trials (their progress, by lr) keep training at rung index `rung`."""
        best = min(progress)
        if not math.isfinite(best):
            return [False] * len(progress)
        if rung is not None and rung < len(self.reference) and best > (1 + self.margin) * self.reference[rung]:
            return [False] * len(progress)
        return [v <= (1 + self.lr_margin) * best for v in progress]


@dataclass
class ItemResult:
    """Final validation losses of one `WorkItem`: ``val_loss[c][j]`` for candidate ``c`` and
    trial ``j = lr_index * len(seeds) + seed_index`` (inf where the trial failed; a trial
    stopped early has its progress at the rung, see `StopRule`); ``reasons[c][j]`` says why
    a trial failed or stopped; ``progress[c][lr][k]`` is the mean-over-seeds training loss
    of each lr at rung ``k`` (NaN after it stopped)."""

    val_loss: list[list[float]]
    reasons: list[list[str | None]] = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0
    progress: list[list[list[float]]] = field(default_factory=list)  # [c][lr][rung]: see StopRule
    member_steps: int = 0  # member-steps trained (the compute spent, for multi-fidelity accounting)


def make_work(programs: Sequence[Program], tasks: Sequence[str], factors: Sequence[float],
              seeds: Sequence[int], *, steps: dict[str, int | None] | int | None = None, device: str = "cpu",
              chunk: int | None = None, candidate_time_limit: float | None = None,
              time_limit: float | None = None, centers: Sequence[dict[str, float] | None] | None = None,
              stop: "dict[str, StopRule] | None" = None) -> list[WorkItem]:
    """The work items that train every program on every task over the lr grid ``factors`` x its lr.

    A program's lr on a task is ``centers[i][task]`` where given (per-task lrs
    found earlier), else its own ``lr``. ``chunk`` candidates go in one item
    (default: all of them, one item per task). Items are ordered task-major, then
    chunk. ``stop[task]`` turns on multi-fidelity stopping on that task.
    """
    programs = [ensure_lr(p) for p in programs]
    centers = list(centers) if centers is not None else [None] * len(programs)
    if len(centers) != len(programs):
        raise ValueError(f"{len(centers)} lr centers for {len(programs)} programs")
    chunk = max(1, chunk or len(programs) or 1)
    items = []
    for t, task in enumerate(tasks):
        task_steps = steps.get(task) if isinstance(steps, dict) else steps
        for k, start in enumerate(range(0, len(programs), chunk)):
            part = programs[start:start + chunk]
            lrs = tuple(tuple(center_lr(p, c, task) * f for f in factors)
                        for p, c in zip(part, centers[start:start + chunk]))
            items.append(WorkItem(task=task, programs=tuple(part), lrs=lrs, seeds=tuple(int(s) for s in seeds),
                                  steps=task_steps, device=device, candidate_time_limit=candidate_time_limit,
                                  time_limit=time_limit, key=(t, k), stop=(stop or {}).get(task)))
    return items


def center_lr(program: Program, centers: dict[str, float] | None, task: str) -> float:
    """The lr a grid multiplies for `program` on `task`: its per-task lr if known, else its own."""
    if centers and task in centers:
        return float(centers[task])
    return float(program.defaults[LR])


def merge_results(items: Sequence[WorkItem], results: Sequence[ItemResult], n_programs: int,
                  n_tasks: int) -> list[list[list[float]]]:
    """Losses as ``out[program][task][trial]`` from the results of `make_work`'s items."""
    return merge_field(items, results, n_programs, n_tasks, "val_loss")


def merge_field(items: Sequence[WorkItem], results: Sequence[ItemResult], n_programs: int, n_tasks: int,
                name: str) -> list[list]:
    """Any per-candidate field of the results (``val_loss``, ``reasons``, ``progress``) as ``[program][task]``."""
    out: list[list] = [[None] * n_tasks for _ in range(n_programs)]
    offsets: dict[int, int] = {}
    for item, res in sorted(zip(items, results), key=lambda ir: ir[0].key):
        t = item.key[0]
        start = offsets.get(t, 0)
        values = getattr(res, name)
        for c in range(len(res.val_loss)):
            out[start + c][t] = list(values[c]) if c < len(values) else []
        offsets[t] = start + len(res.val_loss)
    return out
