"""Regularized (aging) evolution of optimizer programs, with DEAP's toolbox, statistics, logbook
and hall of fame.

The run, batch by batch:

1. *Warm start* (once): the `--init` programs get the usual state slots, are
   tuned on a wide lr grid (the best lr folded in) and fill the population
   (``population`` copies, round robin, oldest first).
2. *Children*: for each child, a tournament of ``tournament`` individuals
   (DEAP ``selTournament``) picks a parent; `Mutator.child` mutates it until it
   is valid and behaves differently. Its live part is fingerprinted: a child
   equivalent to one already scored takes that score (a cache hit); the others
   (up to ``batch`` per batch) train together in one batched run per task.
3. *Aging*: each child (in order) joins the population and the oldest leaves.
   Its lr grid choice is folded into its ``lr``, so descendants start tuned.
4. *Restarts*: after ``plateau`` evaluations without a better search fitness,
   the population restarts from copies of the best program and the warm start,
   alternately.
5. *Funnel*: every ``funnel_every`` evaluations (and at the end) the
   ``funnel_top`` best programs not yet seen are re-scored on the larger
   meta-validation tasks; the hall of fame ranks by that score.

All randomness comes from ``random.Random`` instances seeded by (seed, batch
index) -- DEAP's selection, which uses the global ``random`` module, runs with
it seeded the same way and restored after -- so the same config gives the same
run, and a run resumed from its checkpoint (written after every batch) goes on
exactly as if it had not stopped.
"""
from __future__ import annotations

import contextlib
import copy
import math
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from deap import base, tools

from ..evaluate import Evaluator, Fidelity, Score, WIDE_FACTORS
from ..evaluate.fitness import geomean
from ..evaluate.tuned import TUNE_FACTORS, Tuned, paired_ratio, tune, tuned_from_json
from ..lang.ir import Program
from ..lang.printer import unparse
from ..library import load
from .config import SearchConfig
from .individual import Individual
from .mutate import Mutator, NoChild
from .program import prepare_init, program_from_json, program_to_json, prune, with_lr
from .report import pm, write_results
from .rundir import RunDir
from .state import NOISE_SEEDS, Clock, SearchState, hall_of_fame


