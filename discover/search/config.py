"""Search settings: one `SearchConfig`, validated, stored as ``config.json`` in the run directory.

Example:
    >>> cfg = SearchConfig(budget=16, init=["sgd"])
    >>> cfg.validate().budget
    16
    >>> SearchConfig.from_json(cfg.to_json()) == cfg
    True
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..evaluate.fitness import PROTOCOLS, SEARCH_FACTORS
from ..lang.names import name_problem
from ..lang.ops import SEARCH_OP_SETS
from ..tasks import DEFAULT_TASKS, META_TASKS
from .mutate import mutation_weights

# Fields that may change when a run is resumed (they do not change what the run computes
# up to where it stopped, only where it stops or how fast it gets there).
RESUMABLE_CHANGES = ("budget", "time_limit", "workers", "backend", "address", "gpus_per_worker",
                     "cpus_per_worker", "out", "progress")


def resolve_init(specs: list[str]) -> list[str]:
    """Warm-start specs with every search run directory replaced by its hall of fame
    (``hall_of_fame/*.opt``, best first; ``best.opt`` if it has none), as PySR warm-starts
    from an earlier run. Other specs (names, ``A+B``, ``.opt`` paths) are kept as they are.

    Example:
        >>> resolve_init(["adamw", "lookahead+sgd"])
        ['adamw', 'lookahead+sgd']
    """
    out: list[str] = []
    for spec in specs:
        path = Path(spec)
        if not path.is_dir():
            out.append(spec)
            continue
        found = sorted((path / "hall_of_fame").glob("*.opt")) or sorted(path.glob("best.opt"))
        if not found:
            raise ValueError(f"--init {spec}: a directory is read as a search run, but it has no hall_of_fame/*.opt "
                             "or best.opt (a run writes them when it ends; an interrupted run gets them when resumed to its end)")
        out.extend(str(f) for f in found)
    return out


@dataclass
class SearchConfig:
    """Everything that defines a search run. See `discover search --help` for each field."""

    init: list[str] = field(default_factory=lambda: ["adamw"])
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    meta_tasks: list[str] = field(default_factory=lambda: list(META_TASKS))
    budget: int = 256
    time_limit: float | None = None
    seed: int = 0
    population: int = 16
    tournament: int = 4
    batch: int = 8
    seeds: int = 1
    factors: list[float] = field(default_factory=lambda: list(SEARCH_FACTORS))
    lr_protocol: str = "per_task"
    early_stop: bool = True
    funnel_seeds: int = 3
    steps: int | None = None
    meta_steps: int | None = None
    meta_horizon: float = 2.0
    funnel_every: int = 96
    funnel_top: int = 2
    hof_size: int = 5
    max_len: int = 28
    plateau: int = 128
    slots: list[str] = field(default_factory=lambda: ["m", "v"])
    ops: list[str] = field(default_factory=list)  # op sets added to the default space (SEARCH_OP_SETS)
    mutations: dict[str, float] = field(default_factory=dict)  # mutation weights changed from MUTATION_WEIGHTS
    baseline: str = "adamw"
    candidate_time_limit: float | None = 60.0
    device: str = "cpu"
    workers: int = 1
    backend: str = "auto"
    address: str | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    out: str | None = None
    progress: bool = True

    def validate(self) -> "SearchConfig":
        """Check every field; raise `ValueError` naming the problem. Returns self.

        A run directory in ``init`` is replaced by its hall-of-fame files (see `resolve_init`),
        so ``config.json`` records the programs the run started from."""
        from ..tasks import get_task

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        self.check_types()
        need(self.budget > 0, f"budget must be a positive number of evaluations, got {self.budget}")
        need(self.population >= 2, f"population must be at least 2, got {self.population}")
        need(1 <= self.tournament <= self.population,
             f"tournament must be between 1 and the population ({self.population}), got {self.tournament}")
        need(self.batch >= 1, f"batch must be at least 1, got {self.batch}")
        need(self.seeds >= 1, f"seeds must be at least 1, got {self.seeds}")
        need(self.workers >= 1, f"workers must be at least 1, got {self.workers}")
        need(self.backend in ("auto", "local", "process", "ray"),
             f"backend must be auto, local, process or ray, got {self.backend!r}")
        need(self.gpus_per_worker >= 0 and self.cpus_per_worker > 0,
             f"gpus per worker must be at least 0 and cpus per worker above 0, got "
             f"{self.gpus_per_worker:g} and {self.cpus_per_worker:g}")
        need(self.address is None or self.backend == "ray", "--address is for --backend ray")
        need(self.time_limit is None or self.time_limit > 0, f"time limit must be positive, got {self.time_limit}")
        for name in ("steps", "meta_steps"):
            value = getattr(self, name)
            need(value is None or value >= 1, f"{name.replace('_', ' ')} must be at least 1 training step (leave it "
                                              f"out for each task's own), got {value}")
        need(math.isfinite(self.meta_horizon) and self.meta_horizon > 0,
             f"meta horizon must be a positive multiple of each meta task's steps, got {self.meta_horizon}")
        need(self.candidate_time_limit is None or self.candidate_time_limit > 0,
             f"candidate time limit must be a positive number of seconds (leave it out for the default "
             f"{SearchConfig.candidate_time_limit:g}), got {self.candidate_time_limit}")
        need(bool(self.factors) and all(f > 0 and math.isfinite(f) for f in self.factors),
             f"lr factors must be positive numbers, got {self.factors}")
        need(self.lr_protocol in PROTOCOLS,
             f"lr protocol must be one of {', '.join(PROTOCOLS)}, got {self.lr_protocol!r}")
        need(isinstance(self.funnel_seeds, int) and self.funnel_seeds >= 1,
             f"funnel seeds must be at least 1 (3 or more to measure the noise), got {self.funnel_seeds}")
        need(self.funnel_every >= 1 and self.funnel_top >= 0 and self.hof_size >= 1,
             "funnel_every and hof_size must be at least 1, funnel_top at least 0")
        need(self.max_len >= 1 and self.plateau >= 1, "max_len and plateau must be at least 1")
        need(self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
             f"device must be cpu or cuda, got {self.device!r}")
        if self.device.startswith("cuda") and self.backend == "ray":
            need(self.gpus_per_worker > 0, f"device {self.device!r} with the ray backend needs --gpus-per-worker "
                                           "above 0 (the GPUs are the workers', not this machine's)")
        elif self.device.startswith("cuda"):
            import torch

            need(torch.cuda.is_available(), f"device {self.device!r} was asked for, but torch sees no CUDA GPU")
        self.init = resolve_init(self.init)
        need(bool(self.init), "give at least one --init program")
        need(bool(self.tasks), "give at least one task")
        check_programs(self.init, "--init")
        check_warm_starts(self.init, self.max_len)
        check_programs([self.baseline], "--baseline")
        unknown = [name for name in self.ops if name not in SEARCH_OP_SETS]
        need(not unknown, f"--ops: unknown op set(s) {', '.join(unknown)}; the op sets are "
                          f"{', '.join(SEARCH_OP_SETS)} (the default space is every other op)")
        try:
            mutation_weights(self.mutations)
        except ValueError as exc:
            need(False, f"--mutations: {exc}")
        for slot in self.slots:
            problem = name_problem(slot, "state")
            need(problem is None, f"state slot: {problem}")
        for t in list(self.tasks) + list(self.meta_tasks):
            get_task(t)  # ValueError naming the task
        return self

    def check_types(self) -> None:
        """Raise `ValueError` naming the first field whose value has the wrong type (``config.json``
        is data a person may edit: ``"population": "four"``)."""
        for f in dataclasses.fields(self):
            problem = _type_problem(getattr(self, f.name), str(f.type))
            if problem:
                raise ValueError(f"field {f.name!r} {problem}, got {getattr(self, f.name)!r}")

    def meta_task_steps(self) -> dict[str, int]:
        """Training steps of each meta task: ``meta_steps`` if given, else ``meta_horizon`` x the task's own.

        Meta tasks train longer than the search tasks (by default twice their own length) so that
        a program whose step-dependent terms only work up to the search's horizon -- a schedule that
        keeps growing, a bias correction that divides by zero at step 365 -- fails the funnel.

        Example:
            >>> SearchConfig(meta_tasks=["resmlp"]).meta_task_steps()
            {'resmlp': 600}
        """
        from ..tasks import get_task

        if self.meta_steps is not None:
            return {t: int(self.meta_steps) for t in self.meta_tasks}
        return {t: max(1, round(self.meta_horizon * get_task(t).steps)) for t in self.meta_tasks}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SearchConfig":
        """The config `to_json` wrote; `ValueError` naming a field that is unknown or of the wrong type."""
        if not isinstance(data, dict):
            raise ValueError(f"a search config is an object of fields, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown search config field(s): {', '.join(unknown)}")
        cfg = cls(**data)
        cfg.check_types()
        return cfg

    def incompatible(self, other: "SearchConfig") -> list[str]:
        """Fields (other than `RESUMABLE_CHANGES`) whose values differ."""
        a, b = self.to_json(), other.to_json()
        return [k for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]


def resume_config(saved: SearchConfig, config: SearchConfig, run_dir: str | Path,
                  given: Iterable[str] | None = None) -> SearchConfig:
    """The config a resumed run uses: `saved` (the run's ``config.json``) with the changes asked
    for in `config`. The one resume policy, for the CLI and the Python API alike.

    ``given``: the fields the user set (the CLI's options); None takes every field of `config`
    that differs from the defaults. Only `RESUMABLE_CHANGES` may differ from `saved`; anything
    else is refused in one message naming every such field. ``out`` may only name the run
    directory itself (a resumed run never moves).

    Example:
        >>> saved = SearchConfig(budget=16, init=["sgd"], out="runs/r")
        >>> resume_config(saved, SearchConfig(budget=32), "runs/r").budget
        32
        >>> resume_config(saved, SearchConfig(seed=5), "runs/r")
        Traceback (most recent call last):
        ...
        ValueError: cannot resume runs/r with a different --seed: the run was made with seed=0 (given 5); only --budget, --time-limit, --workers, --backend, --address, --gpus-per-worker and --cpus-per-worker may change on resume (start a new run to change the others)
    """
    new, old = config.to_json(), saved.to_json()
    if given is None:
        defaults = SearchConfig().to_json()
        given = [k for k in new if new[k] != defaults[k]]
    given = [k for k in given if k != "progress"]  # how it shows progress is not part of the run
    if "out" in given and new["out"] is not None and Path(new["out"]).resolve() != Path(run_dir).resolve():
        raise ValueError(f"--out {new['out']} with --resume {run_dir}: a resumed run continues in its own directory; "
                         "leave out --out (to continue elsewhere, copy the run directory and resume the copy)")
    bad = [k for k in given if k not in RESUMABLE_CHANGES and new[k] != old[k]]
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        changeable = [f"--{k.replace('_', '-')}" for k in RESUMABLE_CHANGES if k not in ("out", "progress")]
        raise ValueError(f"cannot resume {run_dir} with a different {flags}: the run was made with "
                         + ", ".join(f"{k}={old[k]!r}" for k in bad) + " (given "
                         + ", ".join(repr(new[k]) for k in bad) + "); only " + ", ".join(changeable[:-1])
                         + f" and {changeable[-1]} may change on resume (start a new run to change the others)")
    merged = dict(old)
    merged.update({k: new[k] for k in given if k in RESUMABLE_CHANGES})
    merged["out"] = str(run_dir)
    merged["progress"] = config.progress
    return SearchConfig.from_json(merged)


def check_programs(specs: Iterable[str], option: str) -> None:
    """Each spec loads and is a complete optimizer (not a wrapper such as lookahead on its own);
    `ValueError` / `ProgramError` naming the spec and `option` otherwise."""
    from ..library import load

    for spec in specs:
        if load(spec).is_wrapper:
            raise ValueError(f"{option} {spec}: it wraps another optimizer's update; give a full program "
                             f"such as '{spec}+adam'")


def check_warm_starts(specs: Iterable[str], max_len: int) -> None:
    """Each warm start keeps ``lr`` a pure scale (children must, so a warm start that does not could
    have none) and fits the length limit with room to grow; `ValueError` saying what to do otherwise.

    Example:
        >>> check_warm_starts(["radam"], 28)
        Traceback (most recent call last):
        ...
        ValueError: --init radam has 39 statements, more than --max-len 28, so no child of it would fit; give --max-len 47 or more
    """
    from ..analysis.lr_scale import lr_scale_violation
    from ..library import load
    from .program import prepare_init, prune

    for spec in specs:
        program = prepare_init(load(spec))
        why = lr_scale_violation(prune(program))
        if why is not None:
            raise ValueError(f"--init {spec}: lr is not a pure scale of its update ({why}); search tunes lr per "
                             "task, which would tune its algorithm, so it cannot be a warm start (see its header)")
        if len(program.body) > max_len:
            raise ValueError(f"--init {spec} has {len(program.body)} statements, more than --max-len {max_len}, so "
                             f"no child of it would fit; give --max-len {len(program.body) + 8} or more")


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false", "None": "null"}
_PLURALS = {"int": "integers", "float": "numbers", "str": "strings"}


def _type_problem(value: Any, annotation: str) -> str | None:
    """None if `value` fits the field annotation (``int``, ``float | None``, ``list[str]``, ...),
    else what it must be."""

    def fits(v: Any, kind: str) -> bool:
        if kind == "None":
            return v is None
        if kind.startswith("list[") and kind.endswith("]"):
            return isinstance(v, list) and all(fits(x, kind[5:-1]) for x in v)
        if kind.startswith("dict[str, ") and kind.endswith("]"):
            return isinstance(v, dict) and all(isinstance(k, str) and fits(x, kind[10:-1]) for k, x in v.items())
        if isinstance(v, bool):
            return kind == "bool"
        return isinstance(v, {"int": int, "float": (int, float), "str": str, "bool": bool}.get(kind, object))

    kinds = [k.strip() for k in annotation.split("|")]
    if any(fits(value, k) for k in kinds):
        return None
    words = [f"a list of {_PLURALS.get(k[5:-1], k[5:-1])}" if k.startswith("list[")
             else f"an object of {_PLURALS.get(k[10:-1], k[10:-1])} by name" if k.startswith("dict[str, ")
             else _TYPE_WORDS.get(k, k)
             for k in kinds]
    return "must be " + " or ".join(words)
