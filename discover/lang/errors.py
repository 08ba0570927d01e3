"""`ProgramError`: what is wrong with a program text, where, and what to write instead."""
from __future__ import annotations


class ProgramError(ValueError):
    """A program that cannot be parsed or checked.

    The message reads like a compiler's: ``file:line:col: error: what is wrong``
    followed by what is allowed instead.

    Example:
        >>> from discover import parse
        >>> try:
        ...     parse("def f(w, g):\\n    return import_me(g)\\n", filename="f.opt")
        ... except ProgramError as e:
        ...     print(e.line, e.col)
        2 12
    """

    def __init__(self, message: str, *, filename: str = "<program>", line: int | None = None,
                 col: int | None = None, hint: str | None = None) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.col = col
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        text = f"{where}: error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def located(self, filename: str) -> "ProgramError":
        """The same error, naming `filename`."""
        return ProgramError(self.message, filename=filename, line=self.line, col=self.col, hint=self.hint)
