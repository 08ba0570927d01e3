"""What the Triton backends share: the optional import, the per-op Triton forms, the helper
functions every generated kernel module starts with, and loading generated source as a module.

Triton is optional (``pip install 'discover-optimizers[gpu]'``): nothing here imports it until
a kernel is built, and `available()` says whether it can be (and why not).

**Per-op forms** are the op table's (`discover.lang.ops.Op.triton`, keyed by operand pattern
like the C++ forms; `triton_helpers` are the ``@triton.jit`` functions they call, gathered by
`prelude`). Everything is computed in float32 ("opmath"), whatever the storage dtype. The forms
follow the reference op by op: IEEE division and square root
(``tl.div_rn``, ``tl.sqrt_rn``: Triton's plain ``/`` and ``tl.sqrt`` are approximate on GPUs),
libdevice for transcendental functions (``tl.exp`` is approximate too), torch's lerp formula,
``c / tensor`` as torch computes it (``reciprocal(x) * c``), NaN-propagating min/max/clip.

Under Triton's interpreter (``TRITON_INTERPRET=1``: kernels run on CPU tensors, for tests)
libdevice calls have no implementation; `install_interpreter_externs` gives them numpy's, so
the generated source is the same on CPU and GPU.

Example:
    >>> expression("div", "nt", ["k0", "v3"])     # number / tensor, as torch computes it
    '(tl.div_rn(1.0, v3) * k0)'
    >>> expression("add", "tt", ["v1", "v2"])
    '(v1 + v2)'
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from ..lang.ops import ALL_OPS

# --------------------------------------------------------------------------- per-op forms


def form(op: str, pattern: str) -> str:
    """The Triton form of `op` for operands of `pattern` (raises `KeyError` if it has none)."""
    found = ALL_OPS[op].triton_form(pattern)
    if found is None:
        raise KeyError(f"op {op!r} has no Triton form for operands {pattern!r}")
    return found[1]


def expression(op: str, pattern: str, args: list[str]) -> str:
    """The Triton expression of `op` on `args` (already Triton expressions: names or literals)."""
    return form(op, pattern).format(*args)


def reduction_term(op: str, x: str) -> str:
    """What reduction `op` adds to its float64 sum for the float64 value(s) `x`."""
    return ALL_OPS[op].triton_reduce[0].format(x)


def reduction_finish(op: str, total: str, size: str) -> str:
    """Reduction `op`'s float32 value from the float64 sum `total` of `size` (int64) values."""
    return ALL_OPS[op].triton_reduce[1].format(total, size)


# --------------------------------------------------------------------------- kernel prelude
# The first lines of every generated kernel module: imports and the helpers the forms call.
# Storage dtypes: loads widen to float32, stores round once. bfloat16 is converted by bits
# (round to nearest even, NaN kept quiet, as the C++ kernels do): exact on every device, and
# Triton's interpreter rounds float32 -> bfloat16 half-up, which is not what GPUs do.
STORAGE = '''
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice as _ld

_NAN = tl.constexpr(float("nan"))
_INF = tl.constexpr(float("inf"))


@triton.jit
def d_load(p, offs, mask, DT: tl.constexpr):
    """Values of storage dtype DT at p + offs, widened to float32 (0 where not mask)."""
    if DT == tl.bfloat16:
        u = tl.load(p + offs, mask=mask, other=0.0).to(tl.uint16, bitcast=True)
        return (u.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        return tl.load(p + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def d_store(p, offs, x, mask, DT: tl.constexpr):
    """Store float32 x at p + offs in storage dtype DT, rounded once to nearest even."""
    if DT == tl.bfloat16:
        u = x.to(tl.uint32, bitcast=True)
        rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
        quiet_nan = (u >> 16) | 0x40
        bits = tl.where(x != x, quiet_nan, rounded).to(tl.uint16)
        tl.store(p + offs, bits.to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(p + offs, x.to(DT), mask=mask)
'''


def prelude() -> str:
    """`STORAGE` and the Triton helpers of every op (each once, in table order): the first lines of
    every generated kernel module."""
    helpers = dict.fromkeys(h for op in ALL_OPS.values() for h in op.triton_helpers)
    return STORAGE + "\n\n" + "\n\n".join(helpers) + "\n"


