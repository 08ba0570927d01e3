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

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..lang.check import check
from ..lang.errors import ProgramError
from ..lang.ir import Const, Operand, Program, Ref, Stmt, is_temp
from ..lang.ops import OPS, Type
from . import algebra
from ..lang import passes
from ..lang.passes import base_name, op_count, rename, renumber_temps, to_ssa
from .fingerprint import equivalent, probe_states
from .render import expr_text, stmt_text

_COMMUTATIVE = {name for name, op in OPS.items() if op.commutative}


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


# ------------------------------------------------------------------ verification
def verify(before: Program, after: Program) -> str | None:
    """None when `after` type-checks and makes the same updates as `before`; else why not."""
    try:
        types = check(after)
    except ProgramError as exc:
        return f"does not type-check ({exc.message})"
    before_types = check(before)
    for s, r in zip(after.states, after.returns[1:]):
        if s.scalar:
            continue
        if (_type(r, types) != Type.TENSOR) and s.name in before.state_names:
            old = before.returns[1 + before.state_names.index(s.name)]
            if _type(old, before_types) == Type.TENSOR:
                return f"state {s.name} would stop being a tensor"
    if not equivalent(before, after):
        return "changes the updates on probe inputs"
    shared = [s.name for s in after.states if s.name in before.state_names]
    if shared:
        sa, sb = probe_states(before, 8), probe_states(after, 8)
        for name in shared:
            if not torch.allclose(sa[name], sb[name], rtol=1e-7, atol=1e-12, equal_nan=True):
                return f"changes the values of state {base_name(name)} on probe inputs"
    return None


def _type(arg: Operand, types: dict) -> Type:
    return Type.SCALAR if isinstance(arg, Const) else types[arg.name]


# ------------------------------------------------------------------ structural passes (SSA)
def dead_code(p: Program) -> tuple[Program, list[str]]:
    """Drop statements whose values no output needs (`discover.lang.passes.dead_code`), saying which."""
    out = passes.dead_code(p)
    if len(out.body) == len(p.body):
        return p, []
    kept = {s.target for s in out.body}
    removed = [s for s in p.body if s.target not in kept]
    read_by_removed = {a.name for s in removed for a in s.args if isinstance(a, Ref)}
    roots = [s for s in removed if s.target not in read_by_removed]
    texts = [f"removed dead code `{stmt_text(p, s, expand={t.target for t in removed})}`" for s in roots]
    return out, texts


def dead_state(p: Program) -> tuple[Program, list[str]]:
    """Drop states whose value never reaches the update; constant states become constants."""
    texts = []
    assigned = {s.target for s in p.body}
    # a state returned unchanged with a constant start is that constant forever
    for s, r in zip(p.states, p.returns[1:]):
        if r == Ref(s.name) and isinstance(s.init, Const) and s.name not in assigned and s.name in set(_reads(p)):
            p = _substitute(p, s.name, s.init)
            texts.append(f"state {s.name} never changes: replaced by its start value {_num(s.init.value)}")
    names = list(p.state_names)
    live = set(passes.live_states(p))
    dead = [k for k, name in enumerate(names) if name not in live]
    if not dead:
        return p, texts
    reads = set(_reads(p))
    for k in dead:
        name = names[k]
        if name not in reads:
            why = "overwritten before it is read"
        else:
            why = "its value never reaches the update"
        texts.append(f"removed state {name}: {why}")
    states = tuple(s for k, s in enumerate(p.states) if k not in dead)
    returns = (p.returns[0],) + tuple(r for k, r in enumerate(p.returns[1:]) if k not in dead)
    out, removed = dead_code(p.with_(states=states, returns=returns))
    return out, texts + removed


def _reads(p: Program):
    for s in p.body:
        for a in s.args:
            if isinstance(a, Ref):
                yield a.name
    for a in p.returns[:1]:
        if isinstance(a, Ref):
            yield a.name
    for s, a in zip(p.states, p.returns[1:]):
        if isinstance(a, Ref) and a.name != s.name:
            yield a.name


def _substitute(p: Program, name: str, value: Operand, returns: bool = True) -> Program:
    def sub(a: Operand) -> Operand:
        return value if a == Ref(name) else a

    body = tuple(Stmt(s.target, s.op, tuple(sub(a) for a in s.args), s.pos) for s in p.body)
    rets = tuple(sub(a) for a in p.returns) if returns else p.returns
    return p.with_(body=body, returns=rets)


def _num(value: float) -> str:
    from ..lang.printer import format_number

    return format_number(value)


