"""Individuals of the search: ordinary module-level classes (not DEAP ``creator`` ones), so they
pickle to worker processes and other machines, with a DEAP fitness (lower is better).

Example:
    >>> from discover import load
    >>> ind = Individual(load("sgd"), "abc", 1.5, born=3)
    >>> ind.fitness.values, Individual.from_json(ind.to_json()).fitness.values
    ((1.5,), (1.5,))
    >>> ind.name
    'discovered_abc'
"""
from __future__ import annotations

import math

from deap import base

from ..lang.ir import Program
from .program import program_from_json, program_to_json


class FitnessMin(base.Fitness):
    """One objective, minimised: the normalized loss (1.0 = the tuned baseline)."""

    weights = (-1.0,)


class Individual:
    """A program in the population: its IR, fingerprint, fitness and lineage.

    ``born`` is the evaluation index that created it (negative for warm starts),
    ``parent`` the evaluation index of its parent, ``search_fitness`` its fitness on
    the search tasks and ``meta`` its meta-validation fitness once the funnel scored it.
    ``lrs`` are its tuned learning rates per search task (children start their lr grid
    there; the program's own ``lr`` default is their geometric mean); ``meta_se`` is
    the standard error of ``meta`` over the funnel's seeds.
    """

    def __init__(self, program: Program, fp: str, fitness: float | None = None, *, born: int = -1,
                 parent: int | None = None, search_fitness: float | None = None, meta: float | None = None,
                 lrs: dict[str, float] | None = None, meta_se: float | None = None) -> None:
        self.program = program
        self.fp = fp
        self.fitness = FitnessMin()
        if fitness is not None:
            self.fitness.values = (float(fitness),)
        self.born = born
        self.parent = parent
        self.search_fitness = search_fitness if search_fitness is not None else fitness
        self.meta = meta
        self.lrs = dict(lrs or {})
        self.meta_se = meta_se

    @property
    def name(self) -> str:
        """The name its program is saved and shown under: the warm start's own name, or
        ``discovered_<fingerprint>`` for a child (which would otherwise keep its ancestor's)."""
        return self.program.name if self.born < 0 else f"discovered_{self.fp[:8]}"

    @property
    def value(self) -> float:
        return self.fitness.values[0] if self.fitness.valid else math.inf

    def to_json(self) -> dict:
        return {"program": program_to_json(self.program), "fp": self.fp,
                "fitness": self.value if self.fitness.valid else None, "born": self.born,
                "parent": self.parent, "search_fitness": self.search_fitness, "meta": self.meta,
                "lrs": self.lrs, "meta_se": self.meta_se}

    @classmethod
    def from_json(cls, d: dict) -> "Individual":
        return cls(program_from_json(d["program"]), d["fp"], d["fitness"], born=d["born"], parent=d["parent"],
                   search_fitness=d.get("search_fitness"), meta=d.get("meta"), lrs=d.get("lrs"),
                   meta_se=d.get("meta_se"))

    def __repr__(self) -> str:
        return f"Individual({self.program.name!r}, fp={self.fp}, fitness={self.value:.4g}, born={self.born})"
