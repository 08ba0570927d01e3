"""Single-assignment IR -> a program people read: nested formulas, sensible names.

`pretty` orders the statements so the printer can nest every single-use value
back into the formula that reads it, names each state's new value after the
state (``m = interp(g, m, beta2)``), names an update that must be computed
before the state changes ``update``, gives states generic names by role (an
EMA of the gradient is ``m``, of its square ``v``), and optionally lifts the
constants of EMAs and weight decay into hyperparameters (``beta1``, ``beta2``,
``weight_decay``) with the same defaults. Where a name is still needed by a
later statement, the new value gets a suffixed name instead (``g_1``), so the
result always means what its input meant (the caller checks that by probes).

Example:
    >>> from discover import parse, unparse
    >>> from discover.lang.passes import to_ssa
    >>> p = to_ssa(parse("def f(w, g, v=0, *, lr=0.1):\\n    a = interp(g, v, 0.9)\\n    v = a\\n    return lr * a, v\\n"))
    >>> print(unparse(pretty(p)[0]), end="")
    def f(w, g, m=0, *, lr=0.1, beta1=0.9):
        m = interp(g, m, beta1)
        return lr * m, m
"""
from __future__ import annotations

import re
from collections import Counter

from ..lang.ir import INPUTS, Const, HParam, Operand, Program, Ref, Stmt, is_temp
from ..lang.ops import OPS
from ..lang.passes import base_name, drop_unused, rename, renumber_temps
from .verify import verify

_GENERIC_STATE = re.compile(r"^[a-z][0-9]*$")


def pretty(program: Program, *, lift_constants: bool = True) -> tuple[Program, list[str]]:
    """A readable program equivalent to the SSA `program`, and notes on what was renamed or dropped."""
    program = _copy_through(program)
    notes: list[str] = []
    program, renamed = _rename_states_by_role(program)
    notes += renamed
    body = list(program.body)
    defs = {s.target: i for i, s in enumerate(body)}
    uses = Counter(program.refs())
    state_slot = {}
    for s, r in zip(program.states, program.returns[1:]):
        if isinstance(r, Ref) and r.name in defs:
            state_slot.setdefault(r.name, s.name)
    nested = {t for t in defs if uses[t] == 1 and t not in state_slot}
    updated = {s.name for s, r in zip(program.states, program.returns[1:]) if isinstance(r, Ref) and r.name in defs}

    def tree(x: str) -> list[str]:
        """Post-order targets of x's nested formula (x last)."""
        out: list[str] = []
        for a in body[defs[x]].args:
            if isinstance(a, Ref) and a.name in nested and a.name in defs:
                out += tree(a.name)
        return out + [x]

    def reads(x: str) -> set[str]:
        names = set()
        for t in tree(x):
            names |= {a.name for a in body[defs[t]].args if isinstance(a, Ref)}
        return names

    named: dict[str, str] = {}  # value -> desired name
    for value, state in state_slot.items():
        named[value] = state
    update = program.returns[0]
    if isinstance(update, Ref) and update.name in nested and reads(update.name) & updated:
        node = update.name
        while True:
            stmt = body[defs[node]]
            if stmt.op not in ("mul", "div"):
                break
            heavy = [k for k, a in enumerate(stmt.args)
                     if isinstance(a, Ref) and (a.name in updated or (a.name in nested and reads(a.name) & updated))]
            if len(heavy) != 1 or (stmt.op == "div" and heavy[0] != 0):
                break
            child = stmt.args[heavy[0]].name
            if child not in nested:
                break
            node = child
        nested.discard(node)
        named[node] = "update"

    # ------------------------------------------------------------ schedule
    order: list[str] = []
    done: set[str] = set()

    def emit(x: str) -> None:
        if x in done or x not in defs:
            return
        for t in tree(x):
            for a in body[defs[t]].args:
                if isinstance(a, Ref) and a.name in defs and a.name not in nested:
                    emit(a.name)
        for t in tree(x):
            if t not in done:
                done.add(t)
                order.append(t)

    if isinstance(update, Ref) and update.name in defs and update.name not in nested:
        emit(update.name)
    for node, name in named.items():
        if name == "update":
            emit(node)
    roots = [r.name for r in program.returns[1:] if isinstance(r, Ref) and r.name in defs]
    for r in roots:
        for t in tree(r):
            for a in body[defs[t]].args:
                if isinstance(a, Ref) and a.name in defs and a.name not in nested:
                    emit(a.name)
    for r in roots:
        emit(r)
    for t in defs:  # anything else (not reached from the returns) keeps its relative order
        if t not in done and t not in nested:
            emit(t)
    if isinstance(update, Ref) and update.name in nested:
        emit(update.name)
    stmts = [body[defs[t]] for t in order]

    hparams = list(program.hparams)
    if lift_constants:
        stmts, hparams, lifted = _lift(program, stmts, hparams)
        notes += lifted
    program = program.with_(body=tuple(stmts), hparams=tuple(hparams))
    program = _final_names(program, nested, named)
    program, dropped = _drop_unused(program)
    return program, notes + dropped


def _copy_through(program: Program) -> Program:
    """Forward plain copies of values (kept ones only exist for constant state values)."""
    alias = {s.target: s.args[0] for s in program.body if s.op == "copy" and isinstance(s.args[0], Ref)}
    if not alias:
        return program

    def fwd(a: Operand) -> Operand:
        seen = 0
        while isinstance(a, Ref) and a.name in alias and seen < 100:
            a, seen = alias[a.name], seen + 1
        return a

    body = tuple(Stmt(s.target, s.op, tuple(fwd(a) for a in s.args), s.pos) for s in program.body
                 if s.target not in alias)
    return program.with_(body=body, returns=tuple(fwd(a) for a in program.returns))