# --------------------------------------------------------------------------- availability

_STATE: dict[str, Any] = {}
_LOCK = threading.Lock()
INSTALL_HINT = "pip install 'discover-optimizers[gpu]'"


def available() -> tuple[bool, str]:
    """(True, "") if Triton can be imported, else (False, why); the import is tried once."""
    if "available" not in _STATE:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401

            _STATE["available"] = (True, "")
        except Exception as exc:  # ImportError, or a broken install
            _STATE["available"] = (False, f"triton cannot be imported ({type(exc).__name__}: {exc}; {INSTALL_HINT})")
    return _STATE["available"]


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``: CPU tensors, for tests)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on", "y")


def runs_on(device_type: str) -> bool:
    """Whether Triton kernels can run on tensors of `device_type` here: CUDA, or the CPU under the
    interpreter. (A CUDA device with the interpreter on is not: it runs on host copies.)"""
    if interpreting():
        return device_type == "cpu"
    return device_type == "cuda"


def install_interpreter_externs() -> None:
    """Give libdevice calls numpy implementations in Triton's interpreter (it has none), so the
    kernels the GPU runs are the kernels the CPU tests run. No effect outside the interpreter."""
    if not interpreting() or _STATE.get("externs"):
        return
    import numpy as np
    from triton.runtime import interpreter as interp

    def fmod(a, b):
        return np.fmod(a, b)

    table = {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sin": np.sin, "cos": np.cos, "asin": np.arcsin,
             "atan": np.arctan, "cosh": np.cosh, "pow": np.power, "fmod": fmod}
    builder_cls = type(interp.interpreter_builder)
    original = builder_cls.create_extern_elementwise

    def create_extern_elementwise(self, libName, libPath, symbol, argList, retType, isPure):  # noqa: N803
        name = symbol[len("__nv_"):] if symbol.startswith("__nv_") else symbol
        fn = table.get(name[:-1] if name.endswith("f") and name[:-1] in table else name)
        if fn is None:
            return original(self, libName, libPath, symbol, argList, retType, isPure)
        dtype = argList[0].data.dtype
        with np.errstate(all="ignore"):
            out = fn(*np.broadcast_arrays(*(a.data for a in argList))).astype(dtype)
        return interp.TensorHandle(out, retType.scalar if hasattr(retType, "scalar") else retType)

    builder_cls.create_extern_elementwise = create_extern_elementwise
    # libdevice's functions are builtins the interpreter does not patch (it patches triton.language
    # only): patch them too, each time it patches the language for a kernel call
    from triton.language.extra.cuda import libdevice

    patch_lang = interp._patch_lang

    def _patch_lang(fn):  # noqa: ANN001, ANN202 - the interpreter's own signature
        scope = patch_lang(fn)
        interp._patch_builtin(libdevice, interp.interpreter_builder, scope)
        return scope

    interp._patch_lang = _patch_lang
    _STATE["externs"] = True


def quiet_numpy() -> Any:
    """A context for kernel launches under the interpreter: its numpy arithmetic is IEEE (NaN and
    inf, as on a GPU) and says nothing about it; masked-off lanes compute on zeros, too."""
    import numpy as np

    return np.errstate(all="ignore")


def launch_options() -> dict[str, Any]:
    """Compile options every kernel launch passes: no contraction of ``a * b + c`` into FMAs (the
    forms say where torch uses one, as the C++ kernels are built with ``-ffp-contract=off``) and,
    where this Triton has the option, libdevice without flushing subnormals to zero (torch keeps
    them)."""
    if "launch" not in _STATE:
        options: dict[str, Any] = {"enable_fp_fusion": False}
        try:
            import dataclasses

            from triton.backends.nvidia.compiler import CUDAOptions

            if "enable_reflect_ftz" in {f.name for f in dataclasses.fields(CUDAOptions)}:
                options["enable_reflect_ftz"] = False
        except Exception:  # another backend, or a Triton without the option: its default
            pass
        _STATE["launch"] = options
    return _STATE["launch"]


# --------------------------------------------------------------------------- generated modules

_MODULES: dict[str, ModuleType] = {}


