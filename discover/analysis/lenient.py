"""A lenient loader for raw evolved programs: re-assigned hyperparameters become locals.

Raw programs from the Lion paper's search write ``lr = lr * 0.0002``, but the
language makes hyperparameters read-only and the parser rejects that. Only
``discover simplify`` accepts it, through this loader: each assignment to a
hyperparameter becomes an assignment to a fresh local (``lr_1 = lr * 0.0002``)
and later reads use that local, which is exactly what the raw program meant.
The text is only parsed (with Python's `ast`) and re-written as text; the
ordinary parser then checks the result. Nothing in the text is ever run.

Example:
    >>> text = "def f(w, g, *, lr=1.0):\\n    lr = lr * 0.5\\n    return lr * g\\n"
    >>> program, notes = parse_lenient(text)
    >>> [s.target for s in program.body], notes[0].split(":")[0]
    (['lr_1', '_t0'], "hyperparameter 'lr' is assigned on line 2")
"""
from __future__ import annotations

import ast
from pathlib import Path

from ..lang.errors import ProgramError
from ..lang.ir import Program
from ..lang.parse import parse, read_program_file


def load_lenient(spec: "str | Path | Program") -> tuple[Program, list[str]]:
    """Like `discover.load`, but a ``.opt`` file may re-assign hyperparameters (see the module docstring).

    Returns the program and notes for the user about what was re-read.
    """
    from ..library import load

    if isinstance(spec, Program):
        return spec, []
    path = Path(spec)
    if not (path.suffix == ".opt" or path.exists()) or not path.exists():
        return load(spec), []  # built-ins, compositions, and a clear error for missing files
    return parse_lenient(read_program_file(path), filename=str(path))


def parse_lenient(text: "str | bytes", filename: str = "<program>") -> tuple[Program, list[str]]:
    """Parse `text`, reading assignments to hyperparameters as fresh locals; returns (program, notes)."""
    try:
        return parse(text, filename=filename), []
    except ProgramError as exc:
        if "hyperparameter" not in exc.message or "read-only" not in exc.message:
            raise
        original = exc
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")  # parse() accepted the encoding, or it would have failed first
    fixed, notes = _rename_hparam_assignments(text)
    if fixed is None:
        raise original
    try:
        return parse(fixed, filename=filename), notes
    except ProgramError:
        raise original from None


class _Renamer(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if isinstance(node.ctx, ast.Load) and node.id in self.mapping:
            return ast.copy_location(ast.Name(id=self.mapping[node.id], ctx=ast.Load()), node)
        return node


def _rename_hparam_assignments(text: str) -> tuple[str | None, list[str]]:
    try:
        module = ast.parse(text)
    except SyntaxError:
        return None, []
    funcs = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    if len(funcs) != 1:
        return None, []
    fn = funcs[0]
    hparams = {a.arg for a in fn.args.kwonlyargs}
    taken = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {a.arg for a in ast.walk(fn) if isinstance(a, ast.arg)}
    current: dict[str, str] = {}
    counters: dict[str, int] = {}
    notes: list[str] = []
    replacements: dict[int, ast.stmt] = {}
    for index, stmt in enumerate(fn.body):
        target = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            target = stmt.targets[0].id
            value = stmt.value
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
            target = stmt.target.id
            value = ast.BinOp(left=ast.Name(id=target, ctx=ast.Load()), op=stmt.op, right=stmt.value)
        reads = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        needs_rename = bool(reads & set(current))
        if target is not None and target in hparams:
            new_value = _Renamer(current).visit(value)
            counters[target] = counters.get(target, 0) + 1
            fresh = f"{target}_{counters[target]}"
            while fresh in taken:
                counters[target] += 1
                fresh = f"{target}_{counters[target]}"
            taken.add(fresh)
            current[target] = fresh
            new = ast.Assign(targets=[ast.Name(id=fresh, ctx=ast.Store())], value=new_value)
            ast.copy_location(new, stmt)
            replacements[index] = new
            notes.append(f"hyperparameter '{target}' is assigned on line {stmt.lineno}: hyperparameters are "
                         f"read-only, so this reads as a new local `{ast.unparse(new)}` and later reads of "
                         f"'{target}' use '{fresh}' (the first '{target}' is the value the optimizer is given)")
        elif needs_rename:
            replacements[index] = _Renamer(current).visit(stmt)
    if not replacements:
        return None, []
    lines = text.splitlines()
    spans = [(s.lineno, s.end_lineno) for s in fn.body]
    shared_line = any(a[1] >= b[0] for a, b in zip(spans, spans[1:]))
    if shared_line:  # statements share lines: rebuild the whole function (line numbers may move)
        for index, new in replacements.items():
            fn.body[index] = new
        return ast.unparse(module) + "\n", notes
    for index in sorted(replacements, reverse=True):
        stmt = fn.body[index]
        first, last = stmt.lineno, stmt.end_lineno
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        new_lines = [indent + ast.unparse(replacements[index])] + [""] * (last - first)
        lines[first - 1:last] = new_lines
    return "\n".join(lines) + "\n", notes
