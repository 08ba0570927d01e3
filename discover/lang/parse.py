"""Program text -> IR, through Python's own `ast` module.

The text is only ever *parsed*: nothing in it is imported, evaluated or run.
Every construct outside the language gets a `ProgramError` naming the file,
line and column, what is wrong and what to write instead.

Example:
    >>> p = parse('''
    ... def momentum(w, g, buf=0, *, lr=0.01, momentum=0.9):
    ...     buf = momentum * buf + g
    ...     return lr * buf, buf
    ... ''')
    >>> p.state_names, p.hparam_names
    (('buf',), ('lr', 'momentum'))
"""
from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

from .check import check
from .errors import ProgramError
from .ir import INPUTS, Const, EvalWeights, HParam, Operand, Program, Ref, State, Stmt
from .names import name_problem
from .ops import CALLABLE_OPS, OPS
from .shapes import STATE_SHAPES

MAX_SOURCE_CHARS = 100_000
MAX_SOURCE_BYTES = 4 * MAX_SOURCE_CHARS  # UTF-8 takes at most 4 bytes a character
MAX_DEPTH = 100
MAX_STATEMENTS = 2_000

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow", ast.Mod: "mod"}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_SYMBOLS = {ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
            ast.LShift: "<<", ast.RShift: ">>", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
            ast.NotIn: "not in", ast.Not: "not", ast.Invert: "~"}

_STATEMENT_HINT = "a program body is assignments `name = expression` followed by one `return update, state...`"

_REFUSED_STATEMENTS: dict[type, str] = {
    ast.Import: "imports are not allowed: programs cannot use modules, only the language's ops",
    ast.ImportFrom: "imports are not allowed: programs cannot use modules, only the language's ops",
    ast.For: "loops are not allowed: a program is straight-line code run once per step",
    ast.AsyncFor: "loops are not allowed: a program is straight-line code run once per step",
    ast.While: "loops are not allowed: a program is straight-line code run once per step",
    ast.If: "`if` statements are not allowed: use where(condition, a, b) to choose values",
    ast.Global: "`global` is not allowed: state is declared as a parameter with a default, e.g. `m=0`",
    ast.Nonlocal: "`nonlocal` is not allowed: state is declared as a parameter with a default, e.g. `m=0`",
    ast.FunctionDef: "nested functions are not allowed: a program is one function",
    ast.AsyncFunctionDef: "nested functions are not allowed: a program is one function",
    ast.ClassDef: "classes are not allowed: a program is one function",
    ast.With: "`with` is not allowed",
    ast.Try: "`try` is not allowed: ops never raise; NaN and inf propagate",
    ast.Raise: "`raise` is not allowed",
    ast.Assert: "`assert` is not allowed",
    ast.Delete: "`del` is not allowed",
    ast.Pass: "`pass` is not allowed",
    ast.Expr: "an expression on its own does nothing: assign it, `name = expression`",
    ast.AnnAssign: "annotated assignments are not allowed: write `name = expression`",
}

_REFUSED_EXPRESSIONS: dict[type, str] = {
    ast.Attribute: "attribute access (`x.y`) is not allowed: ops are plain functions such as sqrt(x)",
    ast.Subscript: "indexing (`x[i]`) is not allowed: every op works on whole tensors",
    ast.Lambda: "lambdas are not allowed: a program is one function",
    ast.IfExp: "`a if c else b` is not allowed: use where(c, a, b)",
    ast.BoolOp: "`and`/`or` are not allowed: multiply comparisons (x > 0) * (y > 0), or use minimum/maximum",
    ast.Tuple: "tuples are only allowed as the value of `return`",
    ast.List: "lists are not allowed: values are tensors or numbers",
    ast.Dict: "dicts are not allowed: values are tensors or numbers",
    ast.Set: "sets are not allowed: values are tensors or numbers",
    ast.ListComp: "comprehensions are not allowed: every op works on whole tensors",
    ast.SetComp: "comprehensions are not allowed: every op works on whole tensors",
    ast.DictComp: "comprehensions are not allowed: every op works on whole tensors",
    ast.GeneratorExp: "comprehensions are not allowed: every op works on whole tensors",
    ast.JoinedStr: "strings are not allowed: values are tensors or numbers",
    ast.Starred: "`*args` is not allowed: ops take their arguments one by one",
    ast.NamedExpr: "`:=` is not allowed: write a separate assignment",
    ast.Await: "`await` is not allowed",
    ast.Yield: "`yield` is not allowed",
    ast.YieldFrom: "`yield` is not allowed",
}


