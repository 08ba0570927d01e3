"""CLI subcommands, one module each; `discover.cli` registers every module found here.

`ListAction` is the one way a command takes a list, so every list option reads the same:
``--tasks a b``, ``--tasks a,b`` and ``--tasks a,b c`` all give ``['a', 'b', 'c']``.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--tasks", nargs="+", action=ListAction)
    >>> _ = p.add_argument("--factors", nargs="+", action=ListAction, item=float)
    >>> p.parse_args(["--tasks", "mlp,charlm", "logistic", "--factors", "1,3", "10"])
    Namespace(tasks=['mlp', 'charlm', 'logistic'], factors=[1.0, 3.0, 10.0])
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence


def split_list(values: str | Sequence[str], item: Callable[[str], Any] = str) -> list:
    """Items of a comma- and/or space-separated list, converted by `item` (empty items dropped)."""
    if isinstance(values, str):
        values = [values]
    return [item(t.strip()) for v in values for t in v.split(",") if t.strip()]


class ListAction(argparse.Action):
    """Store a list from values separated by commas, spaces or both (use with ``nargs="+"``).

    ``item`` converts each entry (``float`` for numbers); a bad entry is a usage error naming it.
    ``--meta-tasks ''`` gives an empty list.
    """

    def __init__(self, option_strings: list[str], dest: str, item: Callable[[str], Any] = str, **kwargs: Any) -> None:
        self.item = item
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, split_list(values, self.item))
        except ValueError:
            kind = "numbers" if self.item is float else "values"
            raise argparse.ArgumentError(self, f"expected {kind} separated by commas or spaces, got "
                                               f"{' '.join(values) if not isinstance(values, str) else values!r}") from None


class WeightsAction(argparse.Action):
    """Store ``{"name": weight}`` from ``NAME=W`` entries separated by commas, spaces or both
    (use with ``nargs="+"``); a malformed entry is a usage error naming it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        out: dict[str, float] = {}
        for entry in split_list(values, str):
            name, sep, weight = entry.partition("=")
            try:
                if not sep or not name:
                    raise ValueError
                out[name.strip()] = float(weight)
            except ValueError:
                raise argparse.ArgumentError(self, f"expected NAME=WEIGHT entries such as ema=1, got {entry!r}") from None
        setattr(namespace, self.dest, out)
