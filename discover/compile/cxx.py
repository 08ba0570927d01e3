"""Build generated C++ into a shared library once, cache it on disk, load it with ctypes.

Shared by the per-program fused kernels (`fused.py`) and the population kernel
(`population_kernel.py`). A library is keyed by a hash of its source, the compiler, the
flags and the CPU (``-march=native`` code is only valid on the CPU it was built
for), stored under ``$DISCOVER_CACHE_DIR`` (default ``~/.cache/discover``)
``/kernels`` and loaded once per process. `compile_count()` counts compiler runs
(a test hook: it must not grow when hyperparameters change or steps advance).

Example:
    >>> import ctypes
    >>> src = 'extern "C" double twice(double x) { return 2 * x; }'
    >>> try:
    ...     lib = build(src, {"twice": ([ctypes.c_double], ctypes.c_double)})
    ...     print(lib.twice(1.5))
    ... except CompilerUnavailable:
    ...     print(3.0)
    3.0
"""
from __future__ import annotations

import ctypes
import hashlib
import operator
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from itertools import chain
from pathlib import Path
from typing import Any

import torch

FLAGS = ["-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-fno-math-errno", "-std=c++17",
         "-shared", "-fPIC"]
_LOCK = threading.Lock()
_LOADED: dict[str, ctypes.CDLL] = {}
_COMPILES = [0]


_numel = torch.Tensor.numel
_contiguous = torch.Tensor.is_contiguous
_dtype = operator.attrgetter("dtype")
_is_cpu = operator.attrgetter("is_cpu")


def raw_pointers_safe(lists: list[list[torch.Tensor]], dtype: torch.dtype) -> bool:
    """Whether a kernel may index every tensor of `lists` by raw pointer: all dense CPU tensors
    of `dtype`, each with as many values as its counterpart in the first list (the parameters)."""
    sizes = list(map(_numel, lists[0]))
    return all(map(_contiguous, chain.from_iterable(lists))) and all(
        list(map(_numel, lst)) == sizes and set(map(_dtype, lst)) <= {dtype} and all(map(_is_cpu, lst))
        for lst in lists)


class CompilerUnavailable(RuntimeError):
    """No library could be built (no compiler, a compiler error, an unwritable cache); the message says why."""


def compile_count() -> int:
    """How many times this process has run the C++ compiler."""
    return _COMPILES[0]


def forget_loaded() -> None:
    """Drop the in-process table of loaded libraries (benchmarks time loading from the disk cache)."""
    with _LOCK:
        _LOADED.clear()


def cache_dir() -> Path:
    """Where built libraries are kept: ``$DISCOVER_CACHE_DIR/kernels`` or ``~/.cache/discover/kernels``."""
    root = os.environ.get("DISCOVER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "discover")
    return Path(root) / "kernels"


def _machine_tag() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = "".join(line for line in f if line.startswith(("model name", "flags")))[:4000]
    except OSError:
        info = platform.processor()
    return info + platform.machine() + sys.platform


def build(source: str, symbols: dict[str, tuple[list[Any], Any]], prefix: str = "step") -> ctypes.CDLL:
    """Compile (or load from the disk cache) `source`; `symbols` gives each exported C function's
    ``(argtypes, restype)``. Raises `CompilerUnavailable` (or `OSError` for an unusable cache)."""
    cxx = os.environ.get("CXX", "g++")
    key = hashlib.sha256("\0".join([source, cxx, *FLAGS, _machine_tag()]).encode()).hexdigest()[:24]
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        # load torch's OpenMP runtime first so the kernel shares torch's thread pool library
        gomp = Path(torch.__file__).parent / "lib" / "libgomp.so.1"
        if gomp.exists():
            ctypes.CDLL(str(gomp), mode=ctypes.RTLD_GLOBAL)
        out = cache_dir() / f"{prefix}_{key}.so"
        if not out.exists():
            if shutil.which(cxx) is None:
                raise CompilerUnavailable(f"no C++ compiler ({cxx!r} not found; set $CXX)")
            out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
                src = Path(tmp) / "kernel.cpp"
                src.write_text(source, encoding="utf-8")
                lib = Path(tmp) / "kernel.so"
                _COMPILES[0] += 1
                proc = subprocess.run([cxx, *FLAGS, str(src), "-o", str(lib)], capture_output=True, text=True)
                if proc.returncode != 0:
                    raise CompilerUnavailable(f"{cxx} failed: {proc.stderr.strip()[:500]}")
                os.replace(lib, out)  # atomic: concurrent builders never see half a library
        dll = ctypes.CDLL(str(out))
        for name, (argtypes, restype) in symbols.items():
            fn = getattr(dll, name)
            fn.argtypes = argtypes
            fn.restype = restype
        _LOADED[key] = dll
        return dll
