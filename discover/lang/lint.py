"""Warnings for programs that are valid but probably not what their author meant.

`check` rejects programs that cannot run; `lint` flags ones that run and silently do
something else:

- **a state returned in another state's place**: states are returned in declaration
  order, so ``return u, v, m`` for ``m=0, v=0`` stores the new ``v`` in ``m``;
- **a state never updated**: it is returned as it came in, so it keeps its initial value (except
  a copy of the starting parameter that the program reads, as Prodigy's ``w0``: constant on purpose);
- **no ``lr``**: learning-rate schedulers (StepLR, OneCycleLR, ...) read and write the
  param-group entry ``lr`` and fail with ``KeyError: 'lr'`` without it.

Example:
    >>> from discover import parse
    >>> p = parse("def f(w, g, m=0, v=0, *, lr=0.1):\\n"
    ...           "    m = interp(g, m, 0.9)\\n    v = interp(g * g, v, 0.99)\\n"
    ...           "    return lr * m / sqrt(v), v, m\\n")
    >>> for line in lint(p, filename="f.opt"): print(line)
    f.opt: warning: state 'm' is given 'v' (states are returned in declaration order: return update, m, v)
    f.opt: warning: state 'v' is given 'm' (states are returned in declaration order: return update, m, v)
"""
from __future__ import annotations

import re

from .ir import Program, Ref


def _suggests(name: str, state: str) -> bool:
    """Whether a variable called `name` reads as a value of `state` (``m``, ``m_new``, ``m2``)."""
    return name == state or re.fullmatch(rf"{re.escape(state)}(_\w*|\d+)", name) is not None


def _return_line(text: str | None) -> str:
    """``:line:col`` of the last ``return`` in the program text, or ``""``."""
    if not text:
        return ""
    for number, line in reversed(list(enumerate(text.splitlines(), 1))):
        if line.lstrip().startswith("return"):
            return f":{number}:{len(line) - len(line.lstrip()) + 1}"
    return ""


def lint(program: Program, text: str | None = None, filename: str = "<program>") -> list[str]:
    """Warnings (``file[:line:col]: warning: ...``) for `program`; `text` (its source) locates them."""
    out: list[str] = []
    at = filename + _return_line(text)
    states = list(program.state_names)
    order = f"return update{''.join(', ' + s for s in states)}"
    assigned = {stmt.target for stmt in program.body}
    read = {a.name for stmt in program.body for a in stmt.args if isinstance(a, Ref)}

    def snapshot(state: str) -> bool:
        # a copy of the starting parameter that statements read (Prodigy's w0): constant on purpose
        init = next(s.init for s in program.states if s.name == state)
        return isinstance(init, Ref) and init.name == "w" and state in read

    for state, value in zip(states, program.returns[1:]):
        if not isinstance(value, Ref):
            continue
        others = [s for s in states if s != state]
        exact = value.name if value.name in others else None
        suggested = next((s for s in others if _suggests(value.name, s)), None)
        if exact or (suggested and not _suggests(value.name, state)):
            out.append(f"{at}: warning: state '{state}' is given '{value.name}' "
                       f"(states are returned in declaration order: {order})")
        elif value.name == state and state not in assigned and not snapshot(state):
            out.append(f"{at}: warning: state '{state}' is returned as it came in, so it never changes "
                       f"from its initial value (assign it a new value, or drop it)")
    if "lr" not in program.hparam_names and not program.is_wrapper:
        out.append(f"{filename}: warning: no hyperparameter `lr`: learning-rate schedulers (StepLR, OneCycleLR, "
                   "...) need one and fail with KeyError: 'lr'; declare `*, lr=...` and scale the update by it")
    return out
