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
from typing import Any, Iterator

import numpy as np
from deap import base, tools

from ..evaluate import Evaluator, Score, WIDE_FACTORS
from ..lang.ir import Program
from ..lang.printer import unparse
from ..library import load
from .config import SearchConfig
from .individual import Individual
from .mutate import Mutator, NoChild
from .program import prepare_init, program_from_json, program_to_json, prune, with_lr_scale
from .rundir import RunDir

CHECKPOINT_VERSION = 1


@contextlib.contextmanager
def seeded_global_random(seed: int) -> Iterator[None]:
    """Run a block with the global `random` seeded (for DEAP), restoring its state after."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def _similar(a: Individual, b: Individual) -> bool:
    return a.fp == b.fp


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
    """One search run in a run directory. Use `run(config)` unless you need the pieces."""

    def __init__(self, config: SearchConfig, run_dir: RunDir, *, log=None) -> None:
        self.config = config
        self.dir = run_dir
        self.mutator = Mutator(max_len=config.max_len)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        options = {}
        if config.backend == "ray":  # a local Ray instance keeps its logs in the run directory
            options = dict(address=config.address, gpus_per_worker=config.gpus_per_worker,
                           cpus_per_worker=config.cpus_per_worker, temp_dir=str(run_dir.path / "ray"))
        self.evaluator = Evaluator(config.tasks, seeds=range(config.seed, config.seed + config.seeds),
                                   factors=config.factors, baseline=config.baseline, steps=config.steps,
                                   device=config.device, backend=config.backend, workers=config.workers,
                                   backend_options=options, candidate_time_limit=config.candidate_time_limit)
        self.meta_evaluator: Evaluator | None = None
        if config.meta_tasks:
            self.meta_evaluator = Evaluator(config.meta_tasks, seeds=range(config.seed, config.seed + config.seeds),
                                            factors=config.factors, baseline=config.baseline,
                                            steps=config.meta_steps, device=config.device,
                                            backend=self.evaluator.backend,
                                            candidate_time_limit=config.candidate_time_limit)
        self.toolbox = base.Toolbox()
        self.toolbox.register("select", tools.selTournament, tournsize=config.tournament)
        self.toolbox.register("mutate", self.mutator.child)
        self.stats = tools.Statistics(key=lambda ind: ind.value)
        self.stats.register("min", np.min)
        self.stats.register("median", np.median)
        self.logbook = tools.Logbook()
        self.logbook.header = ["batch", "evals", "hits", "min", "median"]
        self.hof = tools.HallOfFame(config.hof_size, similar=_similar)
        # search state (all of it goes into the checkpoint)
        self.population: deque[Individual] = deque()
        self.inits: list[Individual] = []
        self.cache: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.best: Individual | None = None
        self.batch = 0
        self.evaluations = 0
        self.hits = 0
        self.n_events = 0
        self.last_improvement = 0
        self.restarts = 0
        self.funnels = 0
        self.train_seconds = 0.0
        self.elapsed = 0.0
        self.last_funnel_seconds = 0.0
        self.references: dict[str, dict] = {}
        self._t0 = time.perf_counter()
        self._snapshot: dict | None = None
        self.carry: dict[str, Any] = {}  # kept in every checkpoint as is (`runner`: an ended run's final stage)

    # ================================================================== checkpoint
    def state(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "batch": self.batch, "evaluations": self.evaluations, "hits": self.hits, "n_events": self.n_events,
            "last_improvement": self.last_improvement, "restarts": self.restarts, "funnels": self.funnels,
            "train_seconds": self.train_seconds, "elapsed": self._elapsed(),
            "last_funnel_seconds": self.last_funnel_seconds,
            "baselines": self.evaluator._baselines,
            "meta_baselines": self.meta_evaluator._baselines if self.meta_evaluator else {},
            "inits": [i.to_json() for i in self.inits],
            "population": [i.to_json() for i in self.population],
            "best": self.best.to_json() if self.best else None,
            "hall_of_fame": [i.to_json() for i in self.hof],
            "cache": self.cache, "meta": self.meta, "references": self.references,
            "logbook": [dict(r) for r in self.logbook],
            **self.carry,
        }

    def load_state(self, s: dict) -> None:
        if s.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {s.get('version')} is not supported (expected {CHECKPOINT_VERSION})")
        for key in ("batch", "evaluations", "hits", "n_events", "last_improvement", "restarts", "funnels",
                    "train_seconds", "last_funnel_seconds"):
            setattr(self, key, s[key])
        self.elapsed = s["elapsed"]
        self.evaluator._baselines.update(s["baselines"])
        if self.meta_evaluator:
            self.meta_evaluator._baselines.update(s["meta_baselines"])
        self.inits = [Individual.from_json(d) for d in s["inits"]]
        self.population = deque(Individual.from_json(d) for d in s["population"])
        self.best = Individual.from_json(s["best"]) if s["best"] else None
        self.hof.clear()
        items = [Individual.from_json(d) for d in s["hall_of_fame"]]
        self.hof.items = items  # best first, exactly as saved (no re-sorting of ties)
        self.hof.keys = [i.fitness for i in reversed(items)]
        self.cache = s["cache"]
        self.meta = s["meta"]
        self.references = s.get("references", {})
        self.logbook = tools.Logbook()
        self.logbook.header = ["batch", "evals", "hits", "min", "median"]
        for r in s["logbook"]:
            self.logbook.record(**r)

    def checkpoint(self) -> None:
        self._snapshot = self.state()
        self.dir.write_checkpoint(self._snapshot)

    def _elapsed(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t0)

    # ================================================================== warm start
    def warm_start(self) -> None:
        cfg = self.config
        self.log(f"baselines: {cfg.baseline} tuned per task on {len(WIDE_FACTORS)} learning rates ...")
        baselines = self.evaluator.baselines()
        self.log("  " + ", ".join(f"{t} {v:.4g}" for t, v in baselines.items()))
        programs = [prepare_init(load(spec)) for spec in cfg.init]
        t0 = time.perf_counter()
        scores = self.evaluator.score([prune(p) for p in programs], factors=WIDE_FACTORS)
        seconds = time.perf_counter() - t0
        events = []
        for k, (spec, p, sc) in enumerate(zip(cfg.init, programs, scores)):
            folded = with_lr_scale(p, sc.factor)
            fp = self.mutator.fingerprint(folded)
            ind = Individual(folded, fp, sc.fitness, born=-(k + 1))
            self.inits.append(ind)
            events.append(self._event(ind, p, self.mutator.fingerprint(p), sc, hit=False,
                                      seconds=seconds / len(programs), kind="init", mutations=[]))
            self.log(f"warm start {spec}: fitness {sc.fitness:.4f} at lr {folded.defaults['lr']:.3g}")
        self.n_events += self.dir.append_events(events)
        self.population = deque(copy.deepcopy(self.inits[k % len(self.inits)]) for k in range(cfg.population))
        self.best = min(self.inits, key=lambda i: i.value)
        self.checkpoint()

    def _event(self, ind: Individual, evaluated: Program, fp: str, score: Score, *, hit: bool, seconds: float,
               kind: str, mutations: list[str]) -> dict:
        return {"eval": self.evaluations if kind == "child" else ind.born, "batch": self.batch, "kind": kind,
                "program": unparse(evaluated, header=False), "fingerprint": fp, "parent": ind.parent,
                "mutations": mutations, "fitness": score.fitness, "lr_factor": score.factor,
                "scores": score.ratios, "losses": score.losses, "cache_hit": hit, "seconds": round(seconds, 4),
                "failure": score.reasons[0] if score.reasons else None}

    # ================================================================== one batch
    def step(self) -> None:
        """Make, score and insert one batch of children; then restarts, funnel, checkpoint."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}/batch/{self.batch}")
        pending: list[tuple[Individual, Individual, Program, list[str], float]] = []
        to_train: dict[str, Program] = {}
        population = list(self.population)
        failures = 0
        while (len(to_train) < cfg.batch and self.evaluations + len(pending) < cfg.budget
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
            ind = Individual(child, fp, born=self.evaluations + len(pending), parent=parent.born)
            pending.append((ind, parent, child, how, time.perf_counter() - t0))
            if fp not in self.cache and fp not in to_train:
                to_train[fp] = child
        if not pending:
            raise RuntimeError("no valid child could be made from the population (all mutations failed)")
        t0 = time.perf_counter()
        fresh = dict(zip(to_train, self.evaluator.score([prune(p) for p in to_train.values()]))) if to_train else {}
        train_seconds = time.perf_counter() - t0
        self.train_seconds += train_seconds
        per_train = train_seconds / max(1, len(fresh))
        events = []
        n_hits = 0
        for ind, parent, child, how, mut_seconds in pending:
            hit = ind.fp not in fresh or ind.fp in self.cache
            if not hit:
                self.cache[ind.fp] = {**fresh[ind.fp].to_json(), "eval": self.evaluations,
                                      "program": program_to_json(with_lr_scale(child, fresh[ind.fp].factor))}
            rec = self.cache[ind.fp]
            score = Score.from_json(rec)
            n_hits += hit
            ind.program = with_lr_scale(child, score.factor)
            ind.fitness.values = (score.fitness,)
            ind.search_fitness = score.fitness
            events.append(self._event(ind, child, ind.fp, score, hit=hit, kind="child", mutations=how,
                                      seconds=mut_seconds + (0.0 if hit else per_train)))
            self.population.append(ind)
            self.population.popleft()
            self.evaluations += 1
            if self.best is None or score.fitness < self.best.value:
                self.best = ind
                self.last_improvement = self.evaluations
        self.hits += n_hits
        self.n_events += self.dir.append_events(events)
        record = self.stats.compile(list(self.population))
        self.logbook.record(batch=self.batch, evals=self.evaluations, hits=n_hits, **record)
        self.batch += 1
        if self.evaluations - self.last_improvement >= cfg.plateau and self.evaluations < cfg.budget:
            self.restart()
        if self.evaluations // cfg.funnel_every > self.funnels and self.evaluations < cfg.budget:
            self.funnels = self.evaluations // cfg.funnel_every
            self.funnel()
        self.checkpoint()

    def restart(self) -> None:
        self.restarts += 1
        source = self.best if self.restarts % 2 == 1 else None
        sources = [source] if source is not None else self.inits
        self.population = deque(copy.deepcopy(sources[k % len(sources)]) for k in range(self.config.population))
        self.last_improvement = self.evaluations
        what = "the best program" if source is not None else "the warm start"
        self.log(f"restart {self.restarts} at evaluation {self.evaluations}: no improvement in "
                 f"{self.config.plateau} evaluations; population reset to {what} "
                 f"(best fitness {self.best.value:.4f})")

    # ================================================================== funnel
    def _funnel_candidates(self) -> list[tuple[str, dict]]:
        """The ``funnel_top`` best candidates not meta-scored yet, plus any warm start not scored yet
        (the bar a discovery must pass)."""
        scored = [(fp, rec) for fp, rec in self.cache.items() if math.isfinite(rec["fitness"]) and fp not in self.meta]
        scored.sort(key=lambda fr: (fr[1]["fitness"], fr[1]["eval"]))
        chosen = scored[: self.config.funnel_top]
        for ind in self.inits:
            if ind.fp not in self.meta and all(fp != ind.fp for fp, _ in chosen) and math.isfinite(ind.value):
                chosen.append((ind.fp, {"fitness": ind.value, "eval": ind.born,
                                        "program": program_to_json(ind.program)}))
        return chosen

    def funnel(self, final: bool = False) -> dict[str, dict]:
        """Meta-score the best unseen candidates; update the hall of fame. Returns the new meta records."""
        t0 = time.perf_counter()
        chosen = self._funnel_candidates()
        if not chosen:
            return {}
        if final:  # counted for the summary; run() restores the resumable state after the final stage
            self.funnels += 1
        programs = [program_from_json(rec["program"]) for _, rec in chosen]
        new: dict[str, dict] = {}
        if self.meta_evaluator is not None:
            scores = self.meta_evaluator.score([prune(p) for p in programs])
            for (fp, rec), p, sc in zip(chosen, programs, scores):
                new[fp] = {**sc.to_json(), "search_fitness": rec["fitness"], "eval": rec["eval"],
                           "program": program_to_json(with_lr_scale(p, sc.factor))}
        else:  # no meta tasks: the hall of fame ranks by search fitness
            for (fp, rec), p in zip(chosen, programs):
                new[fp] = {"fitness": rec["fitness"], "factor": 1.0, "ratios": {}, "losses": {}, "reasons": [],
                           "search_fitness": rec["fitness"], "eval": rec["eval"], "program": rec["program"]}
        self.meta.update(new)
        for fp, rec in new.items():
            ind = Individual(program_from_json(rec["program"]), fp, rec["fitness"], born=rec["eval"],
                             search_fitness=rec["search_fitness"], meta=rec["fitness"])
            if math.isfinite(rec["fitness"]):
                self.hof.update([ind])
        self.last_funnel_seconds = time.perf_counter() - t0
        top = self.hof[0] if len(self.hof) else None
        scores = ", ".join(f"{r['fitness']:.4f}" for r in new.values())
        self.log(f"funnel{' (final)' if final else ''} at evaluation {self.evaluations}: meta-scored "
                 f"{len(new)} ({scores}); hall of fame best "
                 + (f"{top.value:.4f} (search {top.search_fitness:.4f})" if top else "-")
                 + f" [{self.last_funnel_seconds:.0f} s]")
        return new

    # ================================================================== results
    def write_results(self, completed: bool) -> dict:
        entries = []
        for rank, ind in enumerate(self.hof, 1):
            entries.append((f"{rank:02d}_{ind.fp[:8]}", self._hof_text(ind, rank)))
        self.dir.write_hall_of_fame(entries)
        best = self.hof[0] if len(self.hof) else self.best
        if best is not None:
            self.dir.write_best(self._hof_text(best, 1))
        elapsed = self._elapsed()
        summary = {
            "completed": completed, "evaluations": self.evaluations, "batches": self.batch,
            "cache_hits": self.hits, "cache_hit_rate": self.hits / max(1, self.evaluations),
            "trained": len(self.cache), "restarts": self.restarts, "funnels": self.funnels,
            "seconds": elapsed, "evaluations_per_second": self.evaluations / max(elapsed, 1e-9),
            "train_seconds": self.train_seconds,
            "baselines": {"program": self.config.baseline, "search": self.evaluator._baselines,
                          "meta": self.meta_evaluator._baselines if self.meta_evaluator else {}},
            "warm_start": [{"program": unparse(i.program, header=False), "fitness": i.value,
                            "meta": self.meta.get(i.fp, {}).get("fitness")} for i in self.inits],
            "best_search": {"program": unparse(self.best.program, header=False), "fitness": self.best.value,
                            "eval": self.best.born} if self.best else None,
            "hall_of_fame": [{"rank": r, "fingerprint": i.fp, "meta": i.value, "search": i.search_fitness,
                              "eval": i.born, "meta_ratios": self.meta.get(i.fp, {}).get("ratios", {}),
                              "program": unparse(prune(i.program), header=False)} for r, i in enumerate(self.hof, 1)],
            "references": self.references,
        }
        self.dir.write_summary(summary)
        return summary

    def _hof_text(self, ind: Individual, rank: int) -> str:
        meta = self.meta.get(ind.fp, {})
        ratios = ", ".join(f"{t} {r:.3f}" for t, r in meta.get("ratios", {}).items())
        origin = f"warm start {ind.program.name}" if ind.born < 0 else f"evaluation {ind.born}"
        doc = (f"Discovered by `discover search` ({self.dir.path}), rank {rank}, from {origin}.\n"
               f"Meta-validation fitness {ind.value:.4f} (loss / tuned {self.config.baseline}; lower is better)"
               + (f": {ratios}" if ratios else "") + f".\nSearch fitness {ind.search_fitness:.4f} on "
               f"{', '.join(self.config.tasks)}. The learning rate found by the lr grid is folded in.")
        name = ind.name
        # Written without the statements and state that cannot affect the update: the form
        # the search trained, and the one a person should read.
        return unparse(prune(ind.program).with_(name=name, doc=doc))

    def score_references(self, specs: list[str]) -> None:
        """Tune reference programs (e.g. momentum) on the meta tasks for comparison in the summary."""
        if not specs or self.meta_evaluator is None:
            return
        todo = [s for s in specs if s not in self.references]
        if not todo:
            return
        programs = [prepare_init(load(s)) for s in todo]
        ev = self.meta_evaluator
        base = ev.baselines()
        losses = ev.losses([prune(p) for p in programs], WIDE_FACTORS)
        from ..evaluate.fitness import best_loss, ratio_of, score_from_losses

        for spec, per_task in zip(todo, losses):
            single = score_from_losses(ev.tasks, per_task, WIDE_FACTORS, len(ev.seeds), base)
            tuned = {t: ratio_of(best_loss(l, len(ev.seeds))[0], base[t]) for t, l in zip(ev.tasks, per_task)}
            geo = math.exp(sum(math.log(r) for r in tuned.values()) / len(tuned)) \
                if all(math.isfinite(r) for r in tuned.values()) else math.inf
            self.references[spec] = {"meta_one_lr": single.fitness, "meta_lr_per_task": geo,
                                     "ratios_per_task_tuned": tuned}
            self.log(f"reference {spec} on meta tasks: {single.fitness:.4f} (one lr), {geo:.4f} (lr tuned per task)")
