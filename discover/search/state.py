"""`SearchState`: everything a search checkpoint holds, as data, with its JSON form.

The checkpoint (``checkpoint.json``, plain JSON, never pickle) is `SearchState.to_json`; a
resumed run starts from `SearchState.from_json` of it and goes on exactly as if it had not
stopped. The format is version 2, the one written before this module existed, so checkpoints of
earlier runs resume as they are; `from_json` also checks a file a person may have damaged and
says which field is wrong (`CheckpointError`).

Example:
    >>> from discover import load
    >>> state = SearchState(inits=[Individual(load("sgd"), "f00d", 1.0, born=-1)])
    >>> again = SearchState.from_json(state.to_json())
    >>> again.to_json() == state.to_json(), again.inits[0].fp
    (True, 'f00d')
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from deap import tools

from .individual import Individual

CHECKPOINT_VERSION = 2
NOISE_SEEDS = 5
"""Seeds the tuned baseline is trained on to measure each task's seed-to-seed spread (``noise``)."""
LOGBOOK_HEADER = ["batch", "evals", "hits", "min", "median"]

# The counters of a checkpoint, in the order the file lists them (kept, so files stay comparable).
_COUNTERS = ("batch", "evaluations", "hits", "n_events", "failures", "last_improvement", "restarts", "funnels")
_SECONDS = ("train_seconds", "elapsed", "last_funnel_seconds")


class CheckpointError(ValueError):
    """A checkpoint that is not what `SearchState.to_json` writes; the message names the field."""


def new_logbook(records: Iterable[dict] = ()) -> tools.Logbook:
    """A DEAP logbook with the search's header, holding `records`."""
    logbook = tools.Logbook()
    logbook.header = list(LOGBOOK_HEADER)
    for r in records:
        logbook.record(**r)
    return logbook


def same_program(a: Individual, b: Individual) -> bool:
    """The hall of fame's "similar": programs with one fingerprint behave the same, so one place."""
    return a.fp == b.fp


def hall_of_fame(size: int, members: Iterable[Individual] = ()) -> tools.HallOfFame:
    """A DEAP hall of fame of `size` holding `members` (best first) in exactly that order.

    Inserting worst first through DEAP's own `insert` keeps the order of equal fitnesses as
    given (each insert lands in front), so nothing re-sorts ties on resume."""
    hof = tools.HallOfFame(size, similar=same_program)
    for ind in reversed(list(members)):
        hof.insert(ind)
    return hof


@dataclass
class Clock:
    """Seconds a run has been running, over every call that resumed it."""

    before: float = 0.0  # seconds of the earlier calls (from the checkpoint)
    start: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.before + (time.perf_counter() - self.start)


