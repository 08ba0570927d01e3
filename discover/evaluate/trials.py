"""Train the trials of a `WorkItem` together: one forward/backward per step for all of them.

Every trial (candidate x learning rate x seed) is one member of the task's
population axis. Each step, `discover.tasks.train_population` computes all
members' losses and gradients at once and calls our update, which applies
each candidate's own batched program (`discover.compile.population_device`: the
population kernel -- C++ on CPU, Triton on CUDA -- or the torch batched step where it cannot run) to its
contiguous slice of every parameter (views, updated in place) with the
trials' learning rates as a per-member tensor.

A candidate whose step raises, or whose time in its own update passes
``candidate_time_limit``, is marked failed: its parameters are set to NaN (so
the task sees non-finite losses and scores it inf) and it is skipped from then
on; the other candidates carry on. Members whose loss turns non-finite or
diverges are failed by `train_population` itself.
"""
from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Iterator

import torch

from ..compile.population_device import population_step
from ..compile.population_torch import BatchedStep, init_states
from ..lang.ir import Program
from ..tasks import Task, get_task, train_population
from .work import LR, ItemResult, WorkItem

_TASKS: dict[tuple[str, str], Task] = {}
CHECK_EVERY = 10  # steps between looks for candidates whose members are all non-finite


def task_instance(spec: str, device: str = "cpu") -> Task:
    """A set-up task for `spec` on `device`, built once per process (its data are fixed)."""
    key = (spec, str(device))
    if key not in _TASKS:
        task = get_task(spec)
        task.setup(device)
        _TASKS[key] = task
    return _TASKS[key]


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero while proxy training runs (where the CPU supports it).

    A candidate whose values underflow into denormals makes every op on them 10-100x slower on
    x86 CPUs, which slowed whole batches of search several-fold; the losses that decide fitness
    are far from that range, so they are not changed.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


