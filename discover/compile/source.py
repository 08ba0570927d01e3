"""Safe pieces of generated source: how a user string may appear in generated Python or C++.

Names are validated where a `Program` is built (`discover.lang.names`), but the code
generators do not rely on it: they write user strings (program names, docs, variable
names, statement descriptions) only through these functions, so even a `Program` that
skipped validation cannot put code into the generated source.

* `identifier`: the name itself if it is a plain ASCII identifier, else a fallback;
* `comment`: text for the rest of a ``#`` or ``//`` line: printable ASCII without
  backslashes is kept as it is; anything else is written as Python's ``ascii()`` of it
  (quoted, escaped, one line, never ending in a backslash, which would continue a C++
  ``//`` comment onto the next line);
* `py_str`: a Python string literal (``repr``).

Example:
    >>> comment("m = interp(g, m, 0.9)")
    'm = interp(g, m, 0.9)'
    >>> print(comment("x'\\nimport os  \\\\"))
    "x'\\nimport os  \\\\"
    >>> identifier("beta1", "v3"), identifier("a b", "v3")
    ('beta1', 'v3')
"""
from __future__ import annotations

import keyword
import re

_PLAIN = re.compile(r"[ -\[\]-~]*")  # printable ASCII without the backslash
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier(name: str, fallback: str) -> str:
    """`name` if it is an ASCII identifier and not a keyword, else `fallback` (which the caller
    makes unique and safe)."""
    if isinstance(name, str) and _IDENT.fullmatch(name) and not keyword.iskeyword(name):
        return name
    return fallback


def comment(text: str) -> str:
    """`text` made safe as the rest of a one-line Python ``#`` or C++ ``//`` comment."""
    text = str(text)
    if _PLAIN.fullmatch(text) and "??" not in text:  # "??/" would be a trigraph backslash in old C++
        return text
    return ascii(text)


def py_str(text: str) -> str:
    """A Python string literal holding `text` exactly."""
    return repr(str(text))
