"""Backend dispatch: the one place that maps a backend name to a compiled step.

A compiled step updates parameters and tensor state in place and returns the
new values of scalar state::

    step(params, grads, states, steps, hparams) -> {scalar_state_name: [value per param]}

where ``states`` maps each state name to a list (one entry per parameter),
``steps`` holds each parameter's 1-based step, and ``hparams`` the group's
hyperparameters as floats. All tensors passed in one call share device and dtype.

Backends:

- ``"reference"`` — interprets the IR one tensor at a time (tests, probes).
- ``"foreach"`` — generated Python over ``torch._foreach_*`` (`foreach.py`); any
  device and dtype; the fallback of ``"fused"``.
- ``"fused"`` — the tensor part of the program as one generated C++ loop over every
  element of every parameter of a bucket (`fused.py`): one pass over memory, no
  temporaries, compiled once per program (under 1 s with g++, then cached on disk),
  hyperparameters and step passed at runtime. CPU float32/float64, and bfloat16/float16
  computed in float32 with one rounding per stored value (as torch's fused optimizers);
  norm/rms/mean add read-only reduction passes. Other buckets (CUDA among them),
  non-contiguous tensors and machines without a compiler use foreach (one warning saying why).
- ``"triton"`` — the same design as one generated Triton kernel per program for CUDA
  (`triton_step.py`): one launch per pass over a whole bucket, float32/bfloat16/float16
  computed in float32, runtime hyperparameters; needs the optional ``triton`` package
  (``pip install 'discover-optimizers[gpu]'``). Other buckets use fused (CPU) or foreach.
- ``"auto"`` (the default) — per bucket: ``DEFAULT_BACKEND`` (fused) on CPU, ``CUDA_BACKEND``
  (triton) on CUDA where Triton can be imported, else foreach there (saying why once).

Search's batched (population) step has its own path, `population_kernel.py`: one C++ block
interpreter shared by every program, so no compiler run per candidate; on CUDA its Triton
counterpart, `triton_population.py` (`population_device.py` picks one per device).

``DEFAULT_BACKEND = "fused"``: the fastest on CPU by ``discover bench step``, which
measures every backend against torch.optim's side by side (README, "Backends and speed").
torch.compile (Inductor) of the generated step was tried and rejected: a minute or more
of compilation per set of shapes, and no faster than foreach at run time on CPU.

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


def _foreach(program: Program) -> StepFn:
    from .foreach import compile_foreach

    return compile_foreach(program)


def _fused(program: Program) -> StepFn:
    from .fused import compile_fused

    return compile_fused(program)


def _triton(program: Program) -> StepFn:
    from .lower import staged_reason
    from .triton_step import TritonUnavailable, _warn_once, compile_triton

    why = staged_reason(program)
    if why:  # matrix, row/column or group ops: torch calls between foreach passes, on any device
        _warn_once(f"{program.name}:{why}", f"program '{program.name}' runs on the foreach backend: {why}")
        return _foreach(program)
    try:
        return compile_triton(program)
    except TritonUnavailable as exc:
        raise ValueError(f"backend='triton' cannot run program '{program.name}': {exc}") from None


_BACKENDS: dict[str, Callable[[Program], StepFn]] = {
    "reference": lambda program: partial(reference_step, program),
    "foreach": _foreach,
    "fused": _fused,
    "triton": _triton,
}
DEFAULT_BACKEND = "fused"
CUDA_BACKEND = "triton"


def register_backend(name: str, factory: Callable[[Program], StepFn]) -> None:
    """Make `factory(program) -> step` available as ``backend=name``."""
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS) + ["auto"]


def _auto(program: Program) -> StepFn:
    """The default step: CPU buckets (and any but CUDA's) on `DEFAULT_BACKEND`; CUDA buckets on
    the Triton kernel (`CUDA_BACKEND`), built on the first CUDA bucket, or, where Triton cannot be
    imported, on foreach (saying why once)."""
    cpu_step = _BACKENDS[DEFAULT_BACKEND](program)
    cuda: list[StepFn] = []

    def cuda_step() -> StepFn:
        if not cuda:
            from .triton_step import TritonUnavailable, _warn_once, compile_triton

            try:
                cuda.append(compile_triton(program, fallback=cpu_step))
            except TritonUnavailable as exc:
                _warn_once(f"auto:{exc}", f"CUDA parameters of program '{program.name}' use the foreach backend: {exc}")
                cuda.append(getattr(cpu_step, "fallback", cpu_step))
        return cuda[0]

    def step(params: list, grads: list, states: dict, steps: list, hparams: dict) -> dict:
        if params and params[0].device.type == "cuda":
            return cuda_step()(params, grads, states, steps, hparams)
        return cpu_step(params, grads, states, steps, hparams)

    step.__source__ = getattr(cpu_step, "__source__", None)
    step.fallback = getattr(cpu_step, "fallback", cpu_step)
    step.cpu_step = cpu_step
    step.cuda_step = cuda_step
    return step


def compile_step(program: Program, backend: "str | Callable[[Program], StepFn]" = "auto") -> StepFn:
    """The compiled step of `program` for `backend` (``"auto"``: the measured-fastest per device,
    `DEFAULT_BACKEND` on CPU and `CUDA_BACKEND` on CUDA), or `backend(program)` for a step factory
    (benchmarks time variants of a backend this way)."""
    if callable(backend):
        return backend(program)
    if backend == "auto":
        return _auto(program)
    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(backend_names())}")
    return _BACKENDS[backend](program)
