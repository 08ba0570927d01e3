"""Type checking of IR programs (from the parser, from mutation, from composition).

`check` verifies that names follow the naming rules (`names.py`), every name is
defined before it is read, every op exists and gets its number of arguments,
hyperparameters are never assigned, state is returned, and types fit (reductions
take tensors; scalar state stays scalar). It returns the type of every variable after the program runs.

Example:
    >>> from discover import parse
    >>> p = parse("def f(w, g, *, lr=0.1):\\n    n = norm(g)\\n    return lr * g / n\\n")
    >>> check(p)["n"].label
    'per-tensor scalar'
"""
from __future__ import annotations

from .errors import ProgramError
from .ir import INPUTS, Const, Operand, Program, Ref, Stmt
from .names import check_names
from .ops import OPS, Type

_INPUT_TYPES = {"w": Type.TENSOR, "g": Type.TENSOR, "u": Type.TENSOR, "step": Type.PER_TENSOR}


def initial_types(program: Program) -> dict[str, Type]:
    """Types of the names a program starts with: inputs, state and hyperparameters."""
    types = {name: _INPUT_TYPES[name] for name in program.inputs}
    for s in program.states:
        types[s.name] = Type.PER_TENSOR if s.scalar else Type.TENSOR
    for h in program.hparams:
        types[h.name] = Type.SCALAR
    return types


def check(program: Program, filename: str = "<program>") -> dict[str, Type]:
    """Check `program`; return the final type of every name, or raise `ProgramError`."""

    def fail(message: str, stmt: Stmt | None = None, hint: str | None = None) -> ProgramError:
        line, col = stmt.pos if stmt is not None and stmt.pos else (None, None)
        return ProgramError(message, filename=filename, line=line, col=col, hint=hint)

    check_names(program, filename)  # names reach generated code: the one rule, before anything else
    for name in program.inputs:
        if name not in INPUTS:
            raise fail(f"unknown input '{name}'", hint=f"inputs are {', '.join(INPUTS)}")
    names = list(program.inputs) + list(program.state_names) + list(program.hparam_names)
    if len(set(names)) != len(names):
        raise fail("an input, state or hyperparameter name is declared twice")
    types = initial_types(program)
    for s in program.states:
        if isinstance(s.init, Ref) and s.init.name != "w" and s.init.name not in program.hparam_names:
            raise fail(f"state '{s.name}' starts from unknown '{s.init.name}'")
        if s.scalar and isinstance(s.init, Ref) and s.init.name == "w":
            raise fail(f"scalar state '{s.name}' cannot start as a copy of w, a tensor",
                       hint="start it from a number or a hyperparameter, or make it tensor state")
    hparams = set(program.hparam_names)

    def type_of(arg: Operand, stmt: Stmt | None) -> Type:
        if isinstance(arg, Const):
            return Type.SCALAR
        if arg.name not in types:
            raise fail(f"unknown name '{arg.name}'", stmt,
                       hint="a name must be an input, a state, a hyperparameter or assigned before use")
        return types[arg.name]

    for stmt in program.body:
        op = OPS.get(stmt.op)
        if op is None:
            raise fail(f"unknown op '{stmt.op}'", stmt)
        if len(stmt.args) != op.arity:
            raise fail(f"{stmt.op}() takes {op.arity} arguments, got {len(stmt.args)}", stmt)
        if stmt.target in hparams:
            raise fail(f"hyperparameter '{stmt.target}' is read-only", stmt)
        if stmt.target in INPUTS and stmt.target not in types:
            raise fail(f"'{stmt.target}' is a reserved input name", stmt)
        arg_types = [type_of(a, stmt) for a in stmt.args]
        try:
            types[stmt.target] = op.result_type(arg_types)
        except TypeError as exc:
            raise fail(str(exc), stmt, hint="reductions (norm, rms, mean) take a tensor such as g or m") from None

    expected = 1 + len(program.states)
    if len(program.returns) != expected:
        names = ", ".join(program.state_names)
        raise fail(
            f"the program returns {len(program.returns)} value{'s' if len(program.returns) != 1 else ''}, "
            f"but must return {expected}: the update" + (f", then each state in order ({names})" if names else ""),
            hint=_missing_star_hint(program, expected - len(program.returns))
            or f"end with `return update{', ' + names if names else ''}`")
    for arg in program.returns:
        type_of(arg, None)
    for state, arg in zip(program.states, program.returns[1:]):
        if state.scalar and type_of(arg, None) == Type.TENSOR:
            raise fail(f"scalar state '{state.name}' is given a tensor value",
                       hint=f"reduce it first (e.g. mean(...)), or declare `{state.name}=0` as tensor state")
    return types


def _missing_star_hint(program: Program, missing: int) -> str | None:
    """When the states the return is short of are the last ones declared and none is ever assigned,
    they are most likely hyperparameters written without the `*` before them: say so."""
    if missing <= 0 or missing > len(program.states):
        return None
    tail = program.states[len(program.states) - missing:]
    assigned = {stmt.target for stmt in program.body}
    if any(s.name in assigned or not isinstance(s.init, Const) or s.scalar for s in tail):
        return None
    kept = program.states[: len(program.states) - missing]
    params = list(program.inputs) + [f"{s.name}={_number(s.init.value)}" if isinstance(s.init, Const)
                                      else f"{s.name}={s.init.name}" for s in kept]
    hps = [f"{s.name}={_number(s.init.value)}" for s in tail] + [f"{h.name}={_number(h.default)}" for h in program.hparams]
    names = " and ".join(s.name for s in tail) if len(tail) <= 2 else ", ".join(s.name for s in tail)
    return (f"{names} {'is' if len(tail) == 1 else 'are'} never assigned: if {'it is a hyperparameter' if len(tail) == 1 else 'they are hyperparameters'}, "
            f"put a bare `*` before {'it' if len(tail) == 1 else 'them'}: def {program.name}({', '.join(params + ['*'] + hps)})")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
