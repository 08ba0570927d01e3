"""Short text for statements and values, for reports and diffs (not a program printer).

`expr_text` renders a value as a formula, expanding temporaries into their
definitions; `statement_lines` gives one flat line per statement (what
``discover diff`` compares). SSA names (``m#3``) print as their base name.

Example:
    >>> from discover import parse
    >>> p = parse("def f(w, g, *, lr=0.1):\\n    return -(lr * g)\\n")
    >>> expr_text(p, p.returns[0])
    '-(lr * g)'
"""
from __future__ import annotations

from ..lang.ir import Const, Operand, Program, Ref, Stmt, is_temp
from ..lang.printer import format_op, format_operand



def _name(name: str) -> str:
    return name.split("#", 1)[0]


def _number(value: float) -> str:
    return format_operand(Const(value))[0]


def expr_text(program: Program, arg: Operand, *, expand: "set[str] | None" = None, depth: int = 12) -> str:
    """`arg` as a formula; temporaries (and the names in `expand`) are replaced by their definitions."""
    defs = {s.target: s for s in program.body}
    return _expr(arg, defs, expand or set(), depth)[0]


def stmt_text(program: Program, stmt: Stmt, *, expand: "set[str] | None" = None) -> str:
    """``target = formula`` for one statement (its temporary arguments, and names in `expand`, expanded)."""
    defs = {s.target: s for s in program.body}
    rhs = _op_text(stmt, defs, expand or set(), 12)[0]
    return rhs if is_temp(stmt.target) else f"{_name(stmt.target)} = {rhs}"


def _expr(arg: Operand, defs: dict[str, Stmt], expand: "set[str] | None", depth: int) -> tuple[str, int]:
    if isinstance(arg, Const):
        return format_operand(arg)
    stmt = defs.get(arg.name)
    if stmt is not None and expand is not None and (is_temp(arg.name) or arg.name in expand) and depth > 0:
        return _op_text(stmt, defs, expand, depth - 1)
    return format_operand(arg, _name(arg.name))


def _op_text(stmt: Stmt, defs: dict[str, Stmt], expand: "set[str] | None", depth: int) -> tuple[str, int]:
    return format_op(stmt.op, [_expr(a, defs, expand, depth) for a in stmt.args])


def statement_lines(program: Program, *, header: bool = False) -> list[str]:
    """One line per statement, ``target = op(args)`` without nesting; then the return line.

    With `header`, the first line lists inputs, states (with their start values)
    and hyperparameters (with defaults).
    """
    lines = []
    if header:
        states = ", ".join(f"{_name(s.name)}{': scalar' if s.scalar else ''}="
                           f"{_number(s.init.value) if isinstance(s.init, Const) else s.init.name}"
                           for s in program.states)
        hps = ", ".join(f"{h.name}={_number(h.default)}" for h in program.hparams)
        lines.append(f"inputs {', '.join(program.inputs)}; state {states or '-'}; hyperparameters {hps or '-'}")
    for stmt in program.body:
        lines.append(f"{_name(stmt.target)} = {_op_text(stmt, {}, None, 0)[0]}")
    lines.append("return " + ", ".join(_expr(a, {}, None, 0)[0] for a in program.returns))
    return lines


def describe_value(program: Program, name: str) -> str:
    """How a value reads in messages: a user name as itself, a temporary as its formula."""
    return expr_text(program, Ref(name))
