"""The intermediate representation: a program as three-address statements.

A `Program` is plain immutable data: its inputs (a subset of ``w``, ``g``,
``step``, ``u``), its state declarations, its hyperparameters with defaults, a
body of `Stmt` (one op each, ``target = op(args...)``), and what it returns
(the update first, then the new value of every state in declaration order).

Variables may be re-assigned (``m = interp(g, m, beta1)`` reads the old ``m``
and binds the new one); statements run in order. Names that start with ``_``
are temporaries the parser made while flattening nested expressions; users
cannot write them, and the printer nests them back into expressions.

Example:
    >>> from discover import parse
    >>> p = parse("def sgd(w, g, *, lr=0.1):\\n    return lr * g\\n")
    >>> p.body
    (Stmt(target='_t0', op='mul', args=(Ref(name='lr'), Ref(name='g'))),)
    >>> p.returns
    (Ref(name='_t0'),)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Union

INPUTS = ("w", "g", "step", "u")
"""Reserved input names: the parameter, its gradient, the 1-based step, the wrapped update."""


@dataclass(frozen=True)
class Const:
    """A numeric literal."""

    value: float


@dataclass(frozen=True)
class Ref:
    """A reference to a variable, input, state or hyperparameter by name."""

    name: str


Operand = Union[Const, Ref]


@dataclass(frozen=True)
class Stmt:
    """``target = op(*args)``; `pos` (line, col) is kept for messages, not compared."""

    target: str
    op: str
    args: tuple[Operand, ...]
    pos: tuple[int, int] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class State:
    """A state buffer: `init` is ``Const(x)`` (filled with x), ``Ref('w')`` (a copy of
    the parameter) or ``Ref(hyperparameter)``. `scalar` state holds one number per
    parameter tensor instead of a tensor. `shape` is ``""`` for a tensor shaped like the
    parameter, or ``"per_row"`` / ``"per_col"`` (`discover.lang.shapes.STATE_SHAPES`) for one
    value per row or per column (Adafactor's factored moments)."""

    name: str
    init: Operand = Const(0.0)
    scalar: bool = False
    shape: str = ""

    @property
    def kind(self) -> str:
        """How the state is declared: ``"scalar"``, ``"tensor"``, ``"per_row"`` or ``"per_col"``."""
        return "scalar" if self.scalar else (self.shape or "tensor")


@dataclass(frozen=True)
class HParam:
    """A hyperparameter and its default value."""

    name: str
    default: float


@dataclass(frozen=True)
class EvalWeights:
    """The weights ``optimizer.eval()`` puts in place of the parameter (``optimizer.train()`` puts
    the training weights back), as schedule-free methods evaluate at an average of their iterates:
    `result`, computed by its own statements `body` from ``w``, the state (as it is after the last
    step) and the hyperparameters. Written in program text as a second function ``def eval(w, z, *, beta1):``."""

    body: tuple[Stmt, ...]
    result: Operand

    def refs(self) -> Iterator[str]:
        """Every name its statements and result read."""
        for s in self.body:
            for a in s.args:
                if isinstance(a, Ref):
                    yield a.name
        if isinstance(self.result, Ref):
            yield self.result.name

    def reads(self) -> list[str]:
        """The names it reads before assigning them (w, states, hyperparameters), in order."""
        assigned: set[str] = set()
        out: list[str] = []

        def read(arg: Operand) -> None:
            if isinstance(arg, Ref) and arg.name not in assigned and arg.name not in out:
                out.append(arg.name)

        for s in self.body:
            for a in s.args:
                read(a)
            assigned.add(s.target)
        read(self.result)
        return out


@dataclass(frozen=True)
class Program:
    """An optimizer update program. See the module docstring."""

    name: str
    inputs: tuple[str, ...]
    states: tuple[State, ...]
    hparams: tuple[HParam, ...]
    body: tuple[Stmt, ...]
    returns: tuple[Operand, ...]
    doc: str = field(default="", compare=False)
    eval: EvalWeights | None = None  # evaluation weights (schedule-free), see `EvalWeights`

    @property
    def update(self) -> Operand:
        """The operand holding the update (the engine applies ``w <- w - update``)."""
        return self.returns[0]

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def hparam_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hparams)

    @property
    def defaults(self) -> dict[str, float]:
        """Hyperparameter defaults by name."""
        return {h.name: h.default for h in self.hparams}

    @property
    def is_wrapper(self) -> bool:
        """True for programs (like Lookahead) that wrap another program's update ``u``."""
        return "u" in self.inputs

    def with_(self, **changes) -> "Program":
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def refs(self) -> Iterator[str]:
        """Every name read by the body or the returns."""
        for s in self.body:
            for a in s.args:
                if isinstance(a, Ref):
                    yield a.name
        for a in self.returns:
            if isinstance(a, Ref):
                yield a.name


def is_temp(name: str) -> bool:
    """Temporaries are parser-made names; users cannot write names starting with ``_``."""
    return name.startswith("_")
