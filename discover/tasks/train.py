"""Train a whole population of trials on one task with one forward/backward per step."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .base import Task

__all__ = ["TrainResult", "train_population"]

#: ``update(params, grads, step)``: update every stacked parameter in place (runs under no_grad).
UpdateFn = Callable[[list[torch.Tensor], list[torch.Tensor], int], None]


@dataclass
class TrainResult:
    """Outcome of :func:`train_population` for ``N`` members.

    ``val_loss`` is ``(N,)`` on the CPU with ``inf`` for failed members;
    ``reasons[i]`` says why member ``i`` failed (``None`` if it did not);
    ``train_curve`` is ``(steps_done, N)`` (CPU) of per-step training losses.
    """

    val_loss: torch.Tensor
    failed: list[bool]
    reasons: list[str | None]
    train_curve: torch.Tensor
    steps_done: int
    seconds: float


def train_population(task: Task, seeds: Sequence[int], update: UpdateFn, steps: int | None = None,
                     *, time_limit: float | None = None, diverge_factor: float = 1e3,
                     device: torch.device | str | None = None,
                     dtype: torch.dtype | None = None) -> TrainResult:
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
    # Health is tracked on the device without syncing every step (cheap on GPU); the
    # host only looks at it every few steps to stop early when everyone has failed.
    curve = torch.empty(steps, n, device=dev, dtype=torch.float32)
    failed = torch.zeros(n, dtype=torch.bool, device=dev)
    fail_step = torch.zeros(n, dtype=torch.long, device=dev)
    nonfinite = torch.zeros(n, dtype=torch.bool, device=dev)
    init_loss: torch.Tensor | None = None
    check_every = 1 if dev.type == "cpu" else 16
    timed_out = False
    steps_done = 0
    for step in range(1, steps + 1):
        if time_limit is not None and time.perf_counter() - start > time_limit:
            timed_out = True
            break
        loss = task.train_loss(params, step)
        if loss.shape != (n,):
            raise ValueError(f"{task.name}: train_loss returned shape {tuple(loss.shape)}, expected ({n},)")
        loss.sum().backward()
        with torch.no_grad():
            lv = loss.detach().float()
            curve[step - 1] = lv
            if init_loss is None:
                init_loss = lv.clone()
            finite = torch.isfinite(lv)
            # Divergence is judged against a finite, positive first loss only (a task
            # with signed losses gets the non-finite check alone).
            ref_ok = torch.isfinite(init_loss) & (init_loss > 0)
            bad = ~finite | (ref_ok & (lv > diverge_factor * init_loss))
            new = bad & ~failed
            fail_step = torch.where(new, step, fail_step)
            nonfinite |= new & ~finite
            failed |= bad
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            update(params, grads, step)
        for p in params:
            p.grad = None
        steps_done = step
        if step % check_every == 0 and bool(failed.all()):
            break
    if timed_out or bool(failed.all()):
        val = torch.full((n,), math.inf)  # no score for an unfinished run; skip dead ones
    else:
        with torch.no_grad():
            val = task.val_loss(params).detach().float().cpu()
    failed_l = failed.cpu().tolist()
    fail_step_l = fail_step.cpu().tolist()
    nonfinite_l = nonfinite.cpu().tolist()
    reasons: list[str | None] = []
    for i in range(n):
        if failed_l[i]:
            what = "non-finite train loss" if nonfinite_l[i] else f"train loss above {diverge_factor:g}x initial"
            reasons.append(f"{what} at step {fail_step_l[i]}")
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
                       seconds=time.perf_counter() - start)
