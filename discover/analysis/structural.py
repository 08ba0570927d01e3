"""Structural simplification passes on single-assignment programs, each with a report.

Dead code and dead state (states whose value never reaches the update; states that never
change become their start value), constant folding, copy propagation and common
subexpressions. Each pass returns the new program and sentences saying what changed;
`cleanup` runs them to a fixed point without reports. They preserve behaviour by
construction; `discover.analysis.simplify` still proves each step by probes.

Example:
    >>> from discover import parse
    >>> from discover.lang.passes import to_ssa
    >>> p = to_ssa(parse("def f(w, g, *, lr=0.1):\\n    d = g * 1\\n    e = d\\n    return lr * (e + 0 * w)\\n"))
    >>> fold_constants(p)[1], len(cleanup(p).body) < len(p.body)
    ([], True)
"""
from __future__ import annotations

import math
from typing import Callable

from ..lang import passes
from ..lang.ir import Const, Operand, Program, Ref, Stmt, is_temp
from ..lang.ops import OPS
from ..lang.passes import base_name
from .render import expr_text, stmt_text

_COMMUTATIVE = {name for name, op in OPS.items() if op.commutative}


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
