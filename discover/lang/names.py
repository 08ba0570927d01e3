"""Which names a program may use: the one rule, checked wherever a `Program` is built.

A program's names reach generated Python and C++ source, ``param_groups`` keys and
``.opt`` files, so every name must be a plain identifier: what the parser accepts
from program text is what a checkpoint, an event line, `compose` or a hand-built
`Program` may hold. `check` (which the parser, the JSON loader, `compose`, search's
mutations and every compiler call) runs `check_names` first.

* the program's name, states, hyperparameters and assigned variables: a Python
  identifier (``str.isidentifier``) in NFKC form (how Python itself reads
  identifiers, so two different names never become one in generated code), not a
  keyword; states, hyperparameters and variables must not start with ``_``
  (reserved for parser-made temporaries and for generated code's own names) nor be
  an op's name; assigned variables may carry an SSA version (``m#3``) that analysis
  passes add and remove;
* hyperparameters must not be a key that torch or its schedulers keep in param
  groups (`RESERVED_HPARAMS`), or ``ProgramOptimizer`` could not hold them;
* the doc is free text (generators write it only as an escaped literal or comment).

Example:
    >>> name_problem("beta1", "hyperparameter") is None
    True
    >>> print(name_problem("x'); import os #", "program name"))
    program name "x'); import os #" is not an identifier (letters, digits and _, not starting with a digit)
    >>> name_problem("params", "hyperparameter")
    "hyperparameter 'params' is a key torch keeps in every param group"
"""
from __future__ import annotations

import keyword
import unicodedata
from functools import lru_cache

from .errors import ProgramError
from .ir import Program
from .ops import OPS

RESERVED_HPARAMS = frozenset({
    "params", "name", "initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum",
    "differentiable", "foreach", "fused", "capturable", "maximize"})
"""Keys torch itself or its LR schedulers put into param groups: not hyperparameter names."""

MAX_NAME_CHARS = 200


def name_problem(name: object, kind: str, temp_ok: bool = False) -> str | None:
    """Why `name` cannot be the `kind` ("program name", "state", "hyperparameter",
    "variable") of a program, or None if it can. ``temp_ok`` allows what only the IR's own
    passes write for assigned variables: ``_`` names (temporaries) and an SSA version
    suffix ``#k`` (``m#3``, from `discover.analysis.canonical.to_ssa`)."""
    if not isinstance(name, str):
        return f"{kind} {name!r} is not a string"
    if temp_ok:
        base, sep, version = name.partition("#")
        if sep and version.isdecimal() and version.isascii():
            return _str_problem(base, kind, temp_ok)
    return _str_problem(name, kind, temp_ok)


@lru_cache(maxsize=4096)  # search checks the same few names over and over
def _str_problem(name: str, kind: str, temp_ok: bool) -> str | None:
    if len(name) > MAX_NAME_CHARS:
        return f"{kind} {name[:40]!r}... is {len(name)} characters long; the limit is {MAX_NAME_CHARS}"
    if not name.isidentifier():
        return f"{kind} {name!r} is not an identifier (letters, digits and _, not starting with a digit)"
    if unicodedata.normalize("NFKC", name) != name:
        return (f"{kind} {name!r} is not in NFKC form (Python reads it as "
                f"{unicodedata.normalize('NFKC', name)!r})")
    if keyword.iskeyword(name):
        return f"{kind} {name!r} is a Python keyword"
    if kind == "program name":
        return None
    if name.startswith("_") and not temp_ok:
        return f"{kind} '{name}': names starting with '_' are reserved"
    if name in OPS:
        return f"{kind} '{name}' is the name of an op"
    if kind == "hyperparameter" and name in RESERVED_HPARAMS:
        return f"{kind} '{name}' is a key torch keeps in every param group"
    return None


def check_names(program: Program, filename: str = "<program>") -> None:
    """Raise `ProgramError` for the first name of `program` that breaks the rules above
    (and for a doc that is not a string). Positions come from statements when known.

    Example:
        >>> from discover import load
        >>> check_names(load("adam"))
        >>> try:
        ...     check_names(load("adam").with_(name="a b"))
        ... except ProgramError as exc:
        ...     print(exc.message)
        program name 'a b' is not an identifier (letters, digits and _, not starting with a digit)
    """

    def fail(problem: str, pos: tuple[int, int] | None = None) -> ProgramError:
        line, col = pos if pos else (None, None)
        return ProgramError(problem, filename=filename, line=line, col=col,
                            hint="names are identifiers such as m, beta1 or my_optimizer")

    problem = name_problem(program.name, "program name")
    if problem:
        raise fail(problem)
    if not isinstance(program.doc, str):
        raise fail(f"the program's doc must be text, not {type(program.doc).__name__}")
    for s in program.states:
        problem = name_problem(s.name, "state")
        if problem:
            raise fail(problem)
    for h in program.hparams:
        problem = name_problem(h.name, "hyperparameter")
        if problem:
            raise fail(problem)
    for stmt in program.body + (program.eval.body if program.eval is not None else ()):
        problem = name_problem(stmt.target, "variable", True)
        if problem:
            raise fail(problem, stmt.pos)