def parse(text: str | bytes, filename: str = "<program>", *, name: str | None = None) -> Program:
    """Parse and type-check program text into a `Program`.

    Raises `ProgramError` (a `ValueError`) with file, line and column for any
    text outside the language; nothing in the text is ever executed.

    Example:
        >>> parse("def sgd(w, g, *, lr=0.1):\\n    return lr * g\\n").hparam_names
        ('lr',)
    """
    if name is not None and name_problem(name, "program name"):
        raise ProgramError(name_problem(name, "program name"), filename=filename,
                           hint="a program name is an identifier such as my_optimizer")
    text = _decode(text, filename)
    parser = _Parser(text, filename)
    program = parser.program(name)
    try:
        check(program, filename=filename)
    except ProgramError as exc:
        if exc.line is None and parser.return_pos is not None:
            # errors about what is returned (count, scalar state given a tensor) point at `return`
            raise ProgramError(exc.message, filename=filename, line=parser.return_pos[0],
                               col=parser.return_pos[1], hint=exc.hint) from None
        raise
    return program


def parse_file(path: str | Path) -> Program:
    """Parse a ``.opt`` file; errors name the file.

    Example:
        >>> from discover.library import programs_dir
        >>> parse_file(programs_dir() / "adam.opt").name
        'adam'
    """
    return parse(read_program_file(path), filename=str(path))


def read_program_file(path: str | Path) -> bytes:
    """The bytes of a program file: a regular file (a FIFO, a device or a directory is refused, never
    waited on or read to its end) of at most `MAX_SOURCE_BYTES` (no more than one byte past that is
    read); `ProgramError` naming the file otherwise."""
    hint = "give the path of a .opt file, or the name of a built-in (see `discover list`)"
    try:
        # O_NONBLOCK: opening a FIFO nobody writes to must not hang
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ProgramError(f"cannot read program file: {exc.strerror or exc}", filename=str(path), hint=hint) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
        raise ProgramError(f"cannot read program file: it is {kind}", filename=str(path), hint=hint)
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_SOURCE_BYTES + 1)
        except OSError as exc:
            raise ProgramError(f"cannot read program file: {exc.strerror or exc}", filename=str(path), hint=hint) from None
    if len(data) > MAX_SOURCE_BYTES:
        raise ProgramError(f"the file is over {MAX_SOURCE_BYTES} bytes; a program is at most {MAX_SOURCE_CHARS} "
                           "characters", filename=str(path))
    return data


