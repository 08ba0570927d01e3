"""Train programs side by side on proxy tasks, each with its learning rate tuned on a grid.

Every (program, learning rate, seed) trial is one member of a population on a
`discover.tasks` task: one batched forward and backward serves all of them,
and each member is updated by a real `discover.ProgramOptimizer` (one per
program, one param group per member, holding views of that member's slice of
the stacked parameters). Nothing here depends on the search's evaluator.

`train_programs` gives per-program results on one task; `compare` runs several
tasks, and `compare_output` presents them (table, CSV files, plot). `proxy_fitness` turns the same
training into a fitness function for ablation (lower is better; best
validation loss over the grid divided by AdamW's, averaged over tasks).

Example::

    runs = train_programs([load("adam"), load("sgd")], get_task("quadratic"), steps=20)
    runs[0].best_val, runs[0].best_lr
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..lang.ir import Program
from .explain import state_bytes

LR_FACTORS = tuple(10.0 ** (k / 2) for k in range(-2, 7))
"""Default learning-rate grid, as factors of each program's default ``lr`` (0.1x to 1000x, half decades)."""

VAL_POINTS = 25
"""How many times `compare` measures the validation loss during training (plus once before)."""


@dataclass
class ProgramRun:
    """One program on one task: results at every learning rate and at the best one.

    ``name`` is what the user called it (the spec as typed: ``best_simple.opt``, ``adam``).
    Per-seed results are at the best learning rate: ``seed_vals`` the final validation
    losses, ``train_curves`` the training loss of every step, ``val_curves`` the
    validation loss at ``val_steps`` (step 0 is before training; empty unless asked for).
    """

    name: str
    task: str
    lrs: list[float]
    val_losses: list[float]
    best_lr: float
    best_val: float
    curve: list[float]  # training loss per step at the best learning rate (mean over seeds)
    step_seconds: float  # optimizer step time per member and step
    state_bytes: int  # optimizer state per member on this task
    failed: list[str | None] = field(default_factory=list)
    seed_vals: list[float] = field(default_factory=list)
    train_curves: list[list[float]] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_curves: list[list[float]] = field(default_factory=list)

    @property
    def val_se(self) -> float:
        """Standard error of the final validation loss over seeds (NaN with one seed or a failed one)."""
        n = len(self.seed_vals)
        if n < 2 or not all(math.isfinite(v) for v in self.seed_vals):
            return math.nan
        mean = sum(self.seed_vals) / n
        return math.sqrt(sum((v - mean) ** 2 for v in self.seed_vals) / (n - 1) / n)


def lr_grid(program: Program, factors: Sequence[float] = LR_FACTORS, lrs: Sequence[float] | None = None) -> list[float | None]:
    """The learning rates to try for `program` (``[None]`` when it has no ``lr``)."""
    if "lr" not in program.hparam_names:
        return [None]
    if lrs:
        return [float(x) for x in lrs]
    base = program.defaults["lr"]
    return [base * f for f in factors]


