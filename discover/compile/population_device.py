"""Search's population step on any device: the C++ interpreter on CPU, the Triton one on CUDA.

`population_step(program)` is what the evaluator calls for each candidate. Both kernels run the
same bytecode (`population_kernel.Bytecode`); each falls back to the torch batched step
(`population_torch.compile_batched`) where it cannot run. The Triton step is built on the first
CUDA call, so CPU-only runs never import Triton.

Example:
    >>> import torch
    >>> from discover import load
    >>> step = population_step(load("sgd"))
    >>> w = torch.ones(3, 2); g = torch.ones(3, 2)
    >>> step([w], [g], {}, 1, {"lr": torch.tensor([0.1, 0.2, 0.5]), "weight_decay": 0.0})
    >>> w[:, 0]
    tensor([0.9000, 0.8000, 0.5000])
"""
from __future__ import annotations

from typing import Any, Mapping

from ..lang.ir import Program
from . import population_kernel
from .population_torch import BatchedStep


def population_step(program: Program) -> BatchedStep:
    """The fastest batched step available for `program`, per device: on CPU the C++ interpreter
    (`population_kernel.population_step`), on CUDA the Triton interpreter
    (`discover.compile.triton_population`), each else the torch batched step."""
    cpu = population_kernel.population_step(program)
    cuda: list[BatchedStep] = []

    def cuda_step() -> BatchedStep:
        if not cuda:
            from .triton_population import population_kernel_step

            cuda.append(population_kernel_step(program) or getattr(cpu, "fallback", cpu))
        return cuda[0]

    def step(params: list, grads: list, states: dict, step: int, hparams: Mapping[str, Any]) -> None:
        if params and params[0].device.type == "cuda":
            return cuda_step()(params, grads, states, step, hparams)
        return cpu(params, grads, states, step, hparams)

    step.fallback = getattr(cpu, "fallback", cpu)
    step.cpu_step = cpu
    step.cuda_step = cuda_step
    return step
