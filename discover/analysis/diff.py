"""Statement-level diff of two programs after canonical renaming.

Example:
    >>> from discover import parse
    >>> a = parse("def f(w, g, m=0, *, lr=0.1):\\n    m = interp(g, m, 0.9)\\n    return lr * m, m\\n")
    >>> b = parse("def f(w, g, buf=0, *, lr=0.1):\\n    buf = interp(g, buf, 0.9)\\n    return lr * buf, buf\\n")
    >>> print(diff(a, b).splitlines()[-1])
    same updates on probe inputs: yes
"""
from __future__ import annotations

import difflib

from ..lang.ir import Program
from .canonical import canonical
from .fingerprint import equivalent
from .render import statement_lines


def diff(a: Program, b: Program, names: tuple[str, str] = ("a", "b")) -> str:
    """A unified diff of the canonical statement lines of `a` and `b`, then a behaviour verdict."""
    la = statement_lines(canonical(a), header=True)
    lb = statement_lines(canonical(b), header=True)
    body = list(difflib.unified_diff(la, lb, fromfile=names[0], tofile=names[1], lineterm="", n=2))
    lines = body if body else [f"no differences after canonical renaming ({len(la) - 2} statements)"]
    try:
        same = equivalent(a, b)
        lines.append(f"same updates on probe inputs: {'yes' if same else 'no'}")
    except Exception as exc:  # e.g. a wrapper against a plain program
        lines.append(f"same updates on probe inputs: cannot tell ({exc})")
    return "\n".join(lines)
