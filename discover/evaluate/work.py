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

from dataclasses import dataclass, field
from typing import Sequence

from ..lang.ir import HParam, Program, Ref, Stmt

LR = "lr"
"""The hyperparameter the learning-rate grid scales."""


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

    @property
    def n_members(self) -> int:
        return sum(len(l) for l in self.lrs) * len(self.seeds)


@dataclass
class ItemResult:
    """Final validation losses of one `WorkItem`: ``val_loss[c][j]`` for candidate ``c`` and
    trial ``j = lr_index * len(seeds) + seed_index`` (inf where the trial failed)."""

    val_loss: list[list[float]]
    reasons: list[list[str | None]] = field(default_factory=list)
    seconds: float = 0.0
    steps_done: int = 0


def ensure_lr(program: Program) -> Program:
    """`program` with an ``lr`` hyperparameter the grid can scale.

    A program without one gets ``lr=1`` multiplying its update, which does not
    change what it does at the default.
    """
    if LR in program.hparam_names:
        return program
    taken = {s.target for s in program.body}
    name = "_lr_scaled"
    while name in taken:
        name += "_"
    body = program.body + (Stmt(name, "mul", (Ref(LR), program.update)),)
    return program.with_(hparams=program.hparams + (HParam(LR, 1.0),), body=body,
                         returns=(Ref(name),) + program.returns[1:])


def make_work(programs: Sequence[Program], tasks: Sequence[str], factors: Sequence[float],
              seeds: Sequence[int], *, steps: dict[str, int | None] | int | None = None, device: str = "cpu",
              chunk: int | None = None, candidate_time_limit: float | None = None,
              time_limit: float | None = None) -> list[WorkItem]:
    """The work items that train every program on every task over the lr grid ``factors`` x own lr.

    ``chunk`` candidates go in one item (default: all of them, one item per task).
    Items are ordered task-major, then chunk.
    """
    programs = [ensure_lr(p) for p in programs]
    chunk = max(1, chunk or len(programs) or 1)
    items = []
    for t, task in enumerate(tasks):
        task_steps = steps.get(task) if isinstance(steps, dict) else steps
        for k, start in enumerate(range(0, len(programs), chunk)):
            part = programs[start:start + chunk]
            lrs = tuple(tuple(p.defaults[LR] * f for f in factors) for p in part)
            items.append(WorkItem(task=task, programs=tuple(part), lrs=lrs, seeds=tuple(int(s) for s in seeds),
                                  steps=task_steps, device=device, candidate_time_limit=candidate_time_limit,
                                  time_limit=time_limit, key=(t, k)))
    return items


def merge_results(items: Sequence[WorkItem], results: Sequence[ItemResult], n_programs: int,
                  n_tasks: int) -> list[list[list[float]]]:
    """Losses as ``out[program][task][trial]`` from the results of `make_work`'s items."""
    out: list[list[list[float] | None]] = [[None] * n_tasks for _ in range(n_programs)]
    offsets: dict[int, int] = {}
    for item, res in sorted(zip(items, results), key=lambda ir: ir[0].key):
        t = item.key[0]
        start = offsets.get(t, 0)
        for c, losses in enumerate(res.val_loss):
            out[start + c][t] = list(losses)
        offsets[t] = start + len(res.val_loss)
    return out  # type: ignore[return-value]