def train_programs(programs: Sequence[Program], task, *, factors: Sequence[float] = LR_FACTORS,
                   lrs: Sequence[float] | None = None, seeds: Sequence[int] = (0,),
                   steps: int | None = None, backend: str = "auto", names: Sequence[str] | None = None,
                   val_points: int = 0) -> list[ProgramRun]:
    """Train every program at every learning rate of its grid and every seed, together on `task`.

    `names` label the programs (default: their own names); with `val_points`, the validation
    loss is also measured that many times during training (evenly spaced, and at step 0)."""
    from ..optim import ProgramOptimizer
    from ..tasks import get_task, train_population

    task = get_task(task)
    names = list(names) if names is not None else [p.name for p in programs]
    grids = [lr_grid(p, factors, lrs) for p in programs]
    members = [(pi, lr, seed) for pi, grid in enumerate(grids) for lr in grid for seed in seeds]
    optimizers: list[tuple[object, list[tuple[int, list[torch.Tensor]]]]] = []
    seconds = [0.0] * len(programs)
    total = task.steps if steps is None else int(steps)
    every = max(1, math.ceil(total / val_points)) if val_points else 0
    val_at: list[int] = []
    val_rows: list[torch.Tensor] = []

    def measure(params: list[torch.Tensor], step: int) -> None:
        with torch.no_grad():
            val_rows.append(task.val_loss(params).detach().float().cpu())
        val_at.append(step)

    def update(params: list[torch.Tensor], grads: list[torch.Tensor], step: int) -> None:
        if every and step == 1:
            measure(params, 0)
        if not optimizers:
            for pi, program in enumerate(programs):
                groups, views = [], []
                for idx, (mi, lr, _seed) in enumerate(members):
                    if mi != pi:
                        continue
                    member = [p.detach()[idx] for p in params]
                    views.append((idx, member))
                    groups.append({"params": member} if lr is None else {"params": member, "lr": lr})
                optimizers.append((ProgramOptimizer(groups, program, backend=backend), views))
        for pi, (opt, views) in enumerate(optimizers):
            for idx, member in views:
                for view, grad in zip(member, grads):
                    view.grad = grad[idx]
            start = time.perf_counter()
            opt.step()
            seconds[pi] += time.perf_counter() - start
        if every and (step % every == 0 or step == total):
            measure(params, step)

    result = train_population(task, seeds=[s for (_, _, s) in members], update=update, steps=steps)
    val_table = torch.stack(val_rows) if val_rows else torch.empty(0, len(members))
    n_params = sum(math.prod(s) for s in task.param_shapes())
    n_tensors = len(task.param_shapes())
    runs = []
    for pi, program in enumerate(programs):
        grid = grids[pi]
        vals, reasons = [], []
        for lr in grid:
            idx = [i for i, (mi, l, _) in enumerate(members) if mi == pi and l == lr]
            v = result.val_loss[idx]
            vals.append(float(v.mean()) if bool(torch.isfinite(v).all()) else math.inf)
            reasons.append(next((result.reasons[i] for i in idx if result.reasons[i]), None))
        best = min(range(len(grid)), key=lambda k: vals[k])
        idx = [i for i, (mi, l, _) in enumerate(members) if mi == pi and l == grid[best]]
        curve = result.train_curve[:, idx].mean(1).tolist() if result.steps_done else []
        per_step = seconds[pi] / max(1, result.steps_done * len([m for m in members if m[0] == pi]))
        runs.append(ProgramRun(
            names[pi], task.name, [math.nan if l is None else l for l in grid], vals,
            math.nan if grid[best] is None else grid[best], vals[best], curve, per_step,
            state_bytes(program, n_params, n_tensors), reasons,
            seed_vals=[float(result.val_loss[i]) for i in idx],
            train_curves=[result.train_curve[:, i].tolist() for i in idx],
            val_steps=list(val_at), val_curves=[val_table[:, i].tolist() for i in idx] if val_at else []))
    return runs


def compare(specs: Sequence, tasks: Sequence[str], *, factors: Sequence[float] = LR_FACTORS,
            lrs: Sequence[float] | None = None, seeds: Sequence[int] = (0,), steps: int | None = None,
            log: Callable[[str], None] | None = None, val_points: int = VAL_POINTS) -> dict[str, list[ProgramRun]]:
    """Results by task for programs given by spec (built-in name, composition, path or Program),
    each labelled as given (a spec string as typed, a Program by its name), with validation-loss
    curves (`val_points` measurements per run)."""
    from ..library import load
    from ..tasks import get_task

    programs = [load(s) for s in specs]
    names = [s.name if isinstance(s, Program) else str(s) for s in specs]
    task_objs = [get_task(t) for t in tasks]  # unknown tasks fail before any training
    out = {}
    for task in task_objs:
        start = time.perf_counter()
        out[task.name] = train_programs(programs, task, factors=factors, lrs=lrs, seeds=seeds, steps=steps,
                                        names=names, val_points=val_points)
        if log:
            log(f"{task.name}: {time.perf_counter() - start:.1f}s")
    return out


def run_dir(root: Path = Path("runs")) -> Path:
    """A fresh ``runs/compare-<date-time>/`` folder."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / f"compare-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = root / f"compare-{stamp}-{k}"
    path.mkdir(parents=True)
    return path


def proxy_fitness(tasks: Sequence[str], *, factors: Sequence[float] = LR_FACTORS, seeds: Sequence[int] = (0,),
                  steps: int | None = None, baseline: str = "adamw") -> Callable[[list[Program]], list[float]]:
    """A batched fitness: per task, the best validation loss over the lr grid divided by the
    baseline's; averaged over tasks. Lower is better; a program that fails everywhere scores inf."""
    from ..library import load
    from ..tasks import get_task

    task_objs = [get_task(t) for t in tasks]
    base: dict[str, float] = {}

    def fitness(programs: list[Program]) -> list[float]:
        total = [0.0] * len(programs)
        for task in task_objs:
            if task.name not in base:
                (run,) = train_programs([load(baseline)], task, factors=factors, seeds=seeds, steps=steps)
                base[task.name] = run.best_val
            runs = train_programs(programs, task, factors=factors, seeds=seeds, steps=steps)
            for k, r in enumerate(runs):
                total[k] += r.best_val / base[task.name] if math.isfinite(r.best_val) else math.inf
        return [t / len(task_objs) for t in total]

    return fitness
