"""`Evaluator`: scores programs on a fixed set of tasks against a tuned baseline (what search uses).

Its settings are kept (tasks, seeds, lr grid, protocol, device, backend), the
baseline is tuned once per task (its losses, lrs and progress curve are a
public, JSON-able `baseline_state`), and scoring returns full `Score` records.

Multi-fidelity (`Fidelity`): the tuned baseline's training-loss progress at a
few rungs (fractions of each task's steps) is recorded once; a candidate's
trials are then stopped at a rung when they are far behind (see `StopRule`),
so compute goes to the promising ones.

Example:
    >>> from discover import load
    >>> ev = Evaluator(["quadratic"], steps=20, factors=[1.0])
    >>> score = ev.score([load("adamw")])[0]
    >>> score.fitness >= 1.0 - 1e-9, sorted(score.lrs)
    (True, ['quadratic'])
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

from ..lang.ir import Program
from ..lang.printer import unparse
from ..library import load
from ..tasks import get_task
from .backends import Backend, get_backend
from .fitness import PROTOCOLS, SEARCH_FACTORS, WIDE_FACTORS, Score, per_lr, score_from_losses
from .work import StopRule, center_lr, ensure_lr, make_work, merge_field

__all__ = ["Evaluator", "Fidelity", "seed_spread"]

_BASELINE_MEMO: dict[tuple, dict] = {}


@dataclass(frozen=True)
class Fidelity:
    """Multi-fidelity settings: rungs as fractions of each task's steps, and the margins of `StopRule`.

    Example:
        >>> Fidelity().rung_steps(200)
        (50, 100)
    """

    rungs: tuple[float, ...] = (0.25, 0.5)
    margin: float = 0.5
    lr_margin: float = 1.0  # 0.5 lost the best lr of 1 in 48 sgd children (`discover bench fidelity`)
    window: int = 10

    def rung_steps(self, steps: int) -> tuple[int, ...]:
        return tuple(sorted({max(1, round(f * steps)) for f in self.rungs if 0 < f < 1}))

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def seed_spread(losses: Sequence[float]) -> float:
    """Relative seed-to-seed spread of a loss: sample standard deviation / mean (inf if a seed failed).

    Example:
        >>> round(seed_spread([1.0, 1.2, 0.8]), 3)
        0.2
    """
    if len(losses) < 2 or not all(math.isfinite(v) and v > 0 for v in losses):
        return math.inf
    mean = sum(losses) / len(losses)
    var = sum((v - mean) ** 2 for v in losses) / (len(losses) - 1)
    return math.sqrt(var) / mean


class Evaluator:
    """Scores programs on a fixed set of tasks against a tuned baseline.

    Args:
        tasks: task specs (registered names or ``"pkg.mod:Class"``).
        seeds: initialisation seeds of each trial (the same for every program).
        factors: the lr grid of `score` (multiples of each program's lr on each task).
        protocol: ``per_task`` (each task at its best lr; the default) or ``shared``
            (one lr factor for all tasks); see `discover.evaluate.fitness`.
        baseline: the reference program (default AdamW), tuned per task on
            ``baseline_factors``; fitness is loss / baseline loss.
        steps: training steps (default each task's own), an int for all, or per task.
        device: ``"cpu"`` or ``"cuda"``.
        backend: a `Backend` or a name (``local``, ``process``, ``ray``, ``auto``) with ``workers``.
        backend_options: options of a named backend (for ``ray``: address, gpus_per_worker, ...).
        chunk: candidates per work item (default all: one item per task).
        candidate_time_limit: seconds of update time per candidate per task before it fails.
        fidelity: multi-fidelity stopping (`Fidelity`), or None to train every trial to the end.
        baseline_state: a saved `baseline_state()` (e.g. from a checkpoint), so the baseline
            is not trained again.
    """

    def __init__(self, tasks: Sequence[str], *, seeds: Sequence[int] = (0,),
                 factors: Sequence[float] = SEARCH_FACTORS, protocol: str = "per_task",
                 baseline: "str | Program" = "adamw", baseline_factors: Sequence[float] = WIDE_FACTORS,
                 steps: "int | dict | None" = None, device: str = "cpu", backend: "Backend | str" = "local",
                 workers: int = 1, chunk: int | None = None, candidate_time_limit: float | None = None,
                 fidelity: Fidelity | None = None, baseline_state: dict | None = None,
                 backend_options: dict | None = None) -> None:
        if not tasks:
            raise ValueError("no tasks to evaluate on")
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown lr protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
        for t in tasks:
            get_task(t)  # a clear error for an unknown task, before any training
        self.tasks = list(tasks)
        self.seeds = [int(s) for s in seeds]
        self.factors = [float(f) for f in factors]
        self.protocol = protocol
        self.baseline = ensure_lr(load(baseline))
        self.baseline_factors = [float(f) for f in baseline_factors]
        self.steps = steps
        self.device = device
        self.backend = (get_backend(backend, workers, **(backend_options or {})) if isinstance(backend, str)
                        else backend)
        self.chunk = chunk
        self.candidate_time_limit = candidate_time_limit
        self.fidelity = fidelity
        self._baseline: dict[str, dict] = {t: dict(v) for t, v in (baseline_state or {}).items()}
        self.member_steps = 0  # trial-steps trained so far (multi-fidelity saves these)
        self.reference: dict[str, list[float]] = {}  # the stopping bar per task (default: the baseline's)

    # ------------------------------------------------------------------ the baseline
    def task_steps(self, task: str) -> int:
        """Training steps of `task` in this evaluator."""
        s = self.steps.get(task) if isinstance(self.steps, dict) else self.steps
        return int(s) if s is not None else get_task(task).steps

    def _memo_key(self, task: str) -> tuple:
        return (task, tuple(self.seeds), self.task_steps(task), self.device, tuple(self.baseline_factors),
                unparse(self.baseline), self.fidelity)

    def _tune_baseline(self, tasks: list[str]) -> None:
        # The baseline always trains to the end; its progress at the rungs is recorded for stopping.
        stop = {t: StopRule(rungs=self.fidelity.rung_steps(self.task_steps(t)), lr_margin=math.inf,
                            window=self.fidelity.window) for t in tasks} if self.fidelity else None
        losses, _, progress = self.run([self.baseline], self.baseline_factors, tasks=tasks, stop=stop)
        lr0 = self.baseline.defaults["lr"]
        for k, t in enumerate(tasks):
            means = per_lr(losses[0][k], len(self.seeds))
            j = min(range(len(means)), key=lambda i: (means[i], i))
            if not math.isfinite(means[j]):
                raise ValueError(f"the baseline {self.baseline.name} fails on task {t!r} at every learning rate")
            self._baseline[t] = {"loss": means[j], "lr": float(f"{lr0 * self.baseline_factors[j]:.12g}"),
                                 "progress": list(progress[0][k][j]) if progress[0][k] else []}
            _BASELINE_MEMO[self._memo_key(t)] = dict(self._baseline[t])

    def baseline_state(self) -> dict[str, dict]:
        """The tuned baseline per task: ``{"loss", "lr", "progress"}`` (computed once; JSON-able)."""
        missing = [t for t in self.tasks if t not in self._baseline]
        for t in list(missing):
            if self._memo_key(t) in _BASELINE_MEMO:
                self._baseline[t] = dict(_BASELINE_MEMO[self._memo_key(t)])
                missing.remove(t)
        if missing:
            self._tune_baseline(missing)
        return {t: dict(self._baseline[t]) for t in self.tasks}

    def restore_baseline(self, state: dict[str, dict]) -> None:
        """Adopt a saved `baseline_state()` (e.g. from a search checkpoint), so the baseline is not
        trained again: a resumed search must score against the very numbers it started with.

        Example:
            >>> ev = Evaluator(["quadratic"])
            >>> ev.restore_baseline({"quadratic": {"loss": 0.5, "lr": 0.01, "progress": []}})
            >>> ev.baselines()
            {'quadratic': 0.5}
        """
        self._baseline.update({t: dict(v) for t, v in state.items()})

    def baselines(self) -> dict[str, float]:
        """The baseline's best mean loss per task over ``baseline_factors`` (computed once)."""
        return {t: v["loss"] for t, v in self.baseline_state().items()}

    def baseline_lrs(self) -> dict[str, float]:
        """The baseline's tuned lr per task."""
        return {t: v["lr"] for t, v in self.baseline_state().items()}

    def stop_rules(self, record_only: bool = False) -> dict[str, StopRule] | None:
        """The multi-fidelity stopping rule of every task (None when fidelity is off).

        The bar is `reference` where set (search sets it to its warm start's progress: a child
        is only cut when it is far behind the program it descends from), else the baseline's.
        ``record_only``: rules that stop nothing and only record progress.
        """
        if self.fidelity is None:
            return None
        state = self.baseline_state()
        rules = {}
        for t in self.tasks:
            rungs = self.fidelity.rung_steps(self.task_steps(t))
            if record_only:
                rules[t] = StopRule(rungs=rungs, lr_margin=math.inf, window=self.fidelity.window)
                continue
            ref = tuple(self.reference.get(t) or state[t].get("progress") or ())
            rules[t] = StopRule(rungs=rungs, reference=ref if len(ref) == len(rungs) else (),
                                margin=self.fidelity.margin, lr_margin=self.fidelity.lr_margin,
                                window=self.fidelity.window)
        return rules

    def seed_noise(self, n_seeds: int = 5) -> dict[str, float]:
        """Each task's seed-to-seed spread: the tuned baseline at its lr on ``n_seeds`` seeds,
        standard deviation / mean of the final validation loss (`seed_spread`). Computed once.

        The spread of a fitness (a geometric mean over tasks of single-seed ratios) is then about
        ``sqrt(sum(spread ** 2)) / n_tasks`` relative, divided by ``sqrt(len(seeds))``.
        """
        state = self.baseline_state()
        todo = [t for t in self.tasks if len(state[t].get("seed_losses", [])) < n_seeds]
        if todo:
            seeds = list(range(self.seeds[0], self.seeds[0] + n_seeds))
            items = make_work([self.baseline], todo, [1.0], seeds, steps=self._steps_for(todo), device=self.device,
                              candidate_time_limit=self.candidate_time_limit,
                              centers=[{t: state[t]["lr"] for t in todo}])
            results = self.backend.run(items)
            losses = merge_field(items, results, 1, len(todo), "val_loss")[0]
            for t, l in zip(todo, losses):
                self._baseline[t]["seed_losses"] = list(l)
        return {t: seed_spread(self._baseline[t]["seed_losses"][:n_seeds]) for t in self.tasks}

    def fitness_noise(self, n_seeds: int = 5) -> float:
        """The relative seed-to-seed spread of this evaluator's fitness (see `seed_noise`)."""
        spread = list(self.seed_noise(n_seeds).values())
        if not all(math.isfinite(s) for s in spread):
            return math.inf
        return math.sqrt(sum(s * s for s in spread)) / len(spread) / math.sqrt(len(self.seeds))

    # ------------------------------------------------------------------ training
    def _steps_for(self, tasks: Sequence[str]) -> dict[str, int | None] | int | None:
        return self.steps if not isinstance(self.steps, dict) else {t: self.steps.get(t) for t in tasks}

    def run(self, programs: Sequence[Program], factors: Sequence[float], tasks: Sequence[str] | None = None,
            centers: Sequence[dict[str, float] | None] | None = None,
            stop: dict[str, StopRule] | None = None) -> tuple[list, list, list]:
        """Train `programs` and return ``(losses, reasons, progress)``, each ``[program][task][...]``:
        final validation losses and failure reasons by trial (lr-major, then seed), and each lr's
        progress at the rungs (see `ItemResult`)."""
        tasks = list(tasks or self.tasks)
        if not programs:
            return [], [], []
        items = make_work(programs, tasks, factors, self.seeds, steps=self._steps_for(tasks), device=self.device,
                          chunk=self.chunk, candidate_time_limit=self.candidate_time_limit, centers=centers,
                          stop=stop)
        results = self.backend.run(items)
        self.member_steps += sum(r.member_steps for r in results)
        return tuple(merge_field(items, results, len(programs), len(tasks), name)  # type: ignore[return-value]
                     for name in ("val_loss", "reasons", "progress"))

    def losses(self, programs: Sequence[Program], factors: Sequence[float],
               tasks: Sequence[str] | None = None) -> list[list[list[float]]]:
        """Final validation losses ``[program][task][trial]`` (trials: lr-major, then seed)."""
        return self.run(programs, factors, tasks)[0]

    def score(self, programs: Sequence[Program], factors: Sequence[float] | None = None,
              centers: Sequence[dict[str, float] | None] | None = None, *, stop: bool = True) -> list[Score]:
        """Scores of `programs` over the lr grid `factors` (default: this evaluator's), each grid
        centred per task on ``centers[i][task]`` where given, else on the program's own ``lr``.
        ``stop=False`` trains every trial to the end (and records its progress at the rungs)."""
        factors = list(self.factors if factors is None else factors)
        baselines = self.baselines()
        centers = list(centers) if centers is not None else [None] * len(programs)
        losses, reasons, progress = self.run(programs, factors, centers=centers,
                                             stop=self.stop_rules(record_only=not stop))
        out = []
        for p, c, per_task, why, prog in zip(programs, centers, losses, reasons, progress):
            lrs = {t: center_lr(ensure_lr(p), c, t) for t in self.tasks}
            score = score_from_losses(self.tasks, per_task, factors, len(self.seeds), baselines,
                                      protocol=self.protocol, centers=lrs)
            score.reasons = _reasons(self.tasks, score, why, "the warm start" if self.reference else
                                     "the tuned baseline")
            # the progress at the rungs of the lr chosen on each task (for a later `reference`)
            score.progress = {t: list(prog[k][factors.index(score.factors[t])])
                              for k, t in enumerate(self.tasks) if prog[k]}
            out.append(score)
        return out

    def close(self) -> None:
        self.backend.close()


def _reasons(tasks: Sequence[str], score: Score, why: Sequence[Sequence[str | None]],
             bar: str = "the tuned baseline") -> list[str]:
    """Why a program failed or was stopped, for each task where none of its trials finished."""
    out = []
    for t, reasons in zip(tasks, why):
        if not reasons or not all(reasons):
            continue  # some trial finished: the task's result is a finished run
        common = Counter(reasons).most_common(1)[0][0]
        if common.startswith("stopped"):
            common += f" (far behind {bar})"
        out.append(f"{t}: {common}")
    return out[:5]