def _is_square(program: Program, arg: Operand) -> bool:
    defs = {s.target: s for s in program.body}
    s = defs.get(arg.name) if isinstance(arg, Ref) else None
    if s is None:
        return False
    return s.op == "square" or (s.op == "mul" and s.args[0] == s.args[1]) or (
        s.op == "pow" and s.args[1] == Const(2.0))


def _rename_states_by_role(program: Program) -> tuple[Program, list[str]]:
    """EMA states with generic names get role names: ``m`` (of the gradient), ``v`` (of its square)."""
    defs = {s.target: s for s in program.body}
    taken = set(program.inputs) | set(program.hparam_names)
    roles: dict[str, str] = {}
    for s, r in zip(program.states, program.returns[1:]):
        stmt = defs.get(r.name) if isinstance(r, Ref) else None
        if stmt is not None and stmt.op == "interp" and stmt.args[1] == Ref(s.name) and _GENERIC_STATE.match(s.name):
            roles[s.name] = "v" if _is_square(program, stmt.args[0]) else "m"
    mapping: dict[str, str] = {}
    used = taken | {s.name for s in program.states if s.name not in roles}
    for s in program.states:
        if s.name not in roles:
            continue
        role, k = roles[s.name], 1
        name = role
        while name in used:
            k += 1
            name = f"{role}{k}"
        used.add(name)
        if name != s.name:
            mapping[s.name] = name
    if not mapping:
        return program, []
    notes = [f"state '{old}' renamed '{new}' ({'an EMA of a square' if new.startswith('v') else 'an EMA'})"
             for old, new in mapping.items()]
    return rename(program, mapping), notes


def _lift(program: Program, stmts: list[Stmt], hparams: list[HParam]) -> tuple[list[Stmt], list[HParam], list[str]]:
    """EMA coefficients and weight-decay factors (constants) become named hyperparameters."""
    taken = set(program.inputs) | set(program.state_names) | {h.name for h in hparams} \
        | {base_name(s.target) for s in stmts} | set(OPS)
    states = set(program.state_names)
    notes = []

    def fresh(stem: str, numbered: bool) -> str:
        k = 1
        name = f"{stem}1" if numbered else stem
        while name in taken:
            k += 1
            name = f"{stem}{k}"
        taken.add(name)
        return name

    out = []
    for s in stmts:
        args = list(s.args)
        if s.op == "interp" and isinstance(args[2], Const) and isinstance(args[1], Ref) and args[1].name in states:
            name = fresh("beta", True)
            hparams.append(HParam(name, args[2].value))
            args[2] = Ref(name)
            notes.append(f"the EMA coefficient {_num(s.args[2].value)} is now hyperparameter '{name}'")
        elif s.op == "mul" and Ref("w") in args and any(isinstance(a, Const) for a in args):
            k = next(i for i, a in enumerate(args) if isinstance(a, Const))
            name = fresh("weight_decay", False)
            hparams.append(HParam(name, args[k].value))
            notes.append(f"the weight-decay factor {_num(args[k].value)} is now hyperparameter '{name}'")
            args[k] = Ref(name)
        out.append(Stmt(s.target, s.op, tuple(args), s.pos))
    n = len(program.hparams)
    lifted = sorted(hparams[n:], key=lambda h: (h.name.startswith("weight_decay"), h.name))
    return out, hparams[:n] + lifted, notes


def _num(value: float) -> str:
    from ..lang.printer import format_number

    return format_number(value)


def _final_names(program: Program, nested: set[str], named: dict[str, str]) -> Program:
    body = program.body
    n = len(body)
    last_use: dict[str, int] = {}
    for i, s in enumerate(body):
        for a in s.args:
            if isinstance(a, Ref):
                last_use[a.name] = i
    for a in program.returns:
        if isinstance(a, Ref):
            last_use[a.name] = n
    state_names = set(program.state_names)
    hparams = set(program.hparam_names)
    holder: dict[str, str] = {name: name for name in set(program.inputs) | state_names | hparams}
    everything = set(holder) | {base_name(s.target) for s in body} | set(OPS) | set(INPUTS)
    mapping: dict[str, str] = {}
    temps = 0
    for i, s in enumerate(body):
        x = s.target
        if x in nested:
            mapping[x] = f"_t{temps}"
            temps += 1
            continue
        want = named.get(x) or base_name(x)
        if is_temp(want):
            mapping[x] = f"_t{temps}"
            temps += 1
            continue

        def free(name: str) -> bool:
            if name in hparams or (name in state_names and named.get(x) != name):
                return False
            if name in INPUTS and name not in program.inputs:
                return False
            h = holder.get(name)
            return h is None or last_use.get(h, -1) <= i

        name, k = want, 0
        while not free(name):
            k += 1
            name = f"{want}_{k}"
            while name in everything and name not in holder:
                k += 1
                name = f"{want}_{k}"
        holder[name] = x
        mapping[x] = name
    return rename(program, mapping)


def _drop_unused(program: Program) -> tuple[Program, list[str]]:
    out = drop_unused(program)
    notes = [f"input '{i}' is no longer used" for i in program.inputs if i not in out.inputs]
    notes += [f"hyperparameter '{h.name}' is no longer used" for h in program.hparams if h not in out.hparams]
    return out, notes


def readable(ssa: Program) -> Program:
    """A valid, plainly named program for a single-assignment one (for evaluators and printing)."""
    return pretty_or_plain(ssa, False)[0]


def pretty_or_plain(ssa: Program, lift_constants: bool) -> tuple[Program, list[str]]:
    """`pretty`'s form, proved equivalent to `ssa` (`discover.analysis.verify`); else plainer ones:
    without lifted constants, then SSA names made legal (always correct)."""
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
