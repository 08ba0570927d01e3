"""Backend dispatch: the one place that maps a backend name to a compiled step.

A compiled step updates parameters and tensor state in place and returns the
new values of scalar state::

    step(params, grads, states, steps, hparams) -> {scalar_state_name: [value per param]}

where ``states`` maps each state name to a list (one entry per parameter),
``steps`` holds each parameter's 1-based step, and ``hparams`` the group's
hyperparameters as floats. All tensors passed in one call share device and dtype.

Example:
    >>> from discover import load
    >>> step = compile_step(load("sgd"), "reference")
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from ..lang.ir import Program
from .reference import reference_step

StepFn = Callable[..., dict]

_BACKENDS: dict[str, Callable[[Program], StepFn]] = {
    "reference": lambda program: partial(reference_step, program),
}
DEFAULT_BACKEND = "reference"


def register_backend(name: str, factory: Callable[[Program], StepFn]) -> None:
    """Make `factory(program) -> step` available as ``backend=name``."""
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS) + ["auto"]


def compile_step(program: Program, backend: str = "auto") -> StepFn:
    """The compiled step of `program` for `backend` (``"auto"`` picks the measured-fastest default)."""
    name = DEFAULT_BACKEND if backend == "auto" else backend
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(backend_names())}")
    return _BACKENDS[name](program)
