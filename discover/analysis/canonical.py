"""Canonical renaming, for ``discover diff`` and structural hashing.

Analysis passes work on the *single-assignment* (SSA) form of `discover.lang.passes`
(``m#3``; those passes are importable from here too); `discover.analysis.pretty` turns
SSA names back into readable names.

Canonical renaming (for ``discover diff`` and structural hashing) names
states ``s0, s1, ...``, locals ``x0, x1, ...`` and temporaries ``_t0, ...`` in
order of first definition or use, so two programs that differ only in the
names they chose print the same.

Example:
    >>> from discover import parse
    >>> a = parse("def f(w, g, m=0, *, lr=0.1):\\n    m = interp(g, m, 0.9)\\n    return lr * m, m\\n")
    >>> b = parse("def f(w, g, buf=0, *, lr=0.1):\\n    buf = interp(g, buf, 0.9)\\n    return lr * buf, buf\\n")
    >>> structural_hash(a) == structural_hash(b)
    True
"""
from __future__ import annotations

import hashlib
from collections import Counter

from ..lang.ir import Program, Ref, is_temp
from ..lang.passes import (base_name, definitions, dependencies, initial_names, op_count, rename, to_ssa,
                           use_counts)

__all__ = ["base_name", "canonical", "definitions", "dependencies", "initial_names", "op_count", "rename",
           "structural_hash", "to_ssa", "use_counts"]


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