def module_dir() -> Path:
    """Where generated kernel modules are written: ``$DISCOVER_CACHE_DIR/triton`` (default
    ``~/.cache/discover/triton``). Triton reads a kernel's source from its file."""
    root = os.environ.get("DISCOVER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "discover")
    return Path(root) / "triton"


def load_module(source: str, prefix: str) -> ModuleType:
    """Import generated kernel `source` as a module (written once to `module_dir`, by the hash of
    its source; loaded once per process). Raises `RuntimeError` without Triton."""
    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    install_interpreter_externs()
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    name = f"discover_triton_{prefix}_{key}"
    with _LOCK:
        if name in _MODULES:
            return _MODULES[name]
        path = module_dir() / f"{name}.py"
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, path)  # atomic: concurrent writers never leave half a file
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Triton resolves a kernel's globals through its module
        spec.loader.exec_module(module)
        _MODULES[name] = module
        return module


def f32_literal(x: float) -> str:
    """A float constant as Triton source for a float32 scalar (rounded to float32 here, as the
    C++ kernels' ``T(x)``, so no literal can widen a computation to float64)."""
    import struct

    try:
        v = struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:  # beyond float32: inf, as a cast to float would give
        v = float("inf") if x > 0 else float("-inf")
    if v != v:
        return "tl.full([], _NAN, tl.float32)"
    if v in (float("inf"), float("-inf")):
        return f"tl.full([], {'-' if v < 0 else ''}_INF, tl.float32)"
    return f"tl.full([], {v!r}, tl.float32)"


def compile_offline(fn: Any, signature: dict[str, str], constexprs: dict[str, Any], arch: int = 90,
                    num_warps: int = 4) -> float:
    """Compile a kernel of a generated module for an NVIDIA GPU of compute capability `arch`
    (default 90: H100/H200) without one, all the way to a cubin (Triton's ``ptxas``), with an
    empty Triton cache, and return the seconds it took. A check that the generated source is valid
    Triton for a real GPU (the interpreter runs Python, not the compiler), and the cost a
    per-program kernel would add. Not under the interpreter (whose ``tl.sum`` & co. are
    interpreted functions): `offline_compile_times` runs it in a fresh process."""
    if interpreting():
        raise RuntimeError("compile_offline cannot run under TRITON_INTERPRET=1; use offline_compile_times")
    import tempfile
    import time

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    saved = os.environ.get("TRITON_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRITON_CACHE_DIR"] = tmp  # an empty cache: the time of a real compile
        try:
            start = time.perf_counter()
            triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                           target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps, **launch_options()})
            return time.perf_counter() - start
        finally:
            if saved is None:
                os.environ.pop("TRITON_CACHE_DIR", None)
            else:
                os.environ["TRITON_CACHE_DIR"] = saved


def offline_compile_times(programs: list[str], dtypes: tuple[str, ...] = ("fp32", "bf16"), arch: int = 90,
                          population: bool = True, timeout: float = 600) -> dict[str, float]:
    """Seconds to compile, for compute capability `arch`, each program's step kernels (key
    ``"NAME:DTYPE"``) and the population interpreter (key ``"population"``), in a fresh Python
    process without the interpreter. Raises `RuntimeError` with the child's error if one fails.

    Example (needs Triton; about a second per kernel):
        >>> times = offline_compile_times(["sgd"], ("fp32",), population=False)  # doctest: +SKIP
    """
    import json
    import subprocess

    code = (
        "import json, sys\n"
        "from discover import load\n"
        "from discover.compile import triton_step, triton_population\n"
        "spec = json.loads(sys.argv[1])\n"
        "out = {}\n"
        "for name in spec['programs']:\n"
        "    for dt in spec['dtypes']:\n"
        "        out[name + ':' + dt] = triton_step.compile_offline(load(name), dt, spec['arch'])\n"
        "if spec['population']:\n"
        "    out['population'] = triton_population.compile_offline(spec['arch'])\n"
        "print('DISCOVER-TIMES ' + json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    spec = json.dumps({"programs": list(programs), "dtypes": list(dtypes), "arch": arch, "population": population})
    proc = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True, env=env,
                          timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("DISCOVER-TIMES "):
            return json.loads(line[len("DISCOVER-TIMES "):])
    raise RuntimeError(f"offline Triton compile failed (exit {proc.returncode}): {proc.stderr.strip()[-3000:]}")
