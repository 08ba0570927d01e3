"""`discover bench fidelity`: is multi-fidelity stopping safe, and what does it save?

Trains a sample of the search's own children (random walks of the mutator from
``--init``) on the search tasks to the end, recording each trial's progress at
the rungs, then replays the stopping rule (`discover.evaluate.StopRule`) for
several margins, offline, on the same numbers:

* *lost best lr*: (candidate, task) pairs where the lr that finished best was
  stopped early while another lr of the candidate went on;
* *lost winners*: candidates whose fitness trained to the end beats the warm start
  but whose fitness with stopping does not (what early stopping must never do);
  *cut winners*: such candidates cut on some task (their fitness there is then the
  pessimistic part-way value, which may still leave them winners);
* *rank agreement*: Spearman correlation between fitness with and without stopping;
* *saved*: the fraction of trial-steps not trained.
"""
from __future__ import annotations

import argparse
import math
import random
import time

from . import malloc_note


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--init", default="adamw", help="warm start the children come from (default adamw)")
    p.add_argument("--children", type=int, default=48, help="children to sample (default 48)")
    p.add_argument("--tasks", nargs="+", default=None, help="tasks (default: the search's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margins", default="0.25,0.5,1.0", help="reference margins to replay (default 0.25,0.5,1.0)")
    p.add_argument("--lr-margins", default="0.25,0.5,1.0", help="lr margins to replay (default 0.25,0.5,1.0)")


def _spearman(a: list[float], b: list[float]) -> float:
    def ranks(x: list[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        for k, i in enumerate(order):
            r[i] = float(k)
        return r

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


def main(args: argparse.Namespace) -> int:
    import torch

    from ..evaluate import Evaluator, Fidelity, StopRule
    from ..evaluate.fitness import per_lr, score_from_losses
    from ..library import load
    from ..search.mutate import Mutator, NoChild
    from ..search.program import prepare_init, prune
    from ..tasks import DEFAULT_TASKS

    torch.set_num_threads(1)
    print(malloc_note())
    tasks = args.tasks or list(DEFAULT_TASKS)
    fid = Fidelity()
    ev = Evaluator(tasks, fidelity=fid)
    t0 = time.perf_counter()
    state = ev.baseline_state()
    print(f"baseline tuned in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{t} lr {v['lr']:.3g} progress {['%.3g' % x for x in v['progress']]}" for t, v in state.items()))
    warm = prepare_init(load(args.init))
    warm_score = ev.score([prune(warm)], factors=[10 ** (k / 2) for k in range(-4, 5)], stop=False)[0]
    lrs = warm_score.lrs
    bar_progress = warm_score.progress  # as search does: the bar is the warm start's progress
    mut, rng = Mutator(), random.Random(args.seed)
    children, current = [], warm
    while len(children) < args.children:
        try:
            child, _, _ = mut.child(current, rng)
        except NoChild:
            current = warm
            continue
        children.append(prune(child))
        current = child if rng.random() < 0.7 else warm
    record = {t: StopRule(rungs=fid.rung_steps(ev.task_steps(t)), lr_margin=math.inf, window=fid.window)
              for t in tasks}
    t0 = time.perf_counter()
    losses, _, progress = ev.run(children, ev.factors, centers=[lrs] * len(children), stop=record)
    print(f"trained {len(children)} children x {len(ev.factors)} lrs x {len(tasks)} tasks to the end in "
          f"{time.perf_counter() - t0:.0f} s")
    base = ev.baselines()
    full = [score_from_losses(tasks, l, ev.factors, 1, base).fitness for l in losses]
    bar = warm_score.fitness
    print(f"warm start fitness {bar:.4f}; children better than it: {sum(f < bar for f in full)}")
    margins = [float(x) for x in args.margins.split(",")]
    lr_margins = [float(x) for x in args.lr_margins.split(",")]
    print(f"\n{'margin':>7} {'lr_margin':>9} {'saved':>7} {'lost best lr':>13} {'lost winners':>13} "
          f"{'cut winners':>12} {'spearman':>9}")
    for m in margins:
        for lm in lr_margins:
            saved = total = 0
            lost_lr = lost_win = cut_win = 0
            fits = []
            for c in range(len(children)):
                per_task = []
                cut_here = False
                for k, t in enumerate(tasks):
                    rule = StopRule(rungs=record[t].rungs, reference=tuple(bar_progress[t]), margin=m,
                                    lr_margin=lm, window=fid.window)
                    steps = ev.task_steps(t)
                    alive = [True] * len(ev.factors)
                    stop_at = [steps] * len(ev.factors)
                    stop_val = [math.nan] * len(ev.factors)
                    for r, step in enumerate(rule.rungs):
                        idx = [j for j in range(len(alive)) if alive[j]]
                        if not idx:
                            break
                        prog = [progress[c][k][j][r] for j in idx]
                        keep = rule.keep([v if math.isfinite(v) else math.inf for v in prog], r)
                        for j, kept in zip(idx, keep):
                            if not kept:
                                alive[j], stop_at[j], stop_val[j] = False, step, progress[c][k][j][r]
                    total += steps * len(alive)
                    saved += sum(steps - s for s in stop_at)
                    finals = per_lr(losses[c][k], 1)
                    best_j = min(range(len(finals)), key=lambda j: (finals[j], j))
                    if math.isfinite(finals[best_j]) and not alive[best_j] and any(alive):
                        lost_lr += 1
                    if not any(alive):
                        cut_here = True
                    any_done = any(alive)
                    per_task.append([finals[j] if alive[j] else (math.inf if any_done else stop_val[j])
                                     for j in range(len(alive))])
                f = score_from_losses(tasks, per_task, ev.factors, 1, base).fitness
                fits.append(f if math.isfinite(f) else 1e9)
                if full[c] < bar and not f < bar:
                    lost_win += 1  # beat the warm start trained to the end, not with stopping
                cut_win += cut_here and full[c] < bar
            rho = _spearman([f if math.isfinite(f) else 1e9 for f in full], fits)
            print(f"{m:>7.2f} {lm:>9.2f} {saved / max(total, 1):>7.1%} {lost_lr:>13d} {lost_win:>13d} "
                  f"{cut_win:>12d} {rho:>9.3f}")
    return 0
