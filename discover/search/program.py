"""Program-level helpers for search: warm-start preparation and the learning rate.

* `prepare_init`: a warm-start program with an ``lr``, the inputs ``w, g, step``
  and the usual state slots (``m``, ``v``) even when it does not use them;
* `depends_on_g`, `with_lr`, `with_lr_scale`.

The passes search uses are `discover.lang.passes`' (`update_inputs`, `prune`: what
gets fingerprinted and trained) and `discover.lang.jsonform`'s (`program_to_json`,
`program_from_json`); they are importable from here too.

Example:
    >>> from discover import load
    >>> p = prepare_init(load("sgd"))
    >>> p.state_names, sorted(update_inputs(p) & {"g", "m"})
    (('m', 'v'), ['g'])
    >>> len(prune(p).states)
    0
"""
from __future__ import annotations

from typing import Sequence

from ..lang.check import check
from ..lang.ir import INPUTS, HParam, Program, Ref, State
from ..lang.jsonform import program_from_json, program_to_json
from ..lang.passes import ensure_lr, live_states, prune, update_inputs

__all__ = ["STATE_SLOTS", "depends_on_g", "live_states", "prepare_init", "program_from_json", "program_to_json",
           "prune", "update_inputs", "with_lr", "with_lr_scale"]

STATE_SLOTS = ("m", "v")
"""State slots every warm-start program gets, so evolution can start using them."""


def depends_on_g(program: Program) -> bool:
    """Whether the update depends on the gradient (directly or through state)."""
    return "g" in update_inputs(program)


def prepare_init(program: Program, slots: Sequence[str] = STATE_SLOTS) -> Program:
    """A warm-start program: an ``lr`` to tune, inputs ``w, g, step``, and state `slots` (zeros)."""
    if program.is_wrapper:
        raise ValueError(f"'{program.name}' wraps another program's update; give a full program such as "
                         f"'{program.name}+adam' to start from")
    program = ensure_lr(program)
    inputs = tuple(n for n in INPUTS if n != "u")
    taken = set(program.state_names) | set(program.hparam_names) | set(INPUTS)
    extra = tuple(State(n) for n in slots if n not in taken)
    program = program.with_(inputs=inputs, states=program.states + extra,
                            returns=program.returns + tuple(Ref(s.name) for s in extra))
    check(program)
    return program


def with_lr(program: Program, lr: float) -> Program:
    """`program` with its ``lr`` default set to `lr` (12 significant digits).

    Example:
        >>> from discover import load
        >>> with_lr(load("sgd"), 0.05).defaults["lr"]
        0.05
    """
    hp = tuple(HParam(h.name, float(f"{lr:.12g}")) if h.name == "lr" else h for h in program.hparams)
    return program.with_(hparams=hp)


def with_lr_scale(program: Program, factor: float) -> Program:
    """`program` with its ``lr`` default multiplied by `factor` (the grid choice folded in)."""
    if factor == 1.0:
        return program
    # 12 significant digits: 0.1 * 3 prints as 0.3, not 0.30000000000000004 (far below float32 round-off).
    hp = tuple(HParam(h.name, float(f"{h.default * factor:.12g}")) if h.name == "lr" else h for h in program.hparams)
    return program.with_(hparams=hp)
