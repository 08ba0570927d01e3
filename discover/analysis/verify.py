"""Proof that a rewrite keeps a program's behaviour: it type-checks and makes the same updates.

`verify(before, after)` is what every simplification step and every readable rewrite of a
program is held to: the type checker, then `discover.analysis.fingerprint.equivalent` (the
updates on probe inputs over several steps) and the values of the states both keep.

Example:
    >>> from discover import parse
    >>> a = parse("def f(w, g, *, lr=0.1):\\n    return lr * g * 1\\n")
    >>> b = parse("def f(w, g, *, lr=0.1):\\n    return lr * g\\n")
    >>> verify(a, b) is None, verify(a, parse("def f(w, g, *, lr=0.1):\\n    return lr * sign(g)\\n"))
    (True, 'changes the updates on probe inputs')
"""
from __future__ import annotations

import torch

from ..lang.check import check
from ..lang.errors import ProgramError
from ..lang.ir import Const, Operand, Program
from ..lang.ops import Type
from ..lang.passes import base_name
from .fingerprint import equivalent, probe_states


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
