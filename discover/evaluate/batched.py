"""Train the trials of a `WorkItem` together: one forward/backward per step for all of them.

Every trial (candidate x learning rate x seed) is one member of the task's
population axis. Each step, `discover.tasks.train_population` computes all
members' losses and gradients at once and calls our update, which applies
each candidate's own batched program (`discover.compile.population`: the
population kernel, or the torch batched step where it cannot run) to its
contiguous slice of every parameter (views, updated in place) with the
trials' learning rates as a per-member tensor.

A candidate whose step raises, or whose time in its own update passes
``candidate_time_limit``, is marked failed: its parameters are set to NaN (so
the task sees non-finite losses and scores it inf) and it is skipped from then
on; the other candidates carry on. Members whose loss turns non-finite or
diverges are failed by `train_population` itself.
"""
from __future__ import annotations

import math
import time

import torch

from ..compile.batched import init_states
from ..compile.population import population_step
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


def run_item(item: WorkItem) -> ItemResult:
    """Train every trial of `item` on its task and return the final validation losses."""
    start = time.perf_counter()
    task = task_instance(item.task, item.device)
    dtype = task.dtype
    device = torch.device(item.device)
    n_seeds = len(item.seeds)
    seeds, slices = [], []
    for lrs in item.lrs:
        a = len(seeds)
        for _ in lrs:
            seeds.extend(item.seeds)
        slices.append((a, len(seeds)))
    steps_fns = [population_step(p) for p in item.programs]
    hparams = []
    for p, lrs in zip(item.programs, item.lrs):
        hp: dict = dict(p.defaults)
        hp[LR] = torch.tensor([lr for lr in lrs for _ in range(n_seeds)], dtype=dtype, device=device)
        hparams.append(hp)
    n_cand = len(item.programs)
    states: list = [None] * n_cand
    failure: list[str | None] = [None] * n_cand
    spent = [0.0] * n_cand
    limit = item.candidate_time_limit

    def fail(c: int, params: list[torch.Tensor], reason: str) -> None:
        failure[c] = reason
        a, b = slices[c]
        for p in params:
            p[a:b] = math.nan

    def update(params: list[torch.Tensor], grads: list[torch.Tensor], step: int) -> None:
        for c in range(n_cand):
            if failure[c] is not None:
                continue
            a, b = slices[c]
            if step % CHECK_EVERY == 0 and not bool(torch.isfinite(params[0][a:b]).any()):
                failure[c] = "non-finite parameters"
                continue
            ps = [p[a:b] for p in params]
            gs = [g[a:b] for g in grads]
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

    result = train_population(task, seeds, update, steps=item.steps, time_limit=item.time_limit)
    val = result.val_loss.tolist()
    out, reasons = [], []
    for c, (a, b) in enumerate(slices):
        losses = [math.inf if failure[c] is not None else float(v) for v in val[a:b]]
        why = [failure[c] if failure[c] is not None else r for r in result.reasons[a:b]]
        out.append(losses)
        reasons.append(why)
    return ItemResult(val_loss=out, reasons=reasons, seconds=time.perf_counter() - start,
                      steps_done=result.steps_done)