@dataclass
class SearchState:
    """The search's state after a finished batch: what a resumed run needs to go on exactly.

    Counters: ``batch`` (batches done), ``evaluations`` (children evaluated, cache hits
    included), ``hits`` (cache hits), ``n_events`` (lines of ``events.jsonl`` this state
    covers), ``failures``, ``last_improvement`` (evaluation of the last better search fitness),
    ``restarts``, ``funnels``. Timing (reported, never steering the search except through
    ``time_limit``): ``train_seconds``, ``elapsed``, ``last_funnel_seconds``.

    The evaluator's part: ``baseline`` (`Evaluator.baseline_state`, so a resume never retrains
    it), ``member_steps`` and ``reference`` (the multi-fidelity bar). The funnel's part:
    ``meta_baseline`` (the baseline tuned on the meta tasks, `Tuned.to_json`), ``meta`` (meta
    records by fingerprint), ``references``. ``noise``: each task's seed-to-seed spread.

    Programs: ``inits`` (the tuned warm starts), ``population`` (oldest first), ``best`` (by
    search fitness), ``hall_of_fame`` (best first), ``cache`` (score records by fingerprint),
    ``logbook`` (DEAP statistics per batch). ``final``: an ended run's final-stage results,
    kept as `runner` wrote them (its resume policy reads them).
    """

    batch: int = 0
    evaluations: int = 0
    hits: int = 0
    n_events: int = 0
    failures: int = 0
    last_improvement: int = 0
    restarts: int = 0
    funnels: int = 0
    train_seconds: float = 0.0
    elapsed: float = 0.0
    last_funnel_seconds: float = 0.0
    baseline: dict[str, dict] = field(default_factory=dict)
    meta_baseline: dict | None = None
    noise: dict[str, float] = field(default_factory=dict)
    member_steps: int = 0
    reference: dict[str, list[float]] = field(default_factory=dict)
    inits: list[Individual] = field(default_factory=list)
    population: deque[Individual] = field(default_factory=deque)
    best: Individual | None = None
    hall_of_fame: list[Individual] = field(default_factory=list)
    cache: dict[str, dict] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    references: dict[str, dict] = field(default_factory=dict)
    logbook: tools.Logbook = field(default_factory=new_logbook)
    final: dict | None = None

    def to_json(self) -> dict:
        """The checkpoint: plain JSON data, in the version-2 layout.

        Containers are fresh (records are shared: the search replaces them, never edits them), so
        a snapshot taken after a batch is not changed by the next one."""
        data: dict[str, Any] = {"version": CHECKPOINT_VERSION}
        data.update({k: getattr(self, k) for k in _COUNTERS + _SECONDS})
        data.update({
            "baseline": {t: dict(v) for t, v in self.baseline.items()},
            "meta_baseline": self.meta_baseline, "noise": dict(self.noise),
            "member_steps": self.member_steps, "reference": {t: list(v) for t, v in self.reference.items()},
            "inits": [i.to_json() for i in self.inits],
            "population": [i.to_json() for i in self.population],
            "best": self.best.to_json() if self.best else None,
            "hall_of_fame": [i.to_json() for i in self.hall_of_fame],
            "cache": dict(self.cache), "meta": dict(self.meta), "references": dict(self.references),
            "logbook": [dict(r) for r in self.logbook],
        })
        if self.final is not None:
            data["final"] = self.final
        return data

    @classmethod
    def from_json(cls, data: Any) -> "SearchState":
        """The state `to_json` wrote; `CheckpointError` naming the first field that is wrong.

        Fields that checkpoints of earlier versions lacked (``member_steps``, ``reference``,
        ``references``) take their defaults; fields it does not know are ignored."""
        if not isinstance(data, dict):
            raise CheckpointError(f"a checkpoint is an object of fields, not {type(data).__name__}")
        if data.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"field 'version': {data.get('version')!r} is not a checkpoint version this "
                                  f"discover reads (it reads {CHECKPOINT_VERSION})")
        lists = {key: _individuals(data, key) for key in ("inits", "population", "hall_of_fame")}
        best = _individual(data["best"], "best") if data.get("best") is not None else None
        counters = {k: _number(data, k, int) for k in _COUNTERS}
        seconds = {k: _number(data, k, float) for k in _SECONDS}
        return cls(
            **counters, **seconds,
            baseline={t: dict(v) for t, v in _field(data, "baseline", dict).items()},
            meta_baseline=data.get("meta_baseline"),
            noise=dict(_field(data, "noise", dict)),
            member_steps=int(data.get("member_steps", 0)),
            reference={t: list(v) for t, v in data.get("reference", {}).items()},
            inits=lists["inits"], population=deque(lists["population"]), best=best,
            hall_of_fame=lists["hall_of_fame"],
            cache=dict(_field(data, "cache", dict)), meta=dict(_field(data, "meta", dict)),
            references=dict(data.get("references", {})),
            logbook=new_logbook(_field(data, "logbook", list)),
            final=data.get("final"),
        )


# ---------------------------------------------------------------------- reading, with the field named


def _field(data: dict, key: str, kind: type) -> Any:
    if key not in data:
        raise CheckpointError(f"field {key!r}: missing")
    if not isinstance(data[key], kind):
        raise CheckpointError(f"field {key!r}: not {'an object' if kind is dict else 'a list'}")
    return data[key]


def _number(data: dict, key: str, kind: type) -> Any:
    if key not in data:
        raise CheckpointError(f"field {key!r}: missing")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int if kind is int else (int, float)):
        raise CheckpointError(f"field {key!r}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    return value


def _individuals(data: dict, key: str) -> list[Individual]:
    if not isinstance(data.get(key), list):
        raise CheckpointError(f"field {key!r}: " + ("missing" if key not in data else "not a list of individuals"))
    return [_individual(d, f"{key}[{i}]") for i, d in enumerate(data[key])]


def _individual(d: Any, where: str) -> Individual:
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: an individual is an object, not {type(d).__name__}")
    try:
        return Individual.from_json(d)
    except KeyError as exc:
        raise CheckpointError(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where}: {exc}") from None
