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
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

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
from .rundir import RunDir

CHECKPOINT_VERSION = 2
NOISE_SEEDS = 5
"""Seeds the tuned baseline is trained on to measure each task's seed-to-seed spread."""


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
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.mutator = Mutator(max_len=config.max_len, ops=tuple(config.ops))
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
        self.logbook = tools.Logbook()
        self.logbook.header = ["batch", "evals", "hits", "min", "median"]
        self.hof = tools.HallOfFame(config.hof_size, similar=_similar)
        # search state (all of it goes into the checkpoint)
        self.population: deque[Individual] = deque()
        self.inits: list[Individual] = []
        self.cache: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.meta_baseline: dict | None = None  # the baseline tuned on the meta tasks (`Tuned.to_json`)
        self.noise: dict[str, float] = {}
        self.best: Individual | None = None
        self.batch = 0
        self.evaluations = 0
        self.hits = 0
        self.failures = 0
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

    @property
    def has_meta(self) -> bool:
        """Whether there are meta-validation tasks (the funnel re-scores finalists on them)."""
        return bool(self.config.meta_tasks)

    # ================================================================== checkpoint
    def state(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "batch": self.batch, "evaluations": self.evaluations, "hits": self.hits, "n_events": self.n_events,
            "failures": self.failures,
            "last_improvement": self.last_improvement, "restarts": self.restarts, "funnels": self.funnels,
            "train_seconds": self.train_seconds, "elapsed": self._elapsed(),
            "last_funnel_seconds": self.last_funnel_seconds,
            "baseline": self.evaluator.baseline_state() if self.inits else {},
            "meta_baseline": self.meta_baseline, "noise": self.noise,
            "member_steps": self.evaluator.member_steps, "reference": self.evaluator.reference,
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
                    "train_seconds", "last_funnel_seconds", "failures"):
            setattr(self, key, s[key])
        self.elapsed = s["elapsed"]
        # the baselines were trained once: restoring them means a resumed run never retrains them
        self.evaluator.restore_baseline(s["baseline"])
        self.evaluator.member_steps = s.get("member_steps", 0)
        self.evaluator.reference = {t: list(v) for t, v in s.get("reference", {}).items()}
        self.meta_baseline = s["meta_baseline"]
        self.noise = dict(s["noise"])
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
        state = self.evaluator.baseline_state()
        self.log("  " + ", ".join(f"{t} {v['loss']:.4g} (lr {v['lr']:.3g})" for t, v in state.items()))
        self.noise = self.evaluator.seed_noise(NOISE_SEEDS)
        fit_noise = self.evaluator.fitness_noise(NOISE_SEEDS)
        self.log(f"seed-to-seed spread of the baseline's loss over {NOISE_SEEDS} seeds: "
                 + ", ".join(f"{t} {v:.2%}" for t, v in self.noise.items())
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
            self.inits.append(ind)
            events.append(self._event(ind, p, self.mutator.fingerprint(p), sc, hit=False,
                                      seconds=seconds / len(programs), kind="init", mutations=[]))
            self.log(f"warm start {spec}: fitness {sc.fitness:.4f}; tuned lr per task: "
                     + ", ".join(f"{t} {lr:.3g}" for t, lr in sc.lrs.items()))
        self.n_events += self.dir.append_events(events)
        self.population = deque(copy.deepcopy(self.inits[k % len(self.inits)]) for k in range(cfg.population))
        self.best = min(self.inits, key=lambda i: i.value)
        self.checkpoint()

    def _event(self, ind: Individual, evaluated: Program, fp: str, score: Score, *, hit: bool, seconds: float,
               kind: str, mutations: list[str]) -> dict:
        return {"eval": self.evaluations if kind == "child" else ind.born, "batch": self.batch, "kind": kind,
                "time": round(self._elapsed(), 3),
                "program": unparse(evaluated, header=False), "fingerprint": fp, "parent": ind.parent,
                "mutations": mutations, "fitness": score.fitness, "lr_factor": score.factor,
                "lr_factors": score.factors, "lrs": score.lrs,
                "scores": score.ratios, "losses": score.losses, "cache_hit": hit, "seconds": round(seconds, 4),
                "failure": score.reasons[0] if score.reasons else None, "reasons": score.reasons}

    # ================================================================== one batch
    def step(self) -> None:
        """Make, score and insert one batch of children; then restarts, funnel, checkpoint."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}/batch/{self.batch}")
        pending: list[tuple[Individual, Individual, Program, list[str], float]] = []
        to_train: dict[str, tuple[Program, dict[str, float]]] = {}
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
        self.train_seconds += train_seconds
        per_train = train_seconds / max(1, len(fresh))
        events = []
        n_hits = 0
        for ind, parent, child, how, mut_seconds in pending:
            hit = ind.fp not in fresh or ind.fp in self.cache
            if not hit:
                sc = fresh[ind.fp]
                self.cache[ind.fp] = {**sc.to_json(), "eval": self.evaluations,
                                      "program": program_to_json(with_lr(child, _lr_of(sc, child)))}
            rec = self.cache[ind.fp]
            score = Score.from_json(rec)
            n_hits += hit
            ind.lrs = dict(score.lrs)
            ind.program = with_lr(child, _lr_of(score, child))
            ind.fitness.values = (score.fitness,)
            ind.search_fitness = score.fitness
            self.failures += not math.isfinite(score.fitness)
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
        self.n_events += self.dir.append_events([{"kind": "restart", "eval": self.evaluations,
                                                  "batch": self.batch, "time": round(self._elapsed(), 3),
                                                  "to": "best" if source is not None else "warm start"}])

    # ================================================================== funnel
    def _funnel_candidates(self) -> list[tuple[str, dict]]:
        """The ``funnel_top`` best candidates not meta-scored yet, plus any warm start not scored yet
        (the bar a discovery must pass)."""
        scored = [(fp, rec) for fp, rec in self.cache.items() if math.isfinite(rec["fitness"]) and fp not in self.meta]
        scored.sort(key=lambda fr: (fr[1]["fitness"], fr[1]["eval"]))
        chosen = scored[: self.config.funnel_top]
        for ind in self.inits:
            if ind.fp not in self.meta and all(fp != ind.fp for fp, _ in chosen) and math.isfinite(ind.value):
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
        if self.meta_baseline is None:
            self.meta_baseline = self._tune_meta([self.evaluator.baseline])[0].to_json()
        return tuned_from_json(self.meta_baseline)

    def warm_meta(self) -> tuple[str, dict] | None:
        """The best meta-scored warm start: (fingerprint, meta record); the bar for discoveries."""
        scored = [(i.fp, self.meta[i.fp]) for i in self.inits if i.fp in self.meta]
        return min(scored, key=lambda fr: fr[1]["fitness"]) if scored else None

    def funnel(self, final: bool = False) -> dict[str, dict]:
        """Meta-score the best unseen candidates on several seeds; update the hall of fame.
        Returns the new meta records."""
        t0 = time.perf_counter()
        chosen = self._funnel_candidates()
        if not chosen:
            return {}
        if final:  # counted for the summary; run() restores the resumable state after the final stage
            self.funnels += 1
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
        self.meta.update(new)
        events = []
        for fp, rec in new.items():
            ind = Individual(program_from_json(rec["program"]), fp, rec["fitness"], born=rec["eval"],
                             search_fitness=rec["search_fitness"], meta=rec["fitness"], lrs=rec["lrs"],
                             meta_se=rec["se"])
            if math.isfinite(rec["fitness"]):
                self.hof.update([ind])
            events.append({"kind": "funnel", "eval": self.evaluations, "batch": self.batch,
                           "time": round(self._elapsed(), 3), "fingerprint": fp, "candidate": rec["eval"],
                           "meta": rec["fitness"], "se": rec["se"], "ratios": rec["ratios"],
                           "search_fitness": rec["search_fitness"], "final": final})
        self.n_events += self.dir.append_events(events)
        self.last_funnel_seconds = time.perf_counter() - t0
        top = self.hof[0] if len(self.hof) else None
        scores = ", ".join(_pm(r["fitness"], r["se"]) for r in new.values())
        self.log(f"funnel{' (final)' if final else ''} at evaluation {self.evaluations}: meta-scored "
                 f"{len(new)} ({scores}); hall of fame best "
                 + (f"{_pm(top.value, top.meta_se)} (search {top.search_fitness:.4f})" if top else "-")
                 + f" [{self.last_funnel_seconds:.0f} s]")
        return new

    def versus_warm_start(self, fp: str) -> tuple[float, float] | None:
        """Meta loss of candidate `fp` relative to the best warm start, paired by seed: (ratio, se)."""
        warm = self.warm_meta()
        rec = self.meta.get(fp)
        if warm is None or rec is None or "tuned" not in rec or "tuned" not in warm[1]:
            return None
        return paired_ratio(tuned_from_json(rec["tuned"]), tuned_from_json(warm[1]["tuned"]))

    def verdict(self) -> dict:
        """Did anything beat the warm start by more than the noise? (on the meta tasks, paired by seed)."""
        warm = self.warm_meta()
        out: dict[str, Any] = {"warm_start": warm[0] if warm else None, "beats_warm_start": [], "rule":
                               "a candidate beats the warm start when its meta loss ratio to it, paired by seed, "
                               "is below 1 by more than 2 standard errors"}
        for ind in self.hof:
            if warm is not None and ind.fp == warm[0]:
                continue
            vs = self.versus_warm_start(ind.fp)
            if vs is not None and math.isfinite(vs[0]) and vs[0] + 2 * vs[1] < 1.0:
                out["beats_warm_start"].append({"fingerprint": ind.fp, "ratio": vs[0], "se": vs[1]})
        return out

    # ================================================================== results
    def write_results(self, completed: bool) -> dict:
        entries = []
        for rank, ind in enumerate(self.hof, 1):
            entries.append((f"{rank:02d}_{ind.fp[:8]}", self._hof_text(ind, rank)))
        self.dir.write_hall_of_fame(entries)
        verdict = self.verdict()
        best = self._best_program(verdict)
        if best is not None:
            self.dir.write_best(self._hof_text(best, 1 if best in list(self.hof)[:1] else 0, verdict))
        elapsed = self._elapsed()
        warm = self.warm_meta()
        summary = {
            "completed": completed, "evaluations": self.evaluations, "batches": self.batch,
            "cache_hits": self.hits, "cache_hit_rate": self.hits / max(1, self.evaluations),
            "trained": len(self.cache), "failures": self.failures,
            "failure_rate": self.failures / max(1, self.evaluations),
            "failure_kinds": self.failure_kinds(),
            "restarts": self.restarts, "funnels": self.funnels,
            "seconds": elapsed, "evaluations_per_second": self.evaluations / max(elapsed, 1e-9),
            "trained_per_second": len(self.cache) / max(self.train_seconds, 1e-9),
            "train_seconds": self.train_seconds, "member_steps": self.evaluator.member_steps,
            "lr_protocol": self.config.lr_protocol, "early_stop": self.config.early_stop,
            "baselines": {"program": self.config.baseline, "search": self.evaluator.baseline_state(),
                          "meta": self.meta_baseline},
            "noise": {"seed_spread": self.noise, "seeds": NOISE_SEEDS,
                      "search_fitness": self.evaluator.fitness_noise(NOISE_SEEDS) if self.noise else None},
            "warm_start": [{"program": unparse(i.program, header=False), "fitness": i.value, "lrs": i.lrs,
                            "meta": self.meta.get(i.fp, {}).get("fitness"), "meta_se": self.meta.get(i.fp, {}).get("se")}
                           for i in self.inits],
            "best_search": {"program": unparse(self.best.program, header=False), "fitness": self.best.value,
                            "eval": self.best.born} if self.best else None,
            "hall_of_fame": [{"rank": r, "fingerprint": i.fp, "meta": i.value, "meta_se": i.meta_se,
                              "search": i.search_fitness, "eval": i.born, "lrs": i.lrs,
                              "versus_warm_start": self.versus_warm_start(i.fp),
                              "meta_ratios": self.meta.get(i.fp, {}).get("ratios", {}),
                              "program": unparse(prune(i.program), header=False)} for r, i in enumerate(self.hof, 1)],
            "verdict": verdict, "best": best.fp if best is not None else None,
            "references": self.references,
        }
        self.dir.write_summary(summary)
        return summary

    def failure_kinds(self) -> dict[str, int]:
        """How many trained candidates failed, by kind of failure (from the cache)."""
        kinds: Counter = Counter()
        for rec in self.cache.values():
            if not math.isfinite(rec["fitness"]):
                kinds[_failure_kind(rec.get("reasons") or [])] += 1
        return dict(kinds.most_common())

    def _best_program(self, verdict: dict) -> Individual | None:
        """best.opt: the best hall-of-fame member if it beats the warm start beyond the noise, else the warm start."""
        if not self.has_meta:
            return self.hof[0] if len(self.hof) else self.best
        winners = {w["fingerprint"] for w in verdict["beats_warm_start"]}
        for ind in self.hof:
            if ind.fp in winners:
                return ind
        warm = self.warm_meta()
        for ind in self.inits:
            if warm is not None and ind.fp == warm[0]:
                return ind
        return self.inits[0] if self.inits else None

    def _hof_text(self, ind: Individual, rank: int, verdict: dict | None = None) -> str:
        meta = self.meta.get(ind.fp, {})
        ratios = ", ".join(f"{t} {r:.3f}" for t, r in meta.get("ratios", {}).items())
        origin = f"warm start {ind.program.name}" if ind.born < 0 else f"evaluation {ind.born}"
        vs = self.versus_warm_start(ind.fp) if ind.born >= 0 else None
        lines = [f"Discovered by `discover search` ({self.dir.path}), "
                 + (f"rank {rank}" if rank else "the warm start") + f", from {origin}."]
        if meta.get("se") is not None:
            lines.append(f"Meta-validation: loss / tuned {self.config.baseline} = {_pm(meta['fitness'], meta['se'])} "
                         f"(geometric mean over {', '.join(self.config.meta_tasks)}; each at its own tuned lr; "
                         f"{self.config.funnel_seeds} seeds)" + (f": {ratios}" if ratios else "") + ".")
        if vs is not None:
            beat = math.isfinite(vs[0]) and vs[0] + 2 * vs[1] < 1.0
            lines.append(f"Versus the warm start: {_pm(vs[0], vs[1])} "
                         + ("(better beyond 2 standard errors)." if beat else "(not better beyond the noise)."))
        if verdict is not None and ind.born < 0 and self.has_meta:
            lines.append("Nothing the search found beat the warm start by more than the noise, so this is it.")
        lines.append(f"Search fitness {ind.search_fitness:.4f} on {', '.join(self.config.tasks)}.")
        if ind.lrs:
            lines.append("Tuned lr per search task: " + ", ".join(f"{t} {lr:.3g}" for t, lr in ind.lrs.items())
                         + "; the lr default is their geometric mean. Tune lr for your own model.")
        name = ind.name
        # Written without the statements and state that cannot affect the update: the form
        # the search trained, and the one a person should read.
        return unparse(prune(ind.program).with_(name=name, doc="\n".join(lines)))

    def score_references(self, specs: list[str]) -> None:
        """Tune reference programs (e.g. momentum) on the meta tasks for comparison in the summary."""
        if not specs or not self.has_meta:
            return
        todo = [s for s in specs if s not in self.references]
        if not todo:
            return
        base = self.meta_base()
        results = self._tune_meta([prune(prepare_init(load(s))) for s in todo])
        for spec, res in zip(todo, results):
            ratio, se = paired_ratio(res, base)
            self.references[spec] = {"meta": ratio, "se": se,
                                     "ratios": {t: r.mean / base.tasks[t].mean for t, r in res.tasks.items()},
                                     "tuned": res.to_json()}
            self.log(f"reference {spec} on meta tasks: {_pm(ratio, se)} (lr tuned per task)")


def _lr_of(score: Score, program: Program) -> float:
    """The lr default folded into a scored program: the geometric mean of its per-task lrs."""
    lrs = [v for v in score.lrs.values() if math.isfinite(v) and v > 0]
    return geomean(lrs) if lrs else program.defaults.get("lr", 1.0)


def _pm(value: float, se: float | None) -> str:
    return f"{value:.4f}" if se is None else f"{value:.4f} ± {se:.4f}"


def _failure_kind(reasons: list[str]) -> str:
    """A short kind for a failure reason ("task: non-finite train loss at step 7" -> "non-finite train loss")."""
    if not reasons:
        return "unknown"
    text = reasons[0].split(": ", 1)[-1]
    for kind in ("non-finite train loss", "train loss above", "non-finite validation loss", "non-finite parameters",
                 "time limit", "raised", "stopped early"):
        if text.startswith(kind):
            return kind
    return text[:40]

