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
from .shapes import FULL, STATE_SHAPES, Shape, fits, label

_INPUT_TYPES = {"w": Type.TENSOR, "g": Type.TENSOR, "u": Type.TENSOR, "step": Type.PER_TENSOR}


def initial_types(program: Program) -> dict[str, Type]:
    """Types of the names a program starts with: inputs, state and hyperparameters."""
    types = {name: _INPUT_TYPES[name] for name in program.inputs}
    for s in program.states:
        types[s.name] = Type.PER_TENSOR if s.scalar else Type.TENSOR
    for h in program.hparams:
        types[h.name] = Type.SCALAR
    return types


def state_shape(state) -> Shape | None:
    """The symbolic shape of a state (None for scalar state)."""
    return None if state.scalar else STATE_SHAPES.get(state.shape, FULL)


def initial_shapes(program: Program) -> dict[str, Shape | None]:
    """Symbolic shapes (`discover.lang.shapes`) of the names a program starts with (None: a number)."""
    shapes: dict[str, Shape | None] = {name: (None if name == "step" else FULL) for name in program.inputs}
    for s in program.states:
        shapes[s.name] = state_shape(s)
    for h in program.hparams:
        shapes[h.name] = None
    return shapes


def check(program: Program, filename: str = "<program>") -> dict[str, Type]:
    """Check `program`; return the final type of every name, or raise `ProgramError`."""
    return _check(program, filename)[0]


def shapes_of(program: Program, filename: str = "<program>") -> dict[str, Shape | None]:
    """Check `program`; return the final symbolic shape of every name (None for numbers).

    Example:
        >>> from discover import parse
        >>> shapes_of(parse("def f(w, g, *, lr=0.1):\\n    r = row_mean(g)\\n    return lr * g / r\\n"))["r"]
        ('R', '1')
    """
    return _check(program, filename)[1]


def _check(program: Program, filename: str) -> tuple[dict[str, Type], dict[str, Shape | None]]:

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
    for s in program.states:
        if s.shape and s.shape not in STATE_SHAPES:
            raise fail(f"state '{s.name}' has unknown shape '{s.shape}'",
                       hint=f"a tensor state is shaped like w, or {' or '.join(STATE_SHAPES)}")
        if s.shape and s.scalar:
            raise fail(f"state '{s.name}' cannot be both scalar and {s.shape}")
        if s.shape and isinstance(s.init, Ref) and s.init.name == "w":
            raise fail(f"{s.shape} state '{s.name}' cannot start as a copy of w (a tensor shaped like w)",
                       hint="start it from a number or a hyperparameter")
    hparams = set(program.hparam_names)
    shapes = initial_shapes(program)

    def shape_of(arg: Operand) -> Shape | None:
        return None if isinstance(arg, Const) else shapes[arg.name]

    def type_of(arg: Operand, stmt: Stmt | None) -> Type:
        if isinstance(arg, Const):
            return Type.SCALAR
        if arg.name not in types:
            raise fail(f"unknown name '{arg.name}'", stmt,
                       hint="a name must be an input, a state, a hyperparameter or assigned before use")
        return types[arg.name]

    def statements(body: tuple[Stmt, ...]) -> None:
        for stmt in body:
            statement(stmt)

    def statement(stmt: Stmt) -> None:
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
            hint = (f"write the options of {op.name} as numbers or hyperparameters" if op.options
                    else "group_sum and group_norm take a tensor such as g, or a per-tensor value such as norm(g)"
                    if op.kind == "group" else f"{op.name} takes a tensor such as g or m" if op.staged
                    else "reductions (norm, rms, mean) take a tensor such as g or m")
            raise fail(str(exc), stmt, hint=hint) from None
        try:
            shapes[stmt.target] = op.result_shape([shape_of(a) for a in stmt.args])
        except TypeError as exc:
            raise fail(str(exc), stmt) from None

    if program.eval is not None:  # checked first, with only w, the states and hyperparameters defined
        main_types, main_shapes = dict(types), dict(shapes)
        for name in ("g", "step", "u"):
            types.pop(name, None)
        types.setdefault("w", Type.TENSOR)
        shapes.setdefault("w", FULL)
        statements(program.eval.body)
        result = program.eval.result
        if isinstance(result, Ref) and result.name not in types:
            raise fail(f"eval() returns unknown name '{result.name}'")
        got = shape_of(result)
        if got is not None and not fits(got, FULL):
            raise fail(f"eval() returns a {label(got)}, but the weights it gives must be shaped like w")
        types, shapes = main_types, main_shapes
    statements(program.body)

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
    update = shape_of(program.returns[0])
    if update is not None and not fits(update, FULL):
        raise fail(f"the update is a {label(update)}, but it must be shaped like w (or broadcast to it)",
                   hint="turn it back with transpose or matmul, or combine it with a tensor shaped like w")
    for state, arg in zip(program.states, program.returns[1:]):
        if state.scalar and type_of(arg, None) == Type.TENSOR:
            raise fail(f"scalar state '{state.name}' is given a tensor value",
                       hint=f"reduce it first (e.g. mean(...)), or declare `{state.name}=0` as tensor state")
        want, got = state_shape(state), shape_of(arg)
        if want is not None and got is not None and not fits(got, want):
            raise fail(f"state '{state.name}' is a {label(want)}, but it is given a {label(got)}",
                       hint=(f"declare it `{state.name}: {next(k for k, v in STATE_SHAPES.items() if v == got)} = 0`"
                             if got in STATE_SHAPES.values() else "reduce it with row_mean or col_mean first"))
    return types, shapes


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
