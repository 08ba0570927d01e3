"""IR -> torch code. The compiler is the only part of discover that knows torch kernels."""
from .backends import DEFAULT_BACKEND, StepFn, backend_names, compile_step, register_backend
from .foreach import torch_source
from .reference import evaluate, interpret, reference_step

__all__ = ["DEFAULT_BACKEND", "StepFn", "backend_names", "compile_step", "evaluate", "interpret", "reference_step",
           "register_backend", "torch_source"]