def fold_constants(p: Program) -> tuple[Program, list[str]]:
    """Statements of constants only become their value."""
    body, texts = [], []
    for s in p.body:
        if s.op != "copy" and s.args and all(isinstance(a, Const) for a in s.args):
            try:
                value = float(OPS[s.op].call(*(a.value for a in s.args)))
            except Exception:
                value = math.nan
            if not math.isnan(value):
                texts.append(f"folded `{stmt_text(p, s)}` to {_num(value)}")
                body.append(Stmt(s.target, "copy", (Const(value),), s.pos))
                continue
        body.append(s)
    return (p.with_(body=tuple(body)), texts) if texts else (p, [])


def propagate_copies(p: Program) -> tuple[Program, list[str]]:
    """Reads of ``x = y`` read ``y``; a constant is not propagated into a tensor state's value."""
    alias: dict[str, Operand] = {}
    texts = []
    for s in p.body:
        if s.op == "copy":
            alias[s.target] = _resolve(s.args[0], alias)
    if not alias:
        return p, []
    body = tuple(Stmt(s.target, s.op, tuple(_resolve(a, alias) for a in s.args), s.pos) for s in p.body)
    returns = [_resolve(p.returns[0], alias)]
    for s, r in zip(p.states, p.returns[1:]):
        new = _resolve(r, alias)
        returns.append(r if isinstance(new, Const) and not s.scalar else new)
    for name, value in alias.items():
        if not is_temp(name):
            texts.append(f"copy propagated: {base_name(name)} -> {expr_text(p, value)}")
    out = p.with_(body=body, returns=tuple(returns))
    out2, _ = dead_code(out)
    if out2 == p:
        return p, []
    return out2, texts or ["copy propagated"]


def _resolve(a: Operand, alias: dict[str, Operand]) -> Operand:
    while isinstance(a, Ref) and a.name in alias:
        a = alias[a.name]
    return a


def common_subexpressions(p: Program) -> tuple[Program, list[str]]:
    """A value computed twice is computed once."""
    seen: dict[tuple, str] = {}
    body, texts = [], []
    for s in p.body:
        if s.op == "copy":
            body.append(s)
            continue
        args = tuple(s.args)
        if s.op in _COMMUTATIVE:
            args = tuple(sorted(args, key=repr))
        key = (s.op, args)
        if key in seen:
            texts.append(f"`{expr_text(p, Ref(s.target))}` is computed twice: computed once")
            body.append(Stmt(s.target, "copy", (Ref(seen[key]),), s.pos))
        else:
            seen[key] = s.target
            body.append(s)
    if not texts:
        return p, []
    out, _ = propagate_copies(p.with_(body=tuple(body)))
    return out, texts


STRUCTURAL: list[tuple[str, Callable[[Program], tuple[Program, list[str]]]]] = [
    ("dead code", dead_code),
    ("dead state", dead_state),
    ("constants", fold_constants),
    ("copies", propagate_copies),
    ("common subexpressions", common_subexpressions),
]


# ------------------------------------------------------------------ driver
def cleanup(p: Program, max_rounds: int = 20) -> Program:
    """The structural passes to a fixed point, unverified (they preserve behaviour by construction)."""
    for _ in range(max_rounds):
        before = p
        for _kind, fn in STRUCTURAL:
            p = fn(p)[0]
        if p == before:
            break
    return p


def readable(ssa: Program) -> Program:
    """A valid, plainly named program for a single-assignment one (for evaluators and printing)."""
    return _pretty(ssa, False)[0]


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
        from .ablate import ablate

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


def _pretty(ssa: Program, lift_constants: bool) -> tuple[Program, list[str]]:
    """The readable form; falls back to plainer forms if a nicer one would not be equivalent."""
    from .pretty import pretty

    for lift in ((True, False) if lift_constants else (False,)):
        try:
            out, notes = pretty(ssa, lift_constants=lift)
        except Exception:  # never lose a simplification to a naming problem
            continue
        if verify(ssa, out) is None:
            return out, notes
    plain = renumber_temps(_plain_names(ssa))
    return plain, ["(kept plain names)"]


def _plain_names(p: Program) -> Program:
    """SSA names made legal: ``m#3`` -> ``m_3`` (a fallback that is always correct)."""
    taken = {s.target for s in p.body}
    mapping = {t: (t.replace("#", "_s") if not is_temp(t) else "_" + t.replace("#", "_").lstrip("_")) for t in taken}
    return rename(p, mapping)


def simplify_file(spec, **kw) -> Result:
    """Load `spec` leniently (re-assigned hyperparameters become locals) and simplify it."""
    from .lenient import load_lenient

    program, notes = load_lenient(spec)
    return simplify(program, notes=notes, **kw)