def _line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of `offset` in `text` (columns count bytes for bytes)."""
    newline = b"\n" if isinstance(text, bytes) else "\n"
    return text.count(newline, 0, offset) + 1, offset - (text.rfind(newline, 0, offset) + 1) + 1


def _decode(text: str | bytes, filename: str) -> str:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text)
        if b"\x00" in text:
            line, col = _line_col(text, text.index(b"\x00"))
            raise ProgramError("this is binary data, not program text (a NUL byte)", filename=filename,
                               line=line, col=col, hint="a program is a UTF-8 text file with one `def`")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line, col = _line_col(text, exc.start)
            raise ProgramError(f"the file is not UTF-8 text (bad byte at offset {exc.start})", filename=filename,
                               line=line, col=col, hint="save the program as UTF-8 text") from None
    if not isinstance(text, str):
        raise ProgramError(f"program text must be str or bytes, not {type(text).__name__}", filename=filename)
    text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark, as some editors write (Python accepts it too)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a str holding a lone surrogate (e.g. from surrogateescape)
        line, col = _line_col(text, exc.start)
        raise ProgramError(f"the text holds a character that is not valid Unicode ({ascii(text[exc.start])})",
                           filename=filename, line=line, col=col, hint="save the program as UTF-8 text") from None
    if "\x00" in text:
        line, col = _line_col(text, text.index("\x00"))
        raise ProgramError("this is binary data, not program text (a NUL character)", filename=filename,
                           line=line, col=col, hint="a program is a UTF-8 text file with one `def`")
    if not text.strip():
        raise ProgramError("the program is empty", filename=filename, line=1, col=1,
                           hint="write one function: def name(w, g, *, lr=0.1): return lr * g")
    if len(text) > MAX_SOURCE_CHARS:
        raise ProgramError(f"the program is {len(text)} characters long; the limit is {MAX_SOURCE_CHARS}", filename=filename)
    return text


def _header_comments(text: str) -> str:
    """The comment block above the `def`, which built-in programs use as their description."""
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("def "):
            break
        if stripped.startswith("#"):
            lines.append(stripped.lstrip("#").strip())
    return "\n".join(lines).strip()


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.text = text
        self.filename = filename
        self.body: list[Stmt] = []
        self.defined: set[str] = set()
        self.hparams: set[str] = set()
        self.temps = 0
        self.return_pos: tuple[int, int] | None = None

    # ------------------------------------------------------------------ helpers
    def error(self, node: ast.AST | None, message: str, hint: str | None = None) -> ProgramError:
        line = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        return ProgramError(message, filename=self.filename, line=line,
                            col=None if col is None else col + 1, hint=hint)

    def _pos(self, node: ast.AST) -> tuple[int, int]:
        return (node.lineno, node.col_offset + 1)

    def _check_name(self, node: ast.AST, name: str, what: str) -> None:
        problem = name_problem(name, what)  # the rule every Program is held to (names.py), with a position
        if problem:
            raise self.error(node, problem, hint="choose a name that starts with a letter and is not an op, "
                                                 "a keyword or a param-group key")

    # ------------------------------------------------------------------ module
    def program(self, name: str | None) -> Program:
        try:
            module = ast.parse(self.text, filename=self.filename, mode="exec")
        except SyntaxError as exc:
            raise ProgramError(f"invalid syntax: {exc.msg}", filename=self.filename, line=exc.lineno,
                               col=exc.offset or None, hint="programs are written in a subset of Python syntax") from None
        except (RecursionError, MemoryError):
            line, col = _too_deep_position(self.text)
            raise ProgramError("the program is nested too deeply to parse", filename=self.filename, line=line, col=col,
                               hint=f"split deep expressions into several assignments (at most {MAX_DEPTH} levels)") from None
        except ValueError as exc:  # e.g. source with null bytes on some Pythons
            raise ProgramError(f"cannot parse the program: {exc}", filename=self.filename) from None
        funcs = [n for n in module.body if isinstance(n, ast.FunctionDef)]
        for node in module.body:
            if not isinstance(node, ast.FunctionDef):
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    continue  # a module docstring is harmless
                message = _REFUSED_STATEMENTS.get(type(node), "only one `def` is allowed at the top level")
                raise self.error(node, message, hint="a program file holds exactly one function definition")
        if not funcs:
            raise ProgramError("no function definition found", filename=self.filename, line=1, col=1,
                               hint="write one function: def name(w, g, *, lr=0.1): return lr * g")
        if len(funcs) > 2 or (len(funcs) == 2 and funcs[1].name != "eval"):
            extra = funcs[1] if funcs[1].name != "eval" else funcs[2]
            raise self.error(extra, "a program holds exactly one function (and, after it, optionally "
                                    "`def eval(...)` giving its evaluation weights); found another `def`",
                             hint="put each program in its own file")
        try:
            program = self.function(funcs[0], name)
            if len(funcs) == 2:
                program = program.with_(eval=_Parser(self.text, self.filename).eval_function(funcs[1], program))
            return program
        except RecursionError:
            line, col = _too_deep_position(self.text)
            raise ProgramError("the program is nested too deeply", filename=self.filename, line=line, col=col,
                               hint=f"split deep expressions into several assignments (at most {MAX_DEPTH} levels)") from None

    # ------------------------------------------------------------------ signature
    def function(self, fn: ast.FunctionDef, name: str | None) -> Program:
        if fn.decorator_list:
            raise self.error(fn.decorator_list[0], "decorators are not allowed")
        args = fn.args
        if args.posonlyargs:
            raise self.error(args.posonlyargs[0], "positional-only parameters (`/`) are not allowed")
        if args.vararg:
            raise self.error(args.vararg, "`*args` is not allowed",
                             hint="put a bare `*` before the hyperparameters: def f(w, g, *, lr=0.1)")
        if args.kwarg:
            raise self.error(args.kwarg, "`**kwargs` is not allowed: list each hyperparameter with its default")

        seen: set[str] = set()
        in_order: set[str] = set()
        for node in args.args + args.kwonlyargs:  # report a repeated name where it repeats
            if node.arg in in_order:
                raise self.error(node, f"parameter '{node.arg}' is declared twice")
            in_order.add(node.arg)

        def declare(node: ast.arg) -> None:
            if node.arg in seen:
                raise self.error(node, f"parameter '{node.arg}' is declared twice")
            seen.add(node.arg)

        hparams: list[HParam] = []
        for node, default in zip(args.kwonlyargs, args.kw_defaults):
            declare(node)
            self._check_name(node, node.arg, "hyperparameter")
            if node.arg in INPUTS:
                raise self.error(node, f"'{node.arg}' is a reserved input and cannot be a hyperparameter",
                                 hint=f"inputs ({', '.join(INPUTS)}) go before the `*`")
            if node.annotation is not None:
                raise self.error(node.annotation, "hyperparameters take no annotation")
            if default is None:
                raise self.error(node, f"hyperparameter '{node.arg}' needs a default value",
                                 hint=f"write {node.arg}=0.1")
            hparams.append(HParam(node.arg, self.number(default, f"the default of '{node.arg}'")))
        self.hparams = {h.name for h in hparams}

        inputs: list[str] = []
        states: list[State] = []
        n_plain = len(args.args) - len(args.defaults)
        for i, node in enumerate(args.args):
            declare(node)
            if i < n_plain:
                if node.arg not in INPUTS:
                    raise self.error(node, f"unknown input '{node.arg}'",
                                     hint=f"inputs are {', '.join(INPUTS)}; state needs a default "
                                          f"({node.arg}=0), hyperparameters go after `*`")
                if node.annotation is not None:
                    raise self.error(node.annotation, "inputs take no annotation")
                inputs.append(node.arg)
            else:
                states.append(self.state(node, args.defaults[i - n_plain]))
        if "g" not in inputs and "u" not in inputs:
            raise self.error(fn, "the program takes neither the gradient `g` nor a wrapped update `u`",
                             hint="declare the inputs it uses: def name(w, g, step, ...)")
        self.defined = set(inputs) | {s.name for s in states} | self.hparams
        returns = self.statements(fn)
        if len(self.body) > MAX_STATEMENTS:
            raise self.error(fn, f"the program has {len(self.body)} statements; the limit is {MAX_STATEMENTS}")
        doc = ast.get_docstring(fn) or _header_comments(self.text)
        return Program(name=name or fn.name, inputs=tuple(inputs), states=tuple(states),
                       hparams=tuple(hparams), body=tuple(self.body), returns=returns, doc=doc)

    def eval_function(self, fn: ast.FunctionDef, main: Program) -> EvalWeights:
        """``def eval(w, z, *, beta1): return ...``: the weights ``optimizer.eval()`` puts in the
        parameter, from w, the program's states (positional) and its hyperparameters (after `*`)."""
        if fn.decorator_list:
            raise self.error(fn.decorator_list[0], "decorators are not allowed")
        args = fn.args
        hint = f"def eval(w, <states of {main.name}>, *, <its hyperparameters>): return <the weights to evaluate at>"
        if args.posonlyargs or args.vararg or args.kwarg:
            raise self.error(fn, "eval() takes w and states, then `*` and hyperparameters", hint=hint)
        if args.defaults or any(d is not None for d in args.kw_defaults):
            node = (args.defaults or [d for d in args.kw_defaults if d is not None])[0]
            raise self.error(node, "eval()'s parameters take no defaults: they are the program's own", hint=hint)
        for node in args.args:
            if node.arg != "w" and node.arg not in main.state_names:
                raise self.error(node, f"eval() reads w and the states of {main.name} ({', '.join(main.state_names)}); "
                                       f"'{node.arg}' is neither", hint=hint)
        for node in args.kwonlyargs:
            if node.arg not in main.hparam_names:
                raise self.error(node, f"'{node.arg}' is not a hyperparameter of {main.name}", hint=hint)
        for node in args.args + args.kwonlyargs:
            if node.annotation is not None:
                raise self.error(node.annotation, "eval()'s parameters take no annotation", hint=hint)
        self.hparams = {node.arg for node in args.kwonlyargs}
        self.defined = {node.arg for node in args.args} | self.hparams
        returns = self.statements(fn)
        if len(returns) != 1:
            raise self.error(fn, f"eval() returns one value, the weights to evaluate at, not {len(returns)}", hint=hint)
        return EvalWeights(tuple(self.body), returns[0])

    def number(self, node: ast.AST, what: str) -> float:
        sign = 1.0
        node = _strip_plus(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sign = -1.0
            node = _strip_plus(node.operand)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            try:
                return sign * float(node.value)
            except OverflowError:  # an int literal with over 308 digits
                raise self.error(node, f"{what} is too large for a float (the largest is about 1.8e308)",
                                 hint="write it in floating point, e.g. 1e300") from None
        raise self.error(node, f"{what} must be a number")

    def state(self, node: ast.arg, default: ast.AST) -> State:
        self._check_name(node, node.arg, "state")
        if node.arg in INPUTS:
            raise self.error(node, f"input '{node.arg}' cannot have a default", hint="inputs are given by the engine")
        scalar = False
        shape = ""
        if node.annotation is not None:
            kind = node.annotation.id if isinstance(node.annotation, ast.Name) else None
            if kind not in ("scalar", "tensor", *STATE_SHAPES):
                raise self.error(node.annotation, "a state annotation must be `scalar`, `tensor`, `per_row` or `per_col`",
                                 hint=f"`{node.arg}: scalar = 1` keeps one number per parameter tensor, "
                                      f"`{node.arg}: per_row = 0` one number per row")
            scalar = kind == "scalar"
            shape = kind if kind in STATE_SHAPES else ""
            if shape and isinstance(default, ast.Name) and default.id == "w":
                raise self.error(default, f"{shape} state '{node.arg}' cannot start as a copy of w, a tensor shaped like w",
                                 hint=f"start it from a number or a hyperparameter ({node.arg}: {shape} = 0)")
        if isinstance(default, ast.Name):
            if default.id == "w" and scalar:
                raise self.error(default, f"scalar state '{node.arg}' cannot start as a copy of w, a tensor",
                                 hint=f"start it from a number or a hyperparameter ({node.arg}: scalar = 0), "
                                      f"or make it tensor state ({node.arg}=w)")
            if default.id == "w" or default.id in self.hparams:
                return State(node.arg, Ref(default.id), scalar, shape)
            raise self.error(default, f"state '{node.arg}' starts from '{default.id}', which is neither `w` nor a hyperparameter",
                             hint="a state starts from a number (0 for zeros), `w` (a copy of the parameter) or a hyperparameter")
        return State(node.arg, Const(self.number(default, f"the initial value of state '{node.arg}'")), scalar, shape)

    # ------------------------------------------------------------------ body
    def statements(self, fn: ast.FunctionDef) -> tuple[Operand, ...]:
        body = list(fn.body)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # docstring
        for i, node in enumerate(body):
            if isinstance(node, ast.Return):
                if i != len(body) - 1:
                    raise self.error(body[i + 1], "code after `return` never runs", hint="`return` must be the last statement")
                return self.returns(node)
            if isinstance(node, ast.Assign):
                if len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
                    raise self.error(node, "assign to one plain name at a time: `name = expression`")
                self.assign(node.targets[0], node.value, node)
            elif isinstance(node, ast.AugAssign):
                if not isinstance(node.target, ast.Name):
                    raise self.error(node, "assign to a plain name: `name += expression`")
                op = _BINOPS.get(type(node.op))
                if op is None:
                    raise self.error(node, f"`{_SYMBOLS.get(type(node.op), '?')}=` is not an op of the language",
                                     hint="use +=, -=, *=, /=, **= or %=")
                target = node.target
                self._check_target(target)
                args = (self.operand(ast.Name(id=target.id, ctx=ast.Load(), lineno=target.lineno,
                                              col_offset=target.col_offset)), self.operand(node.value))
                self.emit(target.id, op, args, node)
            else:
                raise self.error(node, _REFUSED_STATEMENTS.get(type(node), f"`{type(node).__name__}` statements are not allowed"),
                                 hint=_STATEMENT_HINT)
        raise self.error(fn, f"function '{fn.name}' has no `return`",
                         hint="end with `return update, state...` (the update first, then every state in order)")

    def _check_target(self, target: ast.Name) -> None:
        self._check_name(target, target.id, "variable")
        if target.id in self.hparams:
            raise self.error(target, f"hyperparameter '{target.id}' is read-only",
                             hint=f"assign to a new name, e.g. `{target.id}_t = ...`")

    def assign(self, target: ast.Name, value: ast.AST, node: ast.AST) -> None:
        self._check_target(target)
        op, args = self.expression(value, depth=0)
        self.emit(target.id, op, args, node)

    def returns(self, node: ast.Return) -> tuple[Operand, ...]:
        self.return_pos = self._pos(node)
        if node.value is None:
            raise self.error(node, "`return` needs a value: the update, then every state in order")
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        return tuple(self.operand(v) for v in values)

    def emit(self, target: str, op: str, args: tuple[Operand, ...], node: ast.AST) -> None:
        self.body.append(Stmt(target, op, args, self._pos(node)))
        self.defined.add(target)
        if len(self.body) > MAX_STATEMENTS:
            raise self.error(node, f"the program is too long: more than {MAX_STATEMENTS} operations",
                             hint="optimizer programs are short; split or simplify it")

    # ------------------------------------------------------------------ expressions
    def operand(self, node: ast.AST, depth: int = 0) -> Operand:
        """Flatten `node`; a compound expression becomes a temporary."""
        node = _strip_plus(node)  # `+x` is x: no `copy` temporary (the printer could not give it back)
        if _is_leaf(node):
            return self.leaf(node)
        op, args = self.expression(node, depth)
        temp = f"_t{self.temps}"
        self.temps += 1
        self.emit(temp, op, args, node)
        return Ref(temp)

    def leaf(self, node: ast.AST) -> Operand:
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                raise self.error(node, f"'{node.id}': names starting with '_' are reserved")
            if node.id not in self.defined:
                if node.id in OPS:
                    raise self.error(node, f"'{node.id}' is an op; call it: {node.id}(...)")
                if node.id in INPUTS:
                    raise self.error(node, f"input '{node.id}' is not declared",
                                     hint=f"add it to the parameters: def name(w, g, {node.id}, ...)")
                raise self.error(node, f"unknown name '{node.id}'",
                                 hint="a name must be an input, a state, a hyperparameter or assigned before use")
            return Ref(node.id)
        return Const(self.number(node, "a literal"))

    def expression(self, node: ast.AST, depth: int) -> tuple[str, tuple[Operand, ...]]:
        """(op, operands) of `node`, flattening its sub-expressions into temporaries."""
        if depth > MAX_DEPTH:
            raise self.error(node, f"expression nested more than {MAX_DEPTH} levels deep",
                             hint="split it into several assignments")
        d = depth + 1
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            kind = "strings are" if isinstance(node.value, (str, bytes)) else f"`{node.value!r}` is"
            raise self.error(node, f"{kind} not allowed: values are tensors or numbers")
        if _is_leaf(node):
            return "copy", (self.leaf(node),)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise self.error(node, f"`{_SYMBOLS.get(type(node.op), '?')}` is not an op of the language",
                                 hint="arithmetic is + - * / ** %")
            return op, (self.operand(node.left, d), self.operand(node.right, d))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return "neg", (self.operand(node.operand, d),)
            if isinstance(node.op, ast.UAdd):
                return self.expression(node.operand, d)
            raise self.error(node, f"`{_SYMBOLS.get(type(node.op), '?')}` is not an op of the language",
                             hint="for a condition use a comparison, e.g. where(x > 0, a, b)")
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise self.error(node, "chained comparisons are not allowed",
                                 hint="compare two values at a time: (a < b) * (b < c)")
            op = _CMPOPS.get(type(node.ops[0]))
            if op is None:
                raise self.error(node, f"`{_SYMBOLS.get(type(node.ops[0]), '?')}` is not a comparison of the language",
                                 hint="comparisons are < <= > >= == !=")
            return op, (self.operand(node.left, d), self.operand(node.comparators[0], d))
        if isinstance(node, ast.Call):
            return self.call(node, d)
        message = _REFUSED_EXPRESSIONS.get(type(node), f"`{type(node).__name__}` expressions are not allowed")
        raise self.error(node, message)

    def call(self, node: ast.Call, depth: int) -> tuple[str, tuple[Operand, ...]]:
        if not isinstance(node.func, ast.Name):
            message = _REFUSED_EXPRESSIONS.get(type(node.func), "only ops can be called, by name")
            raise self.error(node.func, message)
        name = node.func.id
        if name not in CALLABLE_OPS:
            hint = "ops are: " + ", ".join(CALLABLE_OPS)
            if name in OPS:
                hint = f"write it with its operator ({OPS[name].infix or OPS[name].prefix})"
            raise self.error(node.func, f"unknown op '{name}'", hint=hint)
        if node.keywords:
            raise self.error(node.keywords[0], f"{name}() takes positional arguments only",
                             hint=f"{name}({', '.join('x' for _ in range(OPS[name].arity))}) — {OPS[name].doc}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(node, "`*args` is not allowed: ops take their arguments one by one")
        op = OPS[name]
        if not op.tensor_arity <= len(node.args) <= op.arity:
            if op.options:
                count = f"{op.tensor_arity} to {op.arity} arguments"
                hint = (f"{name}({', '.join(['x'] * op.tensor_arity + [n + '=' + _num(d) for n, d in op.options])}): "
                        f"{op.doc}; options left out take these defaults")
            else:
                count = f"{op.arity} argument{'s' if op.arity != 1 else ''}"
                hint = f"{name}: {op.doc}"
            raise self.error(node, f"{name}() takes {count}, got {len(node.args)}", hint=hint)
        args = tuple(self.operand(a, depth) for a in node.args)
        # options left out take their defaults: the IR always holds every argument
        return name, args + tuple(Const(d) for _, d in op.options[len(args) - op.tensor_arity:])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _too_deep_position(text: str) -> tuple[int, int]:
    """Where an expression too deep for Python's own parser first nests more than `MAX_DEPTH` levels.

    Found with the tokenizer, which does not recurse: the first operator of a logical line
    after `MAX_DEPTH` others (a chain like ``g + g + ...`` or ``- - - g`` nests one level per
    operator), else the start of the longest logical line.
    """
    import io
    import tokenize

    count, longest, best = 0, -1, (1, 1)
    line_start: tuple[int, int] | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                count, line_start = 0, None
                continue
            if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            if line_start is None:
                line_start = tok.start
            if tok.type == tokenize.OP and tok.string not in ("(", ")", "[", "]", "{", "}", ",", ":", "=", ";"):
                count += 1
                if count > MAX_DEPTH:
                    return tok.start[0], tok.start[1] + 1
                if count > longest:
                    longest, best = count, (line_start[0], line_start[1] + 1)
    except (tokenize.TokenError, SyntaxError, RecursionError, MemoryError):
        pass
    return best


def _strip_plus(node: ast.AST) -> ast.AST:
    """`node` without leading unary `+` (``+x`` is x), iteratively (no recursion on deep texts)."""
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        node = node.operand
    return node


def _is_negative_literal(node: ast.AST) -> bool:
    if not (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)):
        return False
    operand = _strip_plus(node.operand)  # `-(+2)` is the literal -2, as the printer writes it
    return isinstance(operand, ast.Constant) and type(operand.value) in (int, float)


def _is_leaf(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) or _is_negative_literal(node) or (
        isinstance(node, ast.Constant) and type(node.value) in (int, float))
