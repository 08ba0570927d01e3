"""IR -> program text that people read: single-use temporaries nest back into formulas.

A temporary is nested into the statement that uses it only where the parser
would flatten that formula back into exactly the same statements in the same
order, so ``parse(unparse(p)) == p`` for every program the parser made, and
``unparse`` is a fixed point after one round for any IR (e.g. from mutation).

Example:
    >>> from discover import parse
    >>> p = parse("def sgd(w, g, *, lr=0.1, weight_decay=0.0):\\n    return lr * (g + weight_decay * w)\\n")
    >>> print(unparse(p))
    def sgd(w, g, *, lr=0.1, weight_decay=0):
        return lr * (g + weight_decay * w)
    <BLANKLINE>
"""
from __future__ import annotations


import math
import re
from collections import Counter

from .ir import Const, Operand, Program, Ref, Stmt, is_temp
from .ops import OPS

_ATOM = 20
_UNARY = 13
_POW = 14
_COMPARE = 6


def format_number(value: float) -> str:
    """Shortest text that parses back to exactly `value` (integers without '.0')."""
    if math.isnan(value):
        raise ValueError("NaN cannot be written as a program constant")
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if value == 0 and math.copysign(1.0, value) < 0:
        return "-0.0"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_operand(arg: Operand, name: str | None = None) -> tuple[str, int]:
    """An operand as text with its precedence: a constant (``format_number``; NaN as ``nan``, which
    only reports print) or a name (`name` in its place where given)."""
    if isinstance(arg, Const):
        text = format_number(arg.value) if arg.value == arg.value else "nan"
        return text, (_UNARY if text.startswith("-") else _ATOM)
    return (name if name is not None else arg.name), _ATOM


def format_op(op_name: str, args: list[tuple[str, int]]) -> tuple[str, int]:
    """One op applied to arguments already written (each ``(text, precedence)``), parenthesized as
    Python reads it: the shared core of every printer (program text, reports, diffs).

    Example:
        >>> format_op("mul", [("a + b", 11), ("c", 20)])
        ('(a + b) * c', 12)
    """
    op = OPS[op_name]
    if op.name == "copy":
        return args[0]
    if op.infix:
        (left, lp), (right, rp) = args
        prec = op.precedence
        if op.name == "pow":  # right-associative; unary minus binds looser on its left
            left, right = _paren(left, lp <= prec), _paren(right, rp < _UNARY)
        elif prec == _COMPARE:  # comparisons chain in Python: parenthesize both sides
            left, right = _paren(left, lp <= prec), _paren(right, rp <= prec)
        else:
            left, right = _paren(left, lp < prec), _paren(right, rp <= prec)
        return f"{left} {op.infix} {right}", prec
    if op.prefix:
        (inner, ip), = args
        return f"{op.prefix}{_paren(inner, ip < _UNARY)}", _UNARY
    return f"{op.name}({', '.join(a for a, _ in args)})", _ATOM


def unparse(program: Program, *, header: bool = True) -> str:
    """Program text for `program`, with nested formulas and its header comment (and its ``def eval``
    after it, for a program with evaluation weights).

    Example:
        >>> from discover import load
        >>> print(unparse(load("sgd"), header=False).splitlines()[0])
        def sgd(w, g, *, lr=0.001, weight_decay=0):
    """
    text = _Printer(program).text(header)
    if program.eval is None:
        return text
    reads = set(program.eval.reads())
    positional = [n for n in ("w",) + program.state_names if n in reads]
    keywords = [h for h in program.hparam_names if h in reads]
    head = f"def eval({', '.join(positional + (['*'] + keywords if keywords else []))}):"
    part = Program(name="eval", inputs=tuple(reads), states=(), hparams=(), body=program.eval.body,
                   returns=(program.eval.result,))
    body = _Printer(part).text(False).split("\n", 1)[1]  # its statements, without the signature line
    return text + "\n\n" + head + "\n" + body


