"""Built-in programs by name, program files by path, and compositions ("lookahead+adam", `discover.lang.compose`).

Example:
    >>> from discover import load
    >>> load("lookahead+adam").hparam_names
    ('lr', 'beta1', 'beta2', 'eps', 'weight_decay', 'k', 'alpha')
    >>> [name for name in builtin_names() if load(name).is_wrapper]
    ['cautious', 'lookahead']
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from .lang.compose import compose
from .lang.errors import ProgramError
from .lang.ir import Program
from .lang.parse import parse
from .lang.passes import renumber_temps  # noqa: F401  (kept importable from here)

__all__ = ["builtin_names", "compose", "load", "programs_dir", "renumber_temps"]


def programs_dir() -> Path:
    """The folder of built-in ``.opt`` files (the source tree's ``programs/`` or the installed copy)."""
    source_tree = Path(__file__).resolve().parent.parent / "programs"
    if source_tree.is_dir() and any(source_tree.glob("*.opt")):
        return source_tree
    return Path(str(resources.files("discover.programs")))


def builtin_names() -> list[str]:
    """Names of the built-in programs, sorted."""
    return sorted(p.stem for p in programs_dir().glob("*.opt"))


@lru_cache(maxsize=None)
def _builtin(name: str) -> Program:
    path = programs_dir() / f"{name}.opt"
    return parse(path.read_text(encoding="utf-8"), filename=str(path))


def load(spec: "str | Path | Program") -> Program:
    """A `Program` from a built-in name, a composition ``"wrapper+inner"``, a ``.opt`` path, or a Program.

    Example:
        >>> load("adam").state_names
        ('m', 'v')
    """
    if isinstance(spec, Program):
        return spec
    if isinstance(spec, Path):
        return _load_path(spec)
    if not isinstance(spec, str):
        raise TypeError(f"a program is a name, a path or a Program, not {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise ValueError(f"no program given ({spec!r}): give a built-in name ({', '.join(builtin_names())}), "
                         "a path to a .opt file, or a composition such as 'lookahead+adam'")
    if text in builtin_names():
        return _builtin(text)
    if "+" in text and not Path(text).exists():
        wrapper, inner = (part.strip() for part in text.split("+", 1))
        if not wrapper or not inner:
            raise ValueError(f"composition {spec!r} needs a program on each side of '+', e.g. 'lookahead+adam'")
        return compose(load(wrapper), load(inner))
    path = Path(text)
    if path.suffix == ".opt" or path.exists():
        return _load_path(path)
    raise ValueError(
        f"unknown program {spec!r}: built-ins are {', '.join(builtin_names())}; "
        "or give a path to a .opt file, or a composition such as 'lookahead+adam'")


def _load_path(path: Path) -> Program:
    if not path.exists():
        raise ProgramError("no such program file", filename=str(path),
                           hint=f"built-ins are {', '.join(builtin_names())}")
    from .lang.parse import parse_file

    return parse_file(path)