@contextlib.contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """Run a block with the global `random` seeded (for DEAP), restoring its state after."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


@dataclass
class SearchResult:
    """What `run` returns: the run directory, hall of fame (best first) and counters."""

    run_dir: Path
    hall_of_fame: list[Individual]
    evaluations: int
    cache_hits: int
    completed: bool
    summary: dict = field(default_factory=dict)

    @property
    def best(self) -> Individual | None:
        return self.hall_of_fame[0] if self.hall_of_fame else None


class Search:
    """One search run in a run directory, over a `SearchState`. Use `run(config)` unless you need the pieces.

    ``state``: where to go on from (a resumed run's checkpoint); a new run starts from an empty one
    and `warm_start`. Everything that must survive a restart of the process is in ``self.state``;
    the rest (the evaluator, DEAP's toolbox and statistics, the clock) is rebuilt from the config.
    """

    def __init__(self, config: SearchConfig, run_dir: RunDir, *, log=None, state: SearchState | None = None) -> None:
        self.config = config
        self.dir = run_dir
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.mutator = Mutator(max_len=config.max_len, ops=tuple(config.ops), weights=dict(config.mutations))
        # in process, torch uses --cpus-per-worker threads (default 1: small models run fastest so)
        options: dict = {"threads": max(1, int(config.cpus_per_worker))}
        if config.backend == "ray":  # a local Ray instance keeps its logs in the run directory
            options = dict(address=config.address, gpus_per_worker=config.gpus_per_worker,
                           cpus_per_worker=config.cpus_per_worker, temp_dir=str(run_dir.path / "ray"))
        self.evaluator = Evaluator(config.tasks, seeds=range(config.seed, config.seed + config.seeds),
                                   factors=config.factors, protocol=config.lr_protocol, baseline=config.baseline,
                                   steps=config.steps, device=config.device, backend=config.backend,
                                   workers=config.workers, backend_options=options,
                                   candidate_time_limit=config.candidate_time_limit,
                                   fidelity=Fidelity() if config.early_stop else None)
        self.toolbox = base.Toolbox()
        self.toolbox.register("select", tools.selTournament, tournsize=config.tournament)
        self.toolbox.register("mutate", self.mutator.child)
        self.stats = tools.Statistics(key=lambda ind: ind.value)
        self.stats.register("min", np.min)
        self.stats.register("median", np.median)
        self.state = state if state is not None else SearchState()
        # the evaluator's part of a saved state: the baselines were trained once, and a resumed
        # run scores against those very numbers (and never retrains them)
        self.evaluator.restore_baseline(self.state.baseline)
        self.evaluator.member_steps = self.state.member_steps
        self.evaluator.reference = {t: list(v) for t, v in self.state.reference.items()}
        self.clock = Clock(before=self.state.elapsed)
        self.snapshot: dict | None = None  # the last checkpoint written (what an interruption keeps)

    @property
    def has_meta(self) -> bool:
        """Whether there are meta-validation tasks (the funnel re-scores finalists on them)."""
        return bool(self.config.meta_tasks)

    # ================================================================== checkpoint
    def capture(self) -> SearchState:
        """The state, with the parts kept elsewhere while running (the evaluator's, the clock) brought in."""
        s = self.state
        s.baseline = self.evaluator.baseline_state() if s.inits else {}
        s.member_steps = self.evaluator.member_steps
        s.reference = self.evaluator.reference
        s.elapsed = self.clock.seconds()
        return s

    def checkpoint(self) -> None:
        """Write the state after a finished batch (atomically; a resumed run starts from it)."""
        self.snapshot = self.capture().to_json()
        self.dir.write_checkpoint(self.snapshot)

    def rank(self, candidates: list[Individual]) -> None:
        """Offer `candidates` to the hall of fame (DEAP's: best first, one per fingerprint, ``hof_size`` kept)."""
        hof = hall_of_fame(self.config.hof_size, self.state.hall_of_fame)
        hof.update(candidates)
        self.state.hall_of_fame = list(hof)

    # ================================================================== warm start
    def warm_start(self) -> None:
        """Tune the baseline and the `--init` programs, fill the population with them; first checkpoint."""
        cfg, s = self.config, self.state
        self.log(f"baselines: {cfg.baseline} tuned per task on {len(WIDE_FACTORS)} learning rates ...")
        baseline = self.evaluator.baseline_state()
        self.log("  " + ", ".join(f"{t} {v['loss']:.4g} (lr {v['lr']:.3g})" for t, v in baseline.items()))
        s.noise = self.evaluator.seed_noise(NOISE_SEEDS)
        fit_noise = self.evaluator.fitness_noise(NOISE_SEEDS)
        self.log(f"seed-to-seed spread of the baseline's loss over {NOISE_SEEDS} seeds: "
                 + ", ".join(f"{t} {v:.2%}" for t, v in s.noise.items())
                 + f"; a search fitness is noisy to about ±{fit_noise:.2%}")
        programs = [prepare_init(load(spec)) for spec in cfg.init]
        t0 = time.perf_counter()
        scores = self.evaluator.score([prune(p) for p in programs], factors=WIDE_FACTORS, stop=False)
        seconds = time.perf_counter() - t0
        # the multi-fidelity bar: a child is cut part-way only when it is far behind the warm start
        # (the most lenient one, per task), not behind the baseline, which an sgd lineage may never reach
        self.evaluator.reference = {t: [max(vs) for vs in zip(*(sc.progress[t] for sc in scores))]
                                    for t in self.config.tasks if all(sc.progress.get(t) for sc in scores)}
        events = []
        for k, (spec, p, sc) in enumerate(zip(cfg.init, programs, scores)):
            folded = with_lr(p, geomean(list(sc.lrs.values())))
            fp = self.mutator.fingerprint(folded)
            ind = Individual(folded, fp, sc.fitness, born=-(k + 1), lrs=sc.lrs)
            s.inits.append(ind)
            events.append(self._event(ind, p, self.mutator.fingerprint(p), sc, hit=False,
                                      seconds=seconds / len(programs), kind="init", mutations=[]))
            self.log(f"warm start {spec}: fitness {sc.fitness:.4f}; tuned lr per task: "
                     + ", ".join(f"{t} {lr:.3g}" for t, lr in sc.lrs.items()))
        s.n_events += self.dir.append_events(events)
        s.population = deque(copy.deepcopy(s.inits[k % len(s.inits)]) for k in range(cfg.population))
        s.best = min(s.inits, key=lambda i: i.value)
        self.checkpoint()

    def _event(self, ind: Individual, evaluated: Program, fp: str, score: Score, *, hit: bool, seconds: float,
               kind: str, mutations: list[str]) -> dict:
        """The event-log record of one evaluation (a warm start or a child)."""
        return {"eval": self.state.evaluations if kind == "child" else ind.born, "batch": self.state.batch,
                "kind": kind, "time": round(self.clock.seconds(), 3),
                "program": unparse(evaluated, header=False), "fingerprint": fp, "parent": ind.parent,
                "mutations": mutations, "fitness": score.fitness, "lr_factor": score.factor,
                "lr_factors": score.factors, "lrs": score.lrs,
                "scores": score.ratios, "losses": score.losses, "cache_hit": hit, "seconds": round(seconds, 4),
                "failure": score.reasons[0] if score.reasons else None, "reasons": score.reasons}

    # ================================================================== one batch
    def step(self) -> None:
        """Make, score and insert one batch of children; then restarts, funnel, checkpoint."""
        cfg, s = self.config, self.state
        rng = random.Random(f"{cfg.seed}/batch/{s.batch}")
        pending: list[tuple[Individual, Individual, Program, list[str], float]] = []
        to_train: dict[str, tuple[Program, dict[str, float]]] = {}
        population = list(s.population)
        failures = 0
        while (len(to_train) < cfg.batch and s.evaluations + len(pending) < cfg.budget
               and failures < 20 * cfg.batch):
            t0 = time.perf_counter()
            with seeded_global_random(rng.getrandbits(64)):
                parent = self.toolbox.select(population, 1)[0]
            try:
                child, fp, how = self.toolbox.mutate(parent.program, rng, parent.fp)
            except NoChild:
                failures += 1
                continue
            child = child.with_(doc="")
            ind = Individual(child, fp, born=s.evaluations + len(pending), parent=parent.born)
            pending.append((ind, parent, child, how, time.perf_counter() - t0))
            if fp not in s.cache and fp not in to_train:
                to_train[fp] = (child, parent.lrs)
        if not pending:
            raise RuntimeError("no valid child could be made from the population (all mutations failed)")
        t0 = time.perf_counter()
        fresh: dict[str, Score] = {}
        if to_train:
            per_task = cfg.lr_protocol == "per_task"
            scores = self.evaluator.score([prune(p) for p, _ in to_train.values()],
                                          centers=[lrs for _, lrs in to_train.values()] if per_task else None)
            fresh = dict(zip(to_train, scores))
        train_seconds = time.perf_counter() - t0
        s.train_seconds += train_seconds
        per_train = train_seconds / max(1, len(fresh))
        events = []
        n_hits = 0
        for ind, parent, child, how, mut_seconds in pending:
            hit = ind.fp not in fresh or ind.fp in s.cache
            if not hit:
                sc = fresh[ind.fp]
                s.cache[ind.fp] = {**sc.to_json(), "eval": s.evaluations,
                                   "program": program_to_json(with_lr(child, _lr_of(sc, child)))}
            score = Score.from_json(s.cache[ind.fp])
            n_hits += hit
            ind.lrs = dict(score.lrs)
            ind.program = with_lr(child, _lr_of(score, child))
            ind.fitness.values = (score.fitness,)
            ind.search_fitness = score.fitness
            s.failures += not math.isfinite(score.fitness)
            events.append(self._event(ind, child, ind.fp, score, hit=hit, kind="child", mutations=how,
                                      seconds=mut_seconds + (0.0 if hit else per_train)))
            # aging: the child joins, the oldest leaves
            s.population.append(ind)
            s.population.popleft()
            s.evaluations += 1
            if s.best is None or score.fitness < s.best.value:
                s.best = ind
                s.last_improvement = s.evaluations
        s.hits += n_hits
        s.n_events += self.dir.append_events(events)
        s.logbook.record(batch=s.batch, evals=s.evaluations, hits=n_hits, **self.stats.compile(list(s.population)))
        s.batch += 1
        if s.evaluations - s.last_improvement >= cfg.plateau and s.evaluations < cfg.budget:
            self.restart()
        if s.evaluations // cfg.funnel_every > s.funnels and s.evaluations < cfg.budget:
            s.funnels = s.evaluations // cfg.funnel_every
            self.funnel()
        self.checkpoint()

    def restart(self) -> None:
        """Reset the population to copies of the best program (odd restarts) or the warm start (even)."""
        s = self.state
        s.restarts += 1
        source = s.best if s.restarts % 2 == 1 else None
        sources = [source] if source is not None else s.inits
        s.population = deque(copy.deepcopy(sources[k % len(sources)]) for k in range(self.config.population))
        s.last_improvement = s.evaluations
        what = "the best program" if source is not None else "the warm start"
        self.log(f"restart {s.restarts} at evaluation {s.evaluations}: no improvement in "
                 f"{self.config.plateau} evaluations; population reset to {what} "
                 f"(best fitness {s.best.value:.4f})")
        s.n_events += self.dir.append_events([{"kind": "restart", "eval": s.evaluations, "batch": s.batch,
                                               "time": round(self.clock.seconds(), 3),
                                               "to": "best" if source is not None else "warm start"}])

    # ================================================================== funnel
    def _funnel_candidates(self) -> list[tuple[str, dict]]:
        """The ``funnel_top`` best candidates not meta-scored yet, plus any warm start not scored yet
        (the bar a discovery must pass)."""
        s = self.state
        scored = [(fp, rec) for fp, rec in s.cache.items() if math.isfinite(rec["fitness"]) and fp not in s.meta]
        scored.sort(key=lambda fr: (fr[1]["fitness"], fr[1]["eval"]))
        chosen = scored[: self.config.funnel_top]
        for ind in s.inits:
            if ind.fp not in s.meta and all(fp != ind.fp for fp, _ in chosen) and math.isfinite(ind.value):
                chosen.append((ind.fp, {"fitness": ind.value, "eval": ind.born, "lrs": ind.lrs,
                                        "program": program_to_json(ind.program)}))
        return chosen

    def _tune_meta(self, programs: list[Program]) -> list[Tuned]:
        cfg = self.config
        return tune(programs, cfg.meta_tasks, grid=TUNE_FACTORS, tune_seeds=(cfg.seed,),
                    report_seeds=tuple(range(cfg.seed + 1, cfg.seed + 1 + cfg.funnel_seeds)),
                    steps=cfg.meta_task_steps(), device=cfg.device, backend=self.evaluator.backend,
                    candidate_time_limit=cfg.candidate_time_limit)

    def meta_base(self) -> Tuned:
        """The baseline tuned on the meta tasks and reported on the funnel's seeds (computed once)."""
        if self.state.meta_baseline is None:
            self.state.meta_baseline = self._tune_meta([self.evaluator.baseline])[0].to_json()
        return tuned_from_json(self.state.meta_baseline)

    def funnel(self, final: bool = False) -> dict[str, dict]:
        """Meta-score the best unseen candidates on several seeds; update the hall of fame.
        Returns the new meta records."""
        s = self.state
        t0 = time.perf_counter()
        chosen = self._funnel_candidates()
        if not chosen:
            return {}
        if final:  # counted for the summary; run() restores the resumable state after the final stage
            s.funnels += 1
        programs = [program_from_json(rec["program"]) for _, rec in chosen]
        new: dict[str, dict] = {}
        if self.has_meta:
            base = self.meta_base()
            results = self._tune_meta([prune(p) for p in programs])
            for (fp, rec), p, res in zip(chosen, programs, results):
                ratio, se = paired_ratio(res, base)
                new[fp] = {"fitness": ratio, "se": se, "search_fitness": rec["fitness"], "eval": rec["eval"],
                           "ratios": {t: r.mean / base.tasks[t].mean for t, r in res.tasks.items()},
                           "tuned": res.to_json(), "lrs": rec.get("lrs", {}), "program": rec["program"]}
        else:  # no meta tasks: the hall of fame ranks by search fitness
            for (fp, rec), p in zip(chosen, programs):
                new[fp] = {"fitness": rec["fitness"], "se": None, "ratios": {}, "search_fitness": rec["fitness"],
                           "eval": rec["eval"], "lrs": rec.get("lrs", {}), "program": rec["program"]}
        s.meta.update(new)
        events = []
        for fp, rec in new.items():
            ind = Individual(program_from_json(rec["program"]), fp, rec["fitness"], born=rec["eval"],
                             search_fitness=rec["search_fitness"], meta=rec["fitness"], lrs=rec["lrs"],
                             meta_se=rec["se"])
            if math.isfinite(rec["fitness"]):
                self.rank([ind])
            events.append({"kind": "funnel", "eval": s.evaluations, "batch": s.batch,
                           "time": round(self.clock.seconds(), 3), "fingerprint": fp, "candidate": rec["eval"],
                           "meta": rec["fitness"], "se": rec["se"], "ratios": rec["ratios"],
                           "search_fitness": rec["search_fitness"], "final": final})
        s.n_events += self.dir.append_events(events)
        s.last_funnel_seconds = time.perf_counter() - t0
        top = s.hall_of_fame[0] if s.hall_of_fame else None
        scores = ", ".join(pm(r["fitness"], r["se"]) for r in new.values())
        self.log(f"funnel{' (final)' if final else ''} at evaluation {s.evaluations}: meta-scored "
                 f"{len(new)} ({scores}); hall of fame best "
                 + (f"{pm(top.value, top.meta_se)} (search {top.search_fitness:.4f})" if top else "-")
                 + f" [{s.last_funnel_seconds:.0f} s]")
        return new

    def score_references(self, specs: list[str]) -> None:
        """Tune reference programs (e.g. momentum) on the meta tasks for comparison in the summary."""
        s = self.state
        if not specs or not self.has_meta:
            return
        todo = [spec for spec in specs if spec not in s.references]
        if not todo:
            return
        base = self.meta_base()
        results = self._tune_meta([prune(prepare_init(load(spec))) for spec in todo])
        for spec, res in zip(todo, results):
            ratio, se = paired_ratio(res, base)
            s.references[spec] = {"meta": ratio, "se": se,
                                  "ratios": {t: r.mean / base.tasks[t].mean for t, r in res.tasks.items()},
                                  "tuned": res.to_json()}
            self.log(f"reference {spec} on meta tasks: {pm(ratio, se)} (lr tuned per task)")

    # ================================================================== results
    def write_results(self, completed: bool) -> dict:
        """Write the hall of fame, best.opt and summary.json (`report.write_results`); returns the summary."""
        state = self.capture()
        noise = self.evaluator.fitness_noise(NOISE_SEEDS) if state.noise else None
        return write_results(self.dir, self.config, state, completed=completed, fitness_noise=noise)


def _lr_of(score: Score, program: Program) -> float:
    """The lr default folded into a scored program: the geometric mean of its per-task lrs."""
    lrs = [v for v in score.lrs.values() if math.isfinite(v) and v > 0]
    return geomean(lrs) if lrs else program.defaults.get("lr", 1.0)