class _Printer:
    def __init__(self, program: Program) -> None:
        self.p = program
        self.uses = Counter(program.refs())
        self.body = program.body
        self.consumed = [False] * len(self.body)
        self.names = self._rename_kept_temps()

    def _rename_kept_temps(self) -> dict[str, str]:
        """Temporaries that stay statements (used twice, or out of order) get readable names."""
        taken = set(self.p.inputs) | set(self.p.state_names) | set(self.p.hparam_names)
        taken |= {s.target for s in self.body if not is_temp(s.target)}
        names: dict[str, str] = {}
        counter = 0
        for s in self.body:
            if is_temp(s.target) and s.target not in names:
                while f"t{counter}" in taken:
                    counter += 1
                names[s.target] = f"t{counter}"
                taken.add(names[s.target])
        return names

    def name(self, name: str) -> str:
        return self.names.get(name, name)

    # -------------------------------------------------------------- expressions
    def operands(self, args: tuple[Operand, ...], cursor: int) -> tuple[list[tuple[str, int]], int]:
        """Render `args` right to left (mirroring the parser's left-to-right flattening)."""
        rendered: list[tuple[str, int]] = []
        for arg in reversed(args):
            if (isinstance(arg, Ref) and is_temp(arg.name) and self.uses[arg.name] == 1 and cursor >= 0
                    and self.body[cursor].target == arg.name and not self.consumed[cursor]):
                stmt = self.body[cursor]
                self.consumed[cursor] = True
                text, cursor = self.expression(stmt, cursor - 1)
                rendered.append(text)
            else:
                rendered.append(self.leaf(arg))
        rendered.reverse()
        return rendered, cursor

    def leaf(self, arg: Operand) -> tuple[str, int]:
        if isinstance(arg, Const):
            format_number(arg.value)  # NaN cannot be written as a program constant: raises
        return format_operand(arg, None if isinstance(arg, Const) else self.name(arg.name))

    def expression(self, stmt: Stmt, cursor: int) -> tuple[tuple[str, int], int]:
        args, cursor = self.operands(stmt.args, cursor)
        op = OPS[stmt.op]
        shown = len(args)
        while shown > op.tensor_arity and _is_default(stmt.args[shown - 1], op.options[shown - 1 - op.tensor_arity][1]):
            shown -= 1  # options at their defaults are left out, as the parser fills them in
        return format_op(stmt.op, args[:shown]), cursor

    # -------------------------------------------------------------- program
    def signature(self) -> str:
        parts = list(self.p.inputs)
        for s in self.p.states:
            init = format_number(s.init.value) if isinstance(s.init, Const) else s.init.name
            kind = s.kind
            parts.append(f"{s.name}={init}" if kind == "tensor" else f"{s.name}: {kind} = {init}")
        if self.p.hparams:
            parts.append("*")
            parts.extend(f"{h.name}={format_number(h.default)}" for h in self.p.hparams)
        return f"def {self.p.name}({', '.join(parts)}):"

    def text(self, header: bool) -> str:
        lines: list[str] = []
        cursor = len(self.body) - 1
        rendered, cursor = self.operands(self.p.returns, cursor)
        lines.append("return " + ", ".join(t for t, _ in rendered))
        for j in range(cursor, -1, -1):
            if self.consumed[j]:
                continue
            stmt = self.body[j]
            (expr, _), _ = self.expression(stmt, j - 1)
            lines.append(f"{self.name(stmt.target)} = {expr}")
        out = []
        if header and self.p.doc:
            out += [f"# {_comment_text(line)}".rstrip() for line in self.p.doc.splitlines()]
        out.append(self.signature())
        out += ["    " + line for line in reversed(lines)]
        return "\n".join(out) + "\n"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _comment_text(line: str) -> str:
    """A doc line as comment text that reads back: control characters (a NUL would make the file
    binary) and lone surrogates (not UTF-8) are written as escapes."""
    line = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line)
    return line.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_default(arg: Operand, default: float) -> bool:
    """Whether an option argument is its default, bit for bit (-0.0 is not 0.0)."""
    return isinstance(arg, Const) and arg.value == default and math.copysign(1, arg.value) == math.copysign(1, default)


def _paren(text: str, needed: bool) -> str:
    return f"({text})" if needed else text
