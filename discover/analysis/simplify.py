"""Behaviour-preserving simplification of a program, each step proved by probe traces.

`simplify` runs, until nothing changes:

1. dead code and dead state: statements no output needs; states whose value
   never reaches the update (a state overwritten before it is read is not
   state); states that never change become their start value;
2. constant folding, copy propagation, common subexpressions;
3. algebra (`discover.analysis.algebra`): sympy under real-valued
   assumptions (``m / sqrt(m * m)`` -> ``sign(m)``, ``x * 1``, ``x - x``,
   ``-(-x)``, ...) and merging nested EMAs of the same input.

Every change is checked with `discover.analysis.fingerprint.equivalent` (the
updates the program makes on probe inputs over several steps, as the search
cache uses) and the type checker; a change that fails either is rejected and
reported, never applied. The passes work on single-assignment form; the
result is printed back with nested formulas and readable names
(`discover.analysis.pretty`).

Example:
    >>> from discover import parse, unparse
    >>> p = parse("def f(w, g, m=0, *, lr=0.1):\\n    d = g * 1\\n    m = cosh(d)\\n    return lr * (d - d + g), m\\n")
    >>> r = simplify(p)
    >>> print(unparse(r.program), end="")
    def f(w, g, *, lr=0.1):
        return lr * g
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..lang.check import check
from ..lang.ir import Program, Ref
from ..lang.passes import op_count, to_ssa
from . import algebra
from .ablate import ablate
from .fingerprint import equivalent
from .pretty import pretty_or_plain as _pretty
from .pretty import readable
from .render import expr_text
from .structural import (STRUCTURAL, cleanup, common_subexpressions, dead_code, dead_state, fold_constants,
                         propagate_copies)
from .verify import verify

__all__ = ["Result", "STRUCTURAL", "Step", "cleanup", "common_subexpressions", "dead_code", "dead_state",
           "fold_constants", "propagate_copies", "readable", "simplify", "simplify_file", "verify"]


@dataclass
class Step:
    """One accepted (or rejected) change, for the report."""

    kind: str
    text: str
    accepted: bool = True
    ops_before: int = 0
    ops_after: int = 0


@dataclass
class Result:
    """What `simplify` returns: the readable program, its single-assignment form, and the report."""

    original: Program
    program: Program
    ssa: Program
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    equivalent: bool = True
    naming: list[str] = field(default_factory=list)
    ablation: object = None

    def report(self) -> str:
        """A human-readable account of what changed."""
        lines = [f"simplified {self.original.name}: {op_count(self.original)} ops -> {op_count(self.program)} ops, "
                 f"state {_states(self.original)} -> {_states(self.program)}"]
        for note in self.notes:
            lines.append(f"  note: {note}")
        for step in self.steps:
            mark = "" if step.accepted else "rejected: "
            lines.append(f"  [{step.kind}] {mark}{step.text}")
        for note in self.naming:
            lines.append(f"  [names] {note}")
        what = "the ablated program" if self.ablation is not None and self.ablation.steps else "the input"
        lines.append(f"  result proved equivalent to {what} on probe inputs" if self.equivalent
                     else f"  WARNING: the result is NOT equivalent to {what} on probe inputs")
        return "\n".join(lines)


def _states(p: Program) -> str:
    return "(" + ", ".join(p.state_names) + ")" if p.states else "none"


def simplify(program: Program, *, algebra_rewrites: bool = True, lift_constants: bool = True,
             notes: list[str] | None = None, max_rounds: int = 20, fitness=None, tolerance: float = 0.01,
             keep_improvements: bool = False, log=None) -> Result:
    """Simplify `program` (see the module docstring); every step is verified by probes.

    With `fitness` (batched, lower is better) the behaviour-preserving result is then
    ablated (`discover.analysis.ablate`) and simplified again.
    """
    check(program)
    steps: list[Step] = []
    current = _simplify_ssa(to_ssa(program), steps, algebra_rewrites, max_rounds)
    reference = program
    ablation = None
    if fitness is not None:
        ablation = ablate(current, fitness, tolerance=tolerance, keep_improvements=keep_improvements, log=log)
        for a in ablation.steps:
            steps.append(Step("ablate", f"{a.text}: fitness {a.before:.4g} -> {a.after:.4g} ({a.delta:+.4g})"))
        if ablation.steps:
            reference = readable(ablation.program)
            current = _simplify_ssa(ablation.program, steps, algebra_rewrites, max_rounds)
    pretty_program, pretty_notes = _pretty(current, lift_constants)
    ok = equivalent(reference, pretty_program)
    result = Result(program, pretty_program, current, steps, list(notes or []), ok, pretty_notes)
    result.ablation = ablation
    return result


def _simplify_ssa(current: Program, steps: list[Step], algebra_rewrites: bool, max_rounds: int) -> Program:
    for _ in range(max_rounds):
        changed = False
        for kind, fn in STRUCTURAL:
            new, texts = fn(current)
            if new == current:
                continue
            why = verify(current, new)
            if why:
                steps.append(Step(kind, f"{'; '.join(texts)} ({why})", accepted=False))
                continue
            steps += [Step(kind, t, True, op_count(current), op_count(new)) for t in texts]
            current, changed = new, True
        if algebra_rewrites:
            new = _algebra_round(current, steps)
            if new != current:
                current, changed = new, True
        if not changed:
            break
    return current


def _algebra_round(current: Program, steps: list[Step]) -> Program:
    """Apply algebraic rewrites one at a time, each verified: EMA merges first, then the
    sympy rewrite that saves the most operations (the smallest formula among equals)."""
    rejected: set[str] = set()
    for _ in range(4 * len(current.body) + 4):
        proposals = []
        for i in range(len(current.body)):
            merge = algebra.merge_interp(current, i)
            if merge is not None:
                proposals.append((0, 0, i, merge))
        if not proposals:
            uses = Counter(current.refs())
            for i in range(len(current.body)):
                rewrite = algebra.simplify_statement(current, i, uses)
                if rewrite is not None:
                    proposals.append((rewrite.new_cost - rewrite.old_cost, rewrite.old_cost, i, rewrite))
        proposals.sort(key=lambda t: t[:3])
        applied = False
        for *_, rewrite in proposals:
            target = current.body[rewrite.index].target
            candidate, _ = dead_code(rewrite.apply(current))
            old_text = _formula(current, rewrite)
            new_text = expr_text(candidate, Ref(target), expand={target})
            kind = "algebra" if rewrite.rule == "algebra" else "merge EMAs"
            key = f"{old_text} -> {new_text}"
            if key in rejected:
                continue
            why = verify(current, candidate)
            if why:
                rejected.add(key)
                steps.append(Step(kind, f"`{old_text}` -> `{new_text}` ({why})", accepted=False))
                continue
            text = f"`{old_text}` -> `{new_text}`"
            if rewrite.caveats:
                text += " (" + "; ".join(rewrite.caveats) + ")"
            steps.append(Step(kind, text, True, op_count(current), op_count(candidate)))
            current, applied = candidate, True
            break
        if not applied:
            break
    return current


def _formula(p: Program, rewrite: "algebra.Rewrite") -> str:
    """The replaced formula as it read before, with the values only it used written out."""
    stmt = p.body[rewrite.index]
    try:
        tree = algebra.build_tree(p, rewrite.index)
        owned = {p.body[i].target for i in tree.owned}
    except algebra.Unsupported:
        owned = set()
    if rewrite.rule == "merge-interp":
        owned = {stmt.args[1].name} if isinstance(stmt.args[1], Ref) else set()
    return expr_text(p, Ref(stmt.target), expand=owned | {stmt.target})


def simplify_file(spec, **kw) -> Result:
    """Load `spec` leniently (re-assigned hyperparameters become locals) and simplify it."""
    from .lenient import load_lenient

    program, notes = load_lenient(spec)
    return simplify(program, notes=notes, **kw)

