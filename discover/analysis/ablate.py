"""Evaluation-driven simplification: drop what the fitness does not need.

The step the Lion paper's authors did by hand: for each statement, try
replacing its op by one of its arguments (``g = arcsin(g)`` -> ``g = g``,
which for a re-assignment is removing the statement; ``u = u + wd`` -> ``u = u``),
clean up, and re-score. All candidates of a round are scored in one call
of a batched `fitness(programs) -> scores` (lower is better), so an
evaluator can train them together.

A change qualifies when its fitness is within `tolerance` (relative: 0.02 is
2%) of the starting program's: the part it removes does not matter to the
fitness. Fitnesses should be taken at each candidate's tuned learning rate
(`discover.evaluate.tuned.tuned_fitness`, what ``simplify --ablate`` uses): at one fixed lr, a change that only shifts the best lr
looks like a change of algorithm. By default a
change that *improves* the fitness by more than the tolerance does not
qualify either: it makes a different optimizer, which is the search's job,
and short proxy tasks favour dropping momentum or sign outright (on them the
raw Lion program ablates all the way to SGD). With ``keep_improvements=True``
any change no worse than the tolerance qualifies. Of the qualifying changes
the one removing the most operations (then the one changing the fitness
least) is kept; rounds repeat until nothing qualifies. Measuring against
the *starting* fitness (not the last round's) keeps small losses from adding up.

Example::

    result = ablate(program, fitness, tolerance=0.02)
    for step in result.steps:
        print(step.text, step.delta)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..lang.check import check
from ..lang.errors import ProgramError
from ..lang.ir import Program, Ref, Stmt
from ..lang.passes import dependencies, op_count, to_ssa
from .canonical import structural_hash
from .pretty import readable
from .structural import cleanup
from .render import expr_text, stmt_text

Fitness = Callable[[list[Program]], list[float]]


@dataclass
class Candidate:
    text: str
    program: Program  # single-assignment form, cleaned up


@dataclass
class AblationStep:
    text: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass
class AblationResult:
    program: Program  # single-assignment form
    start_fitness: float
    fitness: float
    steps: list[AblationStep] = field(default_factory=list)
    rounds: int = 0

    def report(self) -> str:
        lines = [f"ablation: starting fitness {self.start_fitness:.4g} (lower is better)"]
        for s in self.steps:
            lines.append(f"  [ablate] {s.text}: fitness {s.before:.4g} -> {s.after:.4g} ({s.delta:+.4g})")
        if not self.steps:
            lines.append("  [ablate] no change kept: every candidate made the fitness worse beyond the tolerance")
        return "\n".join(lines)


def candidates(program: Program) -> list[Candidate]:
    """Every single-op bypass of an SSA program, cleaned up, type-checked, still using the
    gradient (and ``lr``, where the update used it)."""

    out: list[Candidate] = []
    seen: set[str] = set()
    own = structural_hash(program)
    # the learning rate is what schedulers and lr grids drive: an ablation may not cut it off
    must_keep = dependencies(program)[0] & {"lr"}
    for i, stmt in enumerate(program.body):
        if stmt.op == "copy":
            continue
        for arg in dict.fromkeys(stmt.args):
            body = list(program.body)
            body[i] = Stmt(stmt.target, "copy", (arg,), stmt.pos)
            cand = cleanup(program.with_(body=tuple(body)))
            try:
                check(cand)
            except ProgramError:
                continue
            deps = dependencies(cand)[0]
            if not ({"g", "u"} & deps) or not (must_keep <= deps):
                continue
            key = structural_hash(cand)
            if key in seen or key == own:
                continue
            seen.add(key)
            out.append(Candidate(_describe(program, stmt, arg), cand))
    return out


def _describe(program: Program, stmt: Stmt, arg) -> str:
    old = stmt_text(program, stmt)
    new = expr_text(program, arg)
    what = "drop" if isinstance(arg, Ref) and arg.name.split("#")[0] == stmt.target.split("#")[0] else "bypass"
    return f"{what} {stmt.op}: `{old}` -> `{new}`"


def ablate(program: Program, fitness: Fitness, *, tolerance: float = 0.02, max_rounds: int = 20,
           keep_improvements: bool = False, log: Callable[[str], None] | None = None) -> AblationResult:
    """Greedy ablation of `program` (any form) against `fitness`; see the module docstring."""

    current = to_ssa(program) if not any("#" in s.target for s in program.body) else program
    start = float(fitness([readable(current)])[0])
    result = AblationResult(current, start, start)
    if not math.isfinite(start):
        return result
    f_current = start
    for round_ in range(max_rounds):
        cands = candidates(current)
        if not cands:
            break
        scores = [float(s) for s in fitness([readable(c.program) for c in cands])]
        # relative: a change qualifies when it moves the fitness by at most `tolerance` of it
        ok = [(c, s) for c, s in zip(cands, scores) if math.isfinite(s) and s <= start * (1 + tolerance)
              and (keep_improvements or s >= start * (1 - tolerance))]
        result.rounds = round_ + 1
        if log:
            log(f"round {round_ + 1}: {len(cands)} candidates, {len(ok)} within tolerance")
            for c, s in zip(cands, scores):
                log(f"    {s:10.4g}  {c.text}")
        if not ok:
            break
        best, score = max(ok, key=lambda t: (op_count(current) - op_count(t[0].program), -abs(t[1] - start)))
        result.steps.append(AblationStep(best.text, f_current, score))
        if log:
            log(f"  kept: {best.text} (fitness {f_current:.4g} -> {score:.4g})")
        current, f_current = best.program, score
    result.program, result.fitness = current, f_current
    return result