def run_item(item: WorkItem, step_factory: Callable[[Program], BatchedStep] | None = None) -> ItemResult:
    """Train every trial of `item` on its task and return the final validation losses.

    The trials' learning rates follow the task's schedule (`Task.lr_factor`): the
    programs see ``lr * factor(step)``. With ``item.stop``, trials far behind are
    stopped at the rungs (see `StopRule`) and the population shrinks. `step_factory`
    makes each program's batched step (default `population_step`; `discover bench search`
    compares it with `compile_batched`).
    """
    start = time.perf_counter()
    task = task_instance(item.task, item.device)
    dtype = task.dtype
    device = torch.device(item.device)
    total_steps = task.steps if item.steps is None else int(item.steps)
    n_seeds = len(item.seeds)
    n_cand = len(item.programs)
    seeds: list[int] = []
    owner: list[tuple[int, int]] = []  # member -> (candidate, lr index)
    for c, lrs in enumerate(item.lrs):
        for j in range(len(lrs)):
            seeds.extend(item.seeds)
            owner.extend([(c, j)] * n_seeds)
    steps_fns = [(step_factory or population_step)(p) for p in item.programs]
    # The members' learning rates stay on the host: the population kernels read them as numbers
    # (a device tensor would make every candidate's update wait for the device's queue); the
    # torch batched step moves them to the parameters' device itself.
    base_lr = [torch.tensor([lr for lr in lrs for _ in range(n_seeds)], dtype=dtype) for lrs in item.lrs]
    hparams = [dict(p.defaults) for p in item.programs]
    members = [[m for m, (c2, _) in enumerate(owner) if c2 == c] for c in range(n_cand)]  # alive, by candidate
    alive = list(range(len(owner)))
    slices: list[tuple[int, int]] = []

    def layout() -> None:
        slices.clear()
        a = 0
        for c in range(n_cand):
            slices.append((a, a + len(members[c])))
            a += len(members[c])

    layout()
    states: list = [None] * n_cand
    failure: list[str | None] = [None] * n_cand
    spent = [0.0] * n_cand
    limit = item.candidate_time_limit
    stop = item.stop
    rungs = sorted(r for r in (stop.rungs if stop else ()) if 0 < r < total_steps)
    progress = [[[math.nan] * len(rungs) for _ in lrs] for lrs in item.lrs]
    stop_loss: dict[int, float] = {}  # member -> its progress when it was stopped
    member_steps = [0]

    def fail(c: int, params: list[torch.Tensor], reason: str) -> None:
        failure[c] = reason
        a, b = slices[c]
        for p in params:
            p[a:b] = math.nan

    def update(params: list[torch.Tensor], grads: list[torch.Tensor], step: int) -> None:
        factor = task.lr_factor(step, total_steps)
        member_steps[0] += len(alive)
        for c in range(n_cand):
            a, b = slices[c]
            if failure[c] is not None or a == b:
                continue
            if step % CHECK_EVERY == 0 and not bool(torch.isfinite(params[0][a:b]).any()):
                failure[c] = "non-finite parameters"
                continue
            ps = [p[a:b] for p in params]
            gs = [g[a:b] for g in grads]
            hparams[c][LR] = base_lr[c] * factor
            t0 = time.perf_counter()
            try:
                if states[c] is None:
                    states[c] = init_states(item.programs[c], ps, hparams[c])
                steps_fns[c](ps, gs, states[c], step, hparams[c])
            except Exception as exc:  # a broken candidate must never stop the others
                fail(c, params, f"raised {type(exc).__name__}: {exc}"[:200])
                continue
            spent[c] += time.perf_counter() - t0
            if limit is not None and spent[c] > limit:
                fail(c, params, f"time limit ({limit:g} s) at step {step}")

    def on_rung(step: int, curve: torch.Tensor) -> torch.Tensor:
        k = rungs.index(step)
        window = curve[-stop.window:].double()
        per_member = window.mean(0).tolist()  # NaN/inf stay: such a trial is not finite progress
        keep_member = [True] * len(alive)
        for c in range(n_cand):
            a, b = slices[c]
            if a == b:
                continue  # every trial of this candidate stopped at an earlier rung
            by_lr: dict[int, list[float]] = {}
            for i in range(a, b):
                by_lr.setdefault(owner[alive[i]][1], []).append(per_member[i])
            lrs = sorted(by_lr)
            prog = [sum(v) / len(v) if all(math.isfinite(x) for x in v) else math.inf
                    for v in (by_lr[j] for j in lrs)]
            for j, v in zip(lrs, prog):
                progress[c][j][k] = v
            keep_lr = dict(zip(lrs, stop.keep(prog, k) if failure[c] is None else [True] * len(lrs)))
            for i in range(a, b):
                j = owner[alive[i]][1]
                if not keep_lr[j]:
                    keep_member[i] = False
                    stop_loss[alive[i]] = progress[c][j][k]
        return torch.tensor(keep_member, dtype=torch.bool)

    def on_shrink(keep: torch.Tensor) -> None:
        # shrink every candidate's per-member state the way train_population shrinks the params
        keep_member = keep.tolist()
        for c in range(n_cand):
            a, b = slices[c]
            local = torch.tensor(keep_member[a:b], dtype=torch.bool)
            if bool(local.all()):
                continue
            members[c] = [m for m, kept in zip(members[c], keep_member[a:b]) if kept]
            idx = local.to(device)
            base_lr[c] = base_lr[c][local]
            if states[c] is not None:
                states[c] = {name: [buf[idx] for buf in bufs] for name, bufs in states[c].items()}
        alive[:] = [m for m, kept in zip(alive, keep_member) if kept]
        layout()

    with flush_denormals():
        result = train_population(task, seeds, update, steps=total_steps, time_limit=item.time_limit,
                                  rungs=rungs, on_rung=on_rung if rungs else None, on_shrink=on_shrink)
    val = result.val_loss.tolist()
    out, reasons = [], []
    for c in range(n_cand):
        ms = [m for m, (c2, _) in enumerate(owner) if c2 == c]
        finished = failure[c] is None and any(m not in stop_loss and math.isfinite(val[m]) for m in ms)
        losses, why = [], []
        for m in ms:
            if failure[c] is not None:
                losses.append(math.inf)
                why.append(failure[c])
            elif m in stop_loss:
                # A stopped lr only stands for the candidate when none of its lrs finished.
                losses.append(math.inf if finished else stop_loss[m])
                why.append(result.reasons[m])
            else:
                losses.append(float(val[m]))
                why.append(result.reasons[m])
        out.append(losses)
        reasons.append(why)
    return ItemResult(val_loss=out, reasons=reasons, seconds=time.perf_counter() - start,
                      steps_done=result.steps_done, progress=progress, member_steps=member_steps[0])
