"""Program plumbing for analysis: single-assignment form, use counts, canonical renaming.

Analysis passes work on *single-assignment* (SSA) form: every statement gets
a target name of its own (``m#3``: the base name, ``#``, a counter), so a
name means one value everywhere and passes need not track re-assignment. The
``#`` cannot appear in program text, so SSA names never clash with user
names; `discover.analysis.pretty` turns them back into readable names.

Canonical renaming (for ``discover diff`` and structural hashing) names
states ``s0, s1, ...``, locals ``x0, x1, ...`` and temporaries ``_t0, ...`` in
order of first definition or use, so two programs that differ only in the
names they chose print the same.

Example:
    >>> from discover import parse
    >>> p = to_ssa(parse("def f(w, g, m=0, *, lr=0.1):\\n    m = interp(g, m, 0.9)\\n    return lr * m, m\\n"))
    >>> [s.target for s in p.body], p.returns
    (['m#0', '_t0#1'], (Ref(name='_t0#1'), Ref(name='m#0')))
"""
from __future__ import annotations

import hashlib
from collections import Counter

from ..lang.ir import Const, Operand, Program, Ref, State, Stmt, is_temp


def base_name(name: str) -> str:
    """The user-facing part of an SSA name (``m#3`` -> ``m``)."""
    return name.split("#", 1)[0]


def initial_names(program: Program) -> set[str]:
    """Names bound before the body runs: inputs, states and hyperparameters."""
    return set(program.inputs) | set(program.state_names) | set(program.hparam_names)


def to_ssa(program: Program) -> Program:
    """The same program with one name per assigned value (see the module docstring)."""
    current: dict[str, str] = {}
    body = []
    for i, stmt in enumerate(program.body):
        args = tuple(_ren(a, current) for a in stmt.args)
        name = f"{base_name(stmt.target)}#{i}"
        current[stmt.target] = name
        body.append(Stmt(name, stmt.op, args, stmt.pos))
    returns = tuple(_ren(a, current) for a in program.returns)
    return program.with_(body=tuple(body), returns=returns)


def _ren(arg: Operand, mapping: dict[str, str]) -> Operand:
    if isinstance(arg, Ref) and arg.name in mapping:
        return Ref(mapping[arg.name])
    return arg


def rename(program: Program, mapping: dict[str, str]) -> Program:
    """Rename names everywhere (targets, reads, returns, state declarations); for SSA programs."""
    body = tuple(Stmt(mapping.get(s.target, s.target), s.op, tuple(_ren(a, mapping) for a in s.args), s.pos)
                 for s in program.body)
    states = tuple(State(mapping.get(s.name, s.name), _ren(s.init, mapping), s.scalar) for s in program.states)
    returns = tuple(_ren(a, mapping) for a in program.returns)
    return program.with_(body=body, states=states, returns=returns)


def use_counts(program: Program) -> Counter:
    """How often each name is read (by statements and returns)."""
    return Counter(program.refs())


def definitions(program: Program) -> dict[str, int]:
    """Statement index of each (SSA) target."""
    return {s.target: i for i, s in enumerate(program.body)}


def dependencies(program: Program) -> list[set[str]]:
    """For each returned value, the initial names (inputs, states, hyperparameters) it depends on."""
    deps: dict[str, frozenset[str]] = {n: frozenset([n]) for n in initial_names(program)}
    for stmt in program.body:
        acc: set[str] = set()
        for a in stmt.args:
            if isinstance(a, Ref):
                acc |= deps.get(a.name, frozenset())
        deps[stmt.target] = frozenset(acc)
    return [set(deps.get(a.name, ())) if isinstance(a, Ref) else set() for a in program.returns]


def op_count(program: Program) -> int:
    """Operations a step performs (plain copies do not count)."""
    return sum(1 for s in program.body if s.op != "copy")


# ------------------------------------------------------------------ canonical form
def canonical(program: Program) -> Program:
    """Rename states, locals and temporaries by order of first definition or use.

    Inputs and hyperparameters keep their names (they are the program's interface).
    Dead code is kept: canonical renaming changes names only.
    """
    ssa = to_ssa(program)
    mapping: dict[str, str] = {}
    counters = Counter()

    def name(old: str, kind: str) -> None:
        if old not in mapping:
            prefix = {"state": "s", "local": "x", "temp": "_t"}[kind]
            mapping[old] = f"{prefix}{counters[kind]}"
            counters[kind] += 1

    states = set(program.state_names)
    for stmt in ssa.body:
        for a in stmt.args:
            if isinstance(a, Ref) and a.name in states:
                name(a.name, "state")
        name(stmt.target, "temp" if is_temp(stmt.target) else "local")
    for a in ssa.returns:
        if isinstance(a, Ref) and a.name in states:
            name(a.name, "state")
    for s in program.states:
        name(s.name, "state")
    return rename(ssa, mapping)


def structural_hash(program: Program) -> str:
    """A short hash of the canonical statements (equal for programs that differ only in names)."""
    from .render import statement_lines

    text = "\n".join(statement_lines(canonical(program), header=True))
    return hashlib.sha1(text.encode()).hexdigest()[:16]
