"""The search's progress bar, and log lines that never garble it.

A bar redraws its line with carriage returns, so anything else written to the
terminal while it is open must go through it: `ProgressBar` writes the search's
log lines with ``tqdm.write`` (which clears the bar, prints the line, redraws the
bar), and, while open, routes Python warnings (the fused backend's "falling back to
foreach", Ray's) and `logging` records the same way. When stderr is not a terminal
(a log file, a pipe, CI) there is no bar at all, only the log lines, so a log file
holds no carriage-return debris.

Example:
    >>> import io
    >>> with ProgressBar(total=4, stream=io.StringIO()) as bar:   # not a terminal: no bar
    ...     bar.log("baselines ...")
    ...     bar.update(4, best=0.91)
    >>> bar.active
    False
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Any, Callable, TextIO


class ProgressBar:
    """A tqdm bar over evaluations (only on a terminal) with `log` for lines above it."""

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.active = bool(enabled) and _is_terminal(self.stream)
        self._bar: Any = None
        self._log = log
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ lines
    def log(self, message: str) -> None:
        """One line above the bar (or on its own when there is no bar)."""
        if self._log is not None:
            self._log(message)
        elif self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def update(self, n: int, **postfix: Any) -> None:
        """Advance by `n` evaluations and show `postfix` (``best=0.91``) next to the bar."""
        if self._bar is None:
            return
        if n:
            self._bar.update(n)
        if postfix:
            self._bar.set_postfix(**{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in postfix.items()},
                                  refresh=True)

    # ------------------------------------------------------------------ open / close
    def __enter__(self) -> "ProgressBar":
        if self.active:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="eval", dynamic_ncols=True, file=self.stream)
            self._stack.enter_context(_warnings_through(self.log))
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._stack.enter_context(logging_redirect_tqdm([logging.getLogger()]))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _warnings_through(write: Callable[[str], None]):
    """Show warnings as lines written by `write` (restoring Python's own display after)."""
    saved = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        # one line (where: Category: message), not the source line Python adds under it
        write(warnings.formatwarning(message, category, filename, lineno, line).splitlines()[0])

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved
