"""Train a whole population of trials on one task with one forward/backward per step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .base import Task

__all__ = ["TrainResult", "train_population"]

#: ``update(params, grads, step)``: update every stacked parameter in place (runs under no_grad).
UpdateFn = Callable[[list[torch.Tensor], list[torch.Tensor], int], None]
#: ``on_rung(step, curve)``: at a rung, given the training losses so far ``(step, n_alive)`` of the
#: members still training, return a bool mask ``(n_alive,)`` of those to keep (None keeps all).
RungFn = Callable[[int, torch.Tensor], "torch.Tensor | None"]
#: ``on_shrink(keep)``: the population is about to keep only the members in the bool mask ``keep``
#: ``(n_alive,)``; shrink whatever per-member state ``update`` keeps the same way.
ShrinkFn = Callable[[torch.Tensor], None]


@dataclass
class TrainResult:
    """Outcome of :func:`train_population` for ``N`` members.

    ``val_loss`` is ``(N,)`` on the CPU with ``inf`` for failed members;
    ``reasons[i]`` says why member ``i`` failed (``None`` if it did not);
    ``train_curve`` is ``(steps_done, N)`` (CPU) of per-step training losses (NaN
    after a member was stopped at a rung); ``stopped[i]`` is the step at which
    member ``i`` was stopped early (None if it ran to the end).
    """

    val_loss: torch.Tensor
    failed: list[bool]
    reasons: list[str | None]
    train_curve: torch.Tensor
    steps_done: int
    seconds: float
    stopped: list[int | None] = field(default_factory=list)


def train_population(task: Task, seeds: Sequence[int], update: UpdateFn, steps: int | None = None,
                     *, time_limit: float | None = None, diverge_factor: float = 1e3,
                     device: torch.device | str | None = None,
                     dtype: torch.dtype | None = None, rungs: Sequence[int] = (),
                     on_rung: RungFn | None = None, on_shrink: ShrinkFn | None = None) -> TrainResult:
    """Train ``len(seeds)`` members of ``task`` for ``steps`` steps (default ``task.steps``).

    Each step computes the per-member training loss, back-propagates its sum
    (members are independent, so each member gets its own gradient), and calls
    ``update(params, grads, step)`` under ``torch.no_grad()``; ``update`` must change
    ``params`` in place (it is where each trial's own optimizer runs). A member
    fails -- and keeps training, but scores ``inf`` -- once its training loss is
    non-finite or above ``diverge_factor`` x its first loss (when that is finite and
    positive), or if its final
    validation loss is non-finite. When ``time_limit`` seconds of wall clock pass,
    training stops and every member fails with reason ``"time limit"`` (members
    that had already failed keep their own reason). Training
    also stops early once every member has failed. Exceptions raised by ``update``
    propagate: they cannot be pinned on one member.

    ``device``/``dtype`` (optional) call ``task.setup(device, dtype)`` first; by
    default a task that is not set up is set up on the CPU in float32.

    Multi-fidelity: after the update of each step in ``rungs``, ``on_rung(step,
    curve)`` sees the training losses so far of the members still training and
    returns which to keep; the others stop there (``stopped``). With
    ``on_shrink``, the population then shrinks (``on_shrink(keep)`` shrinks the
    per-member state ``update`` keeps), so stopped members cost nothing from then
    on -- and members that failed leave it too, at the next health check. Stopped
    members get an infinite validation loss.

    Example::

        task = get_task("mlp")
        lrs = torch.tensor([0.1, 0.3, 1.0])     # one learning rate per member
        def sgd(params, grads, step):
            for p, g in zip(params, grads):
                p.sub_(g * lrs.view(-1, *[1] * (g.dim() - 1)))
        res = train_population(task, seeds=[0, 0, 0], update=sgd)
        res.val_loss                              # (3,)
    """
    start = time.perf_counter()
    if device is not None or dtype is not None:
        task.setup(device if device is not None else "cpu", dtype or torch.float32)
    elif not task.is_setup:
        task.setup()
    steps = task.steps if steps is None else int(steps)
    params = task.init_params(seeds)
    n = params[0].shape[0]
    dev = params[0].device
    rung_set = {int(r) for r in rungs if 0 < int(r) < steps} if on_rung is not None else set()
    # Health is tracked on the device without syncing every step (cheap on GPU); the
    # host only looks at it every few steps to stop early when everyone has failed.
    # Per-member tensors hold the members still training; `alive` maps them to 0..n-1.
    alive = torch.arange(n, device=dev)
    curve = torch.full((steps, n), math.nan, device=dev, dtype=torch.float32)
    failed = torch.zeros(n, dtype=torch.bool, device=dev)
    fail_step = torch.zeros(n, dtype=torch.long, device=dev)
    nonfinite = torch.zeros(n, dtype=torch.bool, device=dev)
    stopped: list[int | None] = [None] * n
    init_loss: torch.Tensor | None = None
    check_every = 1 if dev.type == "cpu" else 16
    timed_out = False
    steps_done = 0
    for step in range(1, steps + 1):
        if time_limit is not None and time.perf_counter() - start > time_limit:
            timed_out = True
            break
        loss = task.train_loss(params, step)
        m = len(alive)
        if loss.shape != (m,):
            raise ValueError(f"{task.name}: train_loss returned shape {tuple(loss.shape)}, expected ({m},)")
        loss.sum().backward()
        with torch.no_grad():
            lv = loss.detach().float()
            curve[step - 1, alive] = lv
            if init_loss is None:
                init_loss = lv.clone()
            finite = torch.isfinite(lv)
            # Divergence is judged against a finite, positive first loss only (a task
            # with signed losses gets the non-finite check alone).
            ref_ok = torch.isfinite(init_loss) & (init_loss > 0)
            bad = ~finite | (ref_ok & (lv > diverge_factor * init_loss))
            new = bad & ~failed[alive]
            fail_step[alive] = torch.where(new, step, fail_step[alive])
            nonfinite[alive] |= new & ~finite
            failed[alive] |= bad
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            update(params, grads, step)
        for p in params:
            p.grad = None
        steps_done = step
        keep = None
        if step in rung_set:
            keep = on_rung(step, curve[:step, alive])
            if keep is not None:
                keep = keep.to(dev)
                for i in alive[~keep].tolist():
                    stopped[i] = step
        if on_shrink is not None and step % check_every == 0:
            # failed members cost as much as healthy ones (and NaN or denormal arithmetic can cost
            # more): they leave the population; their result is already decided
            healthy = ~failed[alive]
            keep = healthy if keep is None else keep & healthy
        if keep is not None and not bool(keep.all()):
            if on_shrink is None:
                raise ValueError("train_population: on_rung stopped members but no on_shrink was given")
            on_shrink(keep)
            alive, init_loss = alive[keep], init_loss[keep]
            params = [p.detach()[keep].requires_grad_(True) for p in params]
            if not len(alive):
                break
        if step % check_every == 0 and len(alive) and bool(failed[alive].all()):
            break
    val = torch.full((n,), math.inf)  # no score for an unfinished run; skip dead ones
    if len(alive) and not timed_out and not bool(failed[alive].all()):
        with torch.no_grad():
            val[alive.cpu()] = task.val_loss(params).detach().float().cpu()
    failed_l = failed.cpu().tolist()
    fail_step_l = fail_step.cpu().tolist()
    nonfinite_l = nonfinite.cpu().tolist()
    reasons: list[str | None] = []
    for i in range(n):
        if failed_l[i]:
            what = "non-finite train loss" if nonfinite_l[i] else f"train loss above {diverge_factor:g}x initial"
            reasons.append(f"{what} at step {fail_step_l[i]}")
        elif stopped[i] is not None:
            failed_l[i] = True
            reasons.append(f"stopped early at step {stopped[i]}")
        elif timed_out:
            failed_l[i] = True
            reasons.append("time limit")
        elif not math.isfinite(val[i].item()):
            failed_l[i] = True
            reasons.append("non-finite validation loss")
        else:
            reasons.append(None)
    val = torch.where(torch.tensor(failed_l), torch.full_like(val, math.inf), val)
    return TrainResult(val_loss=val, failed=failed_l, reasons=reasons,
                       train_curve=curve[:steps_done].cpu(), steps_done=steps_done,
                       seconds=time.perf_counter() - start, stopped=stopped)
