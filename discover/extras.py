"""The distribution's install name and the optional extras (matplotlib, Ray, TensorBoard).

The import name is ``discover``, but ``discover`` on PyPI is an unrelated
package, so this project is distributed as ``discover-optimizers``: every
install line names `DISTRIBUTION`. `need` imports an optional dependency or
raises a `ValueError` whose message says how to install it.

Example:
    >>> install_line("plot")
    "pip install 'discover-optimizers[plot]'"
    >>> need("json", "plot", "this").__name__
    'json'
"""
from __future__ import annotations

import importlib
from types import ModuleType

DISTRIBUTION = "discover-optimizers"
"""The name to `pip install` (the import name stays `discover`)."""

VERSION = "0.1.0"
"""The distribution's version (``discover.__version__``; pyproject.toml says the same)."""

EXTRAS = {"plot": "matplotlib", "ray": "ray", "tensorboard": "tensorboard", "gpu": "triton"}
"""Each optional extra and the package it brings."""


def install_line(extra: str) -> str:
    """The pip command that installs `extra` (one of `EXTRAS`)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}: choose {', '.join(EXTRAS)}")
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def need(module: str, extra: str, what: str) -> ModuleType:
    """Import `module` (an optional dependency), or raise `ValueError` saying `what` needs it and how to
    install it: the package itself, or this project's `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = EXTRAS.get(extra, module)
        raise ValueError(f"{what} needs {package}: pip install {package} (or {install_line(extra)})") from None
