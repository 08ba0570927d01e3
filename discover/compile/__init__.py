"""IR -> torch code. The compiler is the only part of discover that knows torch kernels."""
from .backends import StepFn, backend_names, compile_step, register_backend
from .reference import evaluate, reference_step

__all__ = ["StepFn", "backend_names", "compile_step", "evaluate", "reference_step", "register_backend"]
