"""A search's results as people read them: the hall-of-fame files, ``best.opt``, ``summary.json``,
the verdict against the warm start and failures by kind.

Everything here reads a `SearchState` (and the config it ran with) as data and trains nothing,
so results can be written again from a checkpoint alone.

Example:
    >>> failure_kind(["mlp: non-finite train loss at step 7"])
    'non-finite train loss'
    >>> pm(1.02345, 0.0101), pm(0.5, None)
    ('1.0234 ± 0.0101', '0.5000')
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..evaluate.tuned import paired_ratio, tuned_from_json
from ..lang.printer import unparse
from .config import SearchConfig
from .individual import Individual
from .program import prune
from .rundir import RunDir
from .state import NOISE_SEEDS, SearchState

BEATS_RULE = ("a candidate beats the warm start when its meta loss ratio to it, paired by seed, "
              "is below 1 by more than 2 standard errors")


def pm(value: float, se: float | None) -> str:
    """``value ± se`` to 4 places (just the value when there is no standard error)."""
    return f"{value:.4f}" if se is None else f"{value:.4f} ± {se:.4f}"


def failure_kind(reasons: list[str]) -> str:
    """A short kind for a failure reason ("task: non-finite train loss at step 7" -> "non-finite train loss")."""
    if not reasons:
        return "unknown"
    text = reasons[0].split(": ", 1)[-1]
    for kind in ("non-finite train loss", "train loss above", "non-finite validation loss", "non-finite parameters",
                 "time limit", "raised", "stopped early"):
        if text.startswith(kind):
            return kind
    return text[:40]


def failure_kinds(cache: dict[str, dict]) -> dict[str, int]:
    """How many trained candidates failed, by kind of failure (from the score cache), most first."""
    kinds: Counter = Counter()
    for rec in cache.values():
        if not math.isfinite(rec["fitness"]):
            kinds[failure_kind(rec.get("reasons") or [])] += 1
    return dict(kinds.most_common())


# ---------------------------------------------------------------------- against the warm start


def warm_meta(state: SearchState) -> tuple[str, dict] | None:
    """The best meta-scored warm start: (fingerprint, meta record); the bar for discoveries."""
    scored = [(i.fp, state.meta[i.fp]) for i in state.inits if i.fp in state.meta]
    return min(scored, key=lambda fr: fr[1]["fitness"]) if scored else None


def versus_warm_start(state: SearchState, fp: str) -> tuple[float, float] | None:
    """Meta loss of candidate `fp` relative to the best warm start, paired by seed: (ratio, se)."""
    warm = warm_meta(state)
    rec = state.meta.get(fp)
    if warm is None or rec is None or "tuned" not in rec or "tuned" not in warm[1]:
        return None
    return paired_ratio(tuned_from_json(rec["tuned"]), tuned_from_json(warm[1]["tuned"]))


def _beats(vs: tuple[float, float] | None) -> bool:
    return vs is not None and math.isfinite(vs[0]) and vs[0] + 2 * vs[1] < 1.0


def verdict(state: SearchState) -> dict:
    """Did anything beat the warm start by more than the noise? (on the meta tasks, paired by seed)."""
    warm = warm_meta(state)
    out: dict[str, Any] = {"warm_start": warm[0] if warm else None, "beats_warm_start": [], "rule": BEATS_RULE}
    for ind in state.hall_of_fame:
        if warm is not None and ind.fp == warm[0]:
            continue
        vs = versus_warm_start(state, ind.fp)
        if _beats(vs):
            out["beats_warm_start"].append({"fingerprint": ind.fp, "ratio": vs[0], "se": vs[1]})
    return out


def best_program(state: SearchState, verdict: dict, has_meta: bool) -> Individual | None:
    """best.opt: the best hall-of-fame member if it beats the warm start beyond the noise, else the warm start.
    Without meta tasks there is no such test: the hall of fame's best (or the search's)."""
    if not has_meta:
        return state.hall_of_fame[0] if state.hall_of_fame else state.best
    winners = {w["fingerprint"] for w in verdict["beats_warm_start"]}
    for ind in state.hall_of_fame:
        if ind.fp in winners:
            return ind
    warm = warm_meta(state)
    for ind in state.inits:
        if warm is not None and ind.fp == warm[0]:
            return ind
    return state.inits[0] if state.inits else None


# ---------------------------------------------------------------------- the files


def program_text(ind: Individual, rank: int, state: SearchState, config: SearchConfig, run_path: Path | str,
                 verdict: dict | None = None) -> str:
    """A hall-of-fame member as a program file whose docstring says where it came from and how it scored.
    ``rank`` 0 means the warm start chosen as best.opt (``verdict`` given: say why)."""
    meta = state.meta.get(ind.fp, {})
    ratios = ", ".join(f"{t} {r:.3f}" for t, r in meta.get("ratios", {}).items())
    origin = f"warm start {ind.program.name}" if ind.born < 0 else f"evaluation {ind.born}"
    vs = versus_warm_start(state, ind.fp) if ind.born >= 0 else None
    lines = [f"Discovered by `discover search` ({run_path}), "
             + (f"rank {rank}" if rank else "the warm start") + f", from {origin}."]
    if meta.get("se") is not None:
        lines.append(f"Meta-validation: loss / tuned {config.baseline} = {pm(meta['fitness'], meta['se'])} "
                     f"(geometric mean over {', '.join(config.meta_tasks)}; each at its own tuned lr; "
                     f"{config.funnel_seeds} seeds)" + (f": {ratios}" if ratios else "") + ".")
    if vs is not None:
        lines.append(f"Versus the warm start: {pm(vs[0], vs[1])} "
                     + ("(better beyond 2 standard errors)." if _beats(vs) else "(not better beyond the noise)."))
    if verdict is not None and ind.born < 0 and config.meta_tasks:
        lines.append("Nothing the search found beat the warm start by more than the noise, so this is it.")
    lines.append(f"Search fitness {ind.search_fitness:.4f} on {', '.join(config.tasks)}.")
    if ind.lrs:
        lines.append("Tuned lr per search task: " + ", ".join(f"{t} {lr:.3g}" for t, lr in ind.lrs.items())
                     + "; the lr default is their geometric mean. Tune lr for your own model.")
    # Written without the statements and state that cannot affect the update: the form
    # the search trained, and the one a person should read.
    return unparse(prune(ind.program).with_(name=ind.name, doc="\n".join(lines)))


def summary(state: SearchState, config: SearchConfig, *, completed: bool, fitness_noise: float | None,
            verdict: dict, best: Individual | None) -> dict:
    """``summary.json``: counts, rates, baselines, noise, warm starts, hall of fame, verdict, references.
    ``fitness_noise``: the evaluator's spread of one search fitness (None before the noise is measured)."""
    elapsed = state.elapsed
    return {
        "completed": completed, "evaluations": state.evaluations, "batches": state.batch,
        "cache_hits": state.hits, "cache_hit_rate": state.hits / max(1, state.evaluations),
        "trained": len(state.cache), "failures": state.failures,
        "failure_rate": state.failures / max(1, state.evaluations),
        "failure_kinds": failure_kinds(state.cache),
        "restarts": state.restarts, "funnels": state.funnels,
        "seconds": elapsed, "evaluations_per_second": state.evaluations / max(elapsed, 1e-9),
        "trained_per_second": len(state.cache) / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds, "member_steps": state.member_steps,
        "lr_protocol": config.lr_protocol, "early_stop": config.early_stop,
        "baselines": {"program": config.baseline, "search": {t: dict(v) for t, v in state.baseline.items()},
                      "meta": state.meta_baseline},
        "noise": {"seed_spread": state.noise, "seeds": NOISE_SEEDS, "search_fitness": fitness_noise},
        "warm_start": [{"program": unparse(i.program, header=False), "fitness": i.value, "lrs": i.lrs,
                        "meta": state.meta.get(i.fp, {}).get("fitness"), "meta_se": state.meta.get(i.fp, {}).get("se")}
                       for i in state.inits],
        "best_search": {"program": unparse(state.best.program, header=False), "fitness": state.best.value,
                        "eval": state.best.born} if state.best else None,
        "hall_of_fame": [{"rank": r, "fingerprint": i.fp, "meta": i.value, "meta_se": i.meta_se,
                          "search": i.search_fitness, "eval": i.born, "lrs": i.lrs,
                          "versus_warm_start": versus_warm_start(state, i.fp),
                          "meta_ratios": state.meta.get(i.fp, {}).get("ratios", {}),
                          "program": unparse(prune(i.program), header=False)}
                         for r, i in enumerate(state.hall_of_fame, 1)],
        "verdict": verdict, "best": best.fp if best is not None else None,
        "references": state.references,
    }


def write_results(run_dir: RunDir, config: SearchConfig, state: SearchState, *, completed: bool,
                  fitness_noise: float | None) -> dict:
    """Write ``hall_of_fame/``, ``best.opt`` and ``summary.json`` from `state`; returns the summary.

    `state` must be current (`Search.capture`): its ``baseline`` and ``elapsed`` are reported."""
    run_dir.write_hall_of_fame([(f"{rank:02d}_{ind.fp[:8]}", program_text(ind, rank, state, config, run_dir.path))
                                for rank, ind in enumerate(state.hall_of_fame, 1)])
    found = verdict(state)
    best = best_program(state, found, bool(config.meta_tasks))
    if best is not None:
        rank = 1 if state.hall_of_fame[:1] == [best] else 0
        run_dir.write_best(program_text(best, rank, state, config, run_dir.path, found))
    data = summary(state, config, completed=completed, fitness_noise=fitness_noise, verdict=found, best=best)
    run_dir.write_summary(data)
    return data
