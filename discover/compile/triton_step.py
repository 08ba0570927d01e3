"""The Triton backend: a program's whole update as one generated GPU kernel (CUDA's fused step).

Design (the C++ fused kernel's, on a GPU):

- The tensor part of the program becomes one Triton kernel. Each program instance takes a
  block of `BLOCK` elements of one parameter, loads ``w``, ``g`` and the tensor state, computes
  every statement in registers, and stores the new state and ``w - update``: one pass over
  memory, no temporaries.
- **Multi-tensor launch**: one launch covers every parameter of a bucket. A table on the device
  holds each tensor's pointers (w, g, states) and size; a second lists every block as (tensor,
  block within it). Both are built once per layout and reused while the tensors stay where they
  are, so 200 small tensors cost one launch, not 200.
- **Runtime scalars**: the scalar prologue (``lr / (1 - beta1 ** step)``...) is the other
  backends' Python function, evaluated in float64 once per step; its results reach the kernel
  as float32 arguments when every tensor of the bucket has the same step (the usual case), or as
  one row per tensor of a table otherwise. Hyperparameters and ``step`` are never compiled in:
  a scheduler changing ``lr`` or a growing ``step`` never recompiles.
- **Dtypes**: float32, bfloat16 and float16 parameters (with state of the same dtype), loaded,
  computed in float32 and each stored value rounded once to nearest even, as torch's fused
  optimizers do. One kernel source serves all three (the dtype is a compile-time argument:
  Triton compiles one variant per dtype on first use and caches it on disk).
- **Reductions** (``norm``, ``rms``, ``mean``) add, per level, a read-only pass that writes one
  float64 partial sum per block, and a small kernel that adds each tensor's partial sums in a
  fixed order (so the bits do not depend on scheduling) and computes the per-tensor values into
  the tensor's row of the scalar table, which the body reads like any scalar.
- Per-op forms come from `triton_common.TRITON_FORMS`; semantics follow the reference op by op.

Other buckets -- float64, non-contiguous tensors, tensors on a device Triton cannot run on
here -- use the foreach step (CUDA) or the fused C++ step (CPU), with one warning per reason.
Under ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors in Triton's interpreter: that
is how the tests check them without a GPU.

Example:
    >>> from discover import load
    >>> src = kernel_source(load("sgd"))
    >>> "def step_body(" in src and "d_store(p0, offs, (v0 - " in src
    True
"""
from __future__ import annotations

import contextlib
import operator
import warnings
from itertools import chain
from typing import Any, Callable

import torch

from ..lang.ir import Program
from .lower import PD, T, Instr, Lowered, Val, as_floats, lower, per_param, prologue, reduction_passes, staged_reason
from .source import comment, py_str
from .triton_common import (available, expression, f32_literal, launch_options, load_module, prelude, quiet_numpy,
                            reduction_finish, reduction_term, runs_on)

BLOCK = 1024  # elements per program instance: 8 float32 per thread with 4 warps
NUM_WARPS = 4
CHUNK = 256  # partial sums a finishing kernel adds per iteration
_WARNED: set[str] = set()
_DTYPES = ("float32", "bfloat16", "float16")


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"discover triton backend: {message}", RuntimeWarning, stacklevel=3)


class TritonUnavailable(RuntimeError):
    """The program or machine cannot use the Triton kernel (the message says why)."""


# --------------------------------------------------------------------------- generation


class _Kernel:
    """The Triton source of a program's tensor part and the layout of its arguments.

    Scalar columns: the prologue's outputs (`k_vals`), then the per-tensor values of reductions
    (`pd_vals`, written by the finishing kernels). (A ``where`` whose condition is a number was
    given a 0/1 condition decided in float64 by the lowering.)
    """

    def __init__(self, low: Lowered) -> None:
        self.low = low
        self.k_vals = prologue(low).outputs
        self.col = {v.id: j for j, v in enumerate(self.k_vals)}
        self.nscalar = len(self.k_vals)
        self.pd_vals = [i.dst for i in low.instrs if i.dst.level == PD]
        for j, v in enumerate(self.pd_vals):
            self.col[v.id] = self.nscalar + j
        self.ncols = self.nscalar + len(self.pd_vals)
        try:
            self.passes = reduction_passes(low)
        except ValueError as exc:
            raise TritonUnavailable(str(exc)) from None
        self.nred = [len(p.reductions) for p in self.passes]
        self.tensor_states = [(s, v) for s, v in low.states if not s.scalar]
        g = low.inputs.get("g")
        self.uses_g = g is not None and any(
            isinstance(a, Val) and a.id == g.id for a in chain((a for i in low.instrs for a in i.args), low.returns))
        self.ptr_vals = [low.inputs["w"]] + ([g] if self.uses_g else []) + [v for _, v in self.tensor_states]
        self.ptr_names = ["w"] + (["g"] if self.uses_g else []) + [s.name for s, _ in self.tensor_states]
        self.nptr = len(self.ptr_vals)
        self.source = self._generate()

    # ---------------------------------------------------------------- operands
    def arg(self, a: Any) -> str:
        if isinstance(a, float):
            return f32_literal(a)
        if a.level == T:
            return f"v{a.id}"
        return f"k{self.col[a.id]}"

    def expr(self, ins: Instr) -> str:
        try:
            return expression(ins.op, ins.pattern, [self.arg(a) for a in ins.args])
        except KeyError as exc:
            raise TritonUnavailable(str(exc)) from None

    # ---------------------------------------------------------------- source
    def _signature(self, name: str, extra: list[str], consts: list[str]) -> list[str]:
        ks = [f"k{j}" for j in range(self.nscalar)]
        params = ", ".join(["tab", "ktab", "kstride"] + extra + ks + [f"{c}: tl.constexpr" for c in consts])
        return ["", "", '@triton.jit(do_not_specialize=["kstride"])', f"def {name}({params}):"]

    def _scalars(self, needed: set[int], lines: list[str], pd_known: set[int]) -> None:
        """Per-tensor rows replace the scalar arguments; reduction results are read from the row."""
        lines.append("    if PER_TENSOR:  # one row of the scalar table per tensor (steps differ)")
        lines += [f"        k{j} = tl.load(krow + {j})" for j in range(self.nscalar)] or ["        pass"]
        if self.nscalar:
            # float32 arguments: a no-op on a GPU (the launcher passes them as float32); Triton's
            # interpreter passes Python floats, which it would widen to float64 below 2 ** -126
            lines.append("    else:")
            lines += [f"        k{j} = tl.cast(k{j}, tl.float32)" for j in range(self.nscalar)]
        for v in self.pd_vals:
            if v.id in needed and v.id not in pd_known:
                lines.append(f"    k{self.col[v.id]} = tl.load(krow + {self.col[v.id]})  # {comment(v.name)}")

    def _block_head(self, lines: list[str], needed: set[int], written: set[int] = frozenset()) -> None:
        lines += [
            "    b = tl.program_id(0)",
            "    t = tl.load(blocks + 2 * b).to(tl.int64)  # the tensor this block belongs to",
            "    row = tab + t * (NPTR + 1)  # its pointers, then its size",
            "    size = tl.load(row + NPTR)",
            "    offs = tl.load(blocks + 2 * b + 1).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
            "    mask = offs < size",
            "    krow = ktab + t * kstride",
        ]
        self._scalars(needed, lines, set())
        for j, (name, v) in enumerate(zip(self.ptr_names, self.ptr_vals)):
            if v.id in needed or j in written:  # read, or only written (a state whose old value is unused)
                lines.append(f"    p{j} = tl.load(row + {j}).to(tl.pointer_type(DT))  # {comment(name)}")
            if v.id in needed:
                lines.append(f"    v{v.id} = d_load(p{j}, offs, mask, DT)")

    @staticmethod
    def _uses(instrs: list, extra: list) -> set[int]:
        return {a.id for i in instrs for a in i.args if isinstance(a, Val)} | \
               {a.id for a in extra if isinstance(a, Val)}

    def _generate(self) -> str:
        low = self.low
        p = low.program
        out = [f"# Triton kernels for program {comment(p.name)} (generated by discover from its IR; one launch",
               "# per pass over a bucket's memory: the reduction passes, if any, then the body)",
               prelude()]
        for r, rp in enumerate(self.passes, start=1):
            out += self._reduction_pass(r, rp)
            out += self._finish(r, rp)
        # ---- the body
        update, *finals = low.returns
        stores = [(self.ptr_vals.index(v), f, s.name) for (s, v), f in zip(low.states, finals)
                  if not s.scalar and not (isinstance(f, Val) and f.id == v.id)]
        # the tensor values the outputs need (values only a reduction needs were its pass's work)
        live = {a.id for a in [update] + [f for _, f, _ in stores] if isinstance(a, Val)}
        body = []
        for ins in reversed([i for i in low.instrs if i.dst.level == T]):
            if ins.dst.id in live:
                live |= {a.id for a in ins.args if isinstance(a, Val)}
                body.append(ins)
        body.reverse()
        needed = self._uses(body, [update] + [f for _, f, _ in stores]) | {low.inputs["w"].id}
        lines = self._signature("step_body", ["blocks"], ["NPTR", "DT", "PER_TENSOR", "BLOCK"])
        lines.append(f"    {py_str(f'One {p.name} step for every block of every tensor of a bucket (in place).')}")
        self._block_head(lines, needed, {0} | {j for j, _, _ in stores})
        for ins in body:
            lines.append(f"    v{ins.dst.id} = {self.expr(ins)}  # {ins.src}")
        for j, f, name in stores:
            value = self.arg(f)
            if not (isinstance(f, Val) and f.level == T):  # a number: broadcast it (as is: -0 stays -0)
                value = f"tl.where(mask, {value}, {value})"
            lines.append(f"    d_store(p{j}, offs, {value}, mask, DT)  # new {comment(name)}")
        w = low.inputs["w"]
        lines.append(f"    d_store(p0, offs, (v{w.id} - {self.arg(update)}), mask, DT)  # w <- w - update")
        out += lines
        return "\n".join(out) + "\n"

    def _reduction_pass(self, r: int, rp: Any) -> list[str]:
        """Pass `r`: the values its reductions need, and one float64 partial sum per block each."""
        needed = self._uses(rp.inputs + rp.reductions, [])
        lines = self._signature(f"step_pass{r}", ["blocks", "part"], ["NPTR", "DT", "PER_TENSOR", "BLOCK"])
        lines.append(f"    {py_str(f'Reduction pass {r}: partial sums of every block (read only).')}")
        self._block_head(lines, needed)
        for ins in rp.inputs:
            lines.append(f"    v{ins.dst.id} = {self.expr(ins)}  # {ins.src}")
        for j, ins in enumerate(rp.reductions):
            x = f"v{ins.args[0].id}.to(tl.float64)"
            term = reduction_term(ins.op, x)
            lines.append(f"    tl.store(part + b * {len(rp.reductions)} + {j}, "
                         f"tl.sum(tl.where(mask, {term}, 0.0), axis=0))  # {ins.src}")
        return lines

    def _finish(self, r: int, rp: Any) -> list[str]:
        """Per tensor: its partial sums added in block order, the reductions, and the per-tensor
        values computed from them, into the tensor's row."""
        nred = len(rp.reductions)
        mine = {i.dst.id for i in rp.reductions} | {i.dst.id for i in rp.after}
        needed = self._uses(rp.after, [])
        lines = self._signature(f"step_finish{r}", ["first", "part"], ["NPTR", "PER_TENSOR", "CHUNK"])
        lines.append(f"    {py_str(f'Finish reduction pass {r}: one program per tensor.')}")
        lines += ["    t = tl.program_id(0).to(tl.int64)",
                  "    lo = tl.load(first + t)",
                  "    hi = tl.load(first + t + 1)",
                  "    size = tl.load(tab + t * (NPTR + 1) + NPTR)",
                  "    krow = ktab + t * kstride"]
        self._scalars(needed - mine, lines, mine)
        lines += [f"    s{j} = tl.zeros([CHUNK], tl.float64)" for j in range(nred)]
        lines += ["    for i in range(lo, hi, CHUNK):  # in block order: the bits never depend on scheduling",
                  "        idx = i + tl.arange(0, CHUNK)",
                  "        m = idx < hi"]
        lines += [f"        s{j} += tl.load(part + idx * {nred} + {j}, mask=m, other=0.0)" for j in range(nred)]
        for j, ins in enumerate(rp.reductions):
            c = self.col[ins.dst.id]
            value = reduction_finish(ins.op, f"tl.sum(s{j}, axis=0)", "size")
            lines.append(f"    k{c} = {value}  # {ins.src}")
            lines.append(f"    tl.store(krow + {c}, k{c})")
        for ins in rp.after:
            c = self.col[ins.dst.id]
            lines.append(f"    k{c} = {self.expr(ins)}  # {ins.src}")
            lines.append(f"    tl.store(krow + {c}, k{c})")
        return lines


def kernel_source(program: Program) -> str:
    """The Triton source of `program`'s kernels (raises `TritonUnavailable` if it has none)."""
    return _Kernel(lower(program)).source


def compile_offline(program: Program, dtype: str = "fp32", arch: int = 90) -> float:
    """Seconds to compile every kernel of `program` for `dtype` storage (``fp32``, ``bf16``,
    ``fp16``) for an NVIDIA GPU of compute capability `arch`, without one (`triton_common.compile_offline`)."""
    import triton.language as tl

    from .triton_common import compile_offline as build

    kernel = _Kernel(lower(program))
    module = load_module(kernel.source, "step")
    dt = {"fp32": tl.float32, "bf16": tl.bfloat16, "fp16": tl.float16}[dtype]
    ks = {f"k{j}": "fp32" for j in range(kernel.nscalar)}
    head = {"tab": "*i64", "ktab": "*fp32", "kstride": "i32"}
    block = {"NPTR": kernel.nptr, "DT": dt, "PER_TENSOR": bool(kernel.passes), "BLOCK": BLOCK}
    seconds = 0.0
    for r in range(1, len(kernel.passes) + 1):
        sig = {**head, "blocks": "*i32", "part": "*fp64", **ks, **{c: "constexpr" for c in block}}
        seconds += build(getattr(module, f"step_pass{r}"), sig, block, arch, NUM_WARPS)
        fin = {"NPTR": kernel.nptr, "PER_TENSOR": True, "CHUNK": CHUNK}
        sig = {**head, "first": "*i64", "part": "*fp64", **ks, **{c: "constexpr" for c in fin}}
        seconds += build(getattr(module, f"step_finish{r}"), sig, fin, arch, NUM_WARPS)
    sig = {**head, "blocks": "*i32", **ks, **{c: "constexpr" for c in block}}
    return seconds + build(module.step_body, sig, block, arch, NUM_WARPS)


# --------------------------------------------------------------------------- the step

_numel = torch.Tensor.numel
_data_ptr = torch.Tensor.data_ptr
_contiguous = torch.Tensor.is_contiguous


def _triton_dtypes() -> dict[torch.dtype, Any]:
    import triton.language as tl

    return {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


_dtype = operator.attrgetter("dtype")
_get_device = torch.Tensor.get_device


def _layout_ok(lists: list[list[torch.Tensor]], dtype: torch.dtype, device: torch.device) -> bool:
    """Every tensor dense and contiguous, of `dtype` on `device`, as large as its parameter.
    (C-level maps: this runs every step over every tensor of the bucket.)"""
    sizes = list(map(_numel, lists[0]))
    where = {-1 if device.type == "cpu" else (device.index if device.index is not None else 0)}
    return all(map(_contiguous, chain.from_iterable(lists))) and all(
        list(map(_numel, lst)) == sizes and set(map(_dtype, lst)) == {dtype} and set(map(_get_device, lst)) == where
        for lst in lists)


class _Layouts:
    """Device tables of the buckets a step has seen, reused while their tensors stay put: the
    block list and first block per tensor (by sizes), the pointer table (by pointers)."""

    def __init__(self, limit: int = 8) -> None:
        self.limit = limit
        self.blocks: dict[tuple, tuple] = {}
        self.tabs: dict[tuple, torch.Tensor] = {}
        self.dummies: dict[torch.device, torch.Tensor] = {}

    def dummy(self, device: torch.device) -> torch.Tensor:
        """A float32 stand-in for the scalar table when the kernel reads none (one variant compiled)."""
        if device not in self.dummies:
            self.dummies[device] = torch.zeros(1, dtype=torch.float32, device=device)
        return self.dummies[device]

    def block_table(self, sizes: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        key = (sizes, device)
        hit = self.blocks.get(key)
        if hit is None:
            counts = [-(-s // BLOCK) for s in sizes]
            pairs = [x for t, c in enumerate(counts) for j in range(c) for x in (t, j)]
            first = [0]
            for c in counts:
                first.append(first[-1] + c)
            hit = (_to_device(pairs, torch.int32, device), _to_device(first, torch.int64, device), first[-1])
            if len(self.blocks) >= self.limit:
                self.blocks.clear()
            self.blocks[key] = hit
        return hit

    def pointer_table(self, lists: list[list[torch.Tensor]], sizes: tuple, device: torch.device) -> torch.Tensor:
        ptrs = tuple(map(_data_ptr, chain.from_iterable(lists)))
        key = (ptrs, sizes, device)
        tab = self.tabs.get(key)
        if tab is None:
            n = len(sizes)
            cols = [ptrs[i * n:(i + 1) * n] for i in range(len(lists))]
            rows = [x for t in range(n) for x in (*(c[t] for c in cols), sizes[t])]
            tab = _to_device(rows, torch.int64, device)
            if len(self.tabs) >= self.limit:
                self.tabs.clear()
            self.tabs[key] = tab
        return tab


def _to_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small host list as a device tensor without waiting for the device's queue (pinned memory,
    non-blocking copy; torch's host allocator keeps the buffer until the copy is done)."""
    host = torch.tensor(values, dtype=dtype)
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def compile_triton(program: Program, fallback: Callable[..., dict] | None = None) -> Callable[..., dict]:
    """The Triton step of `program` (see the module docstring).

    Buckets it cannot run (float64, non-contiguous tensors, a device Triton cannot use here)
    go to `fallback`: by default the fused step (the C++ kernel on CPU, foreach elsewhere).
    Raises `TritonUnavailable` when Triton cannot be imported or the program has no kernel.
    """
    ok, why = available()
    if not ok:
        raise TritonUnavailable(why)
    why = staged_reason(program)
    if why:
        raise TritonUnavailable(why)
    kernel = _Kernel(lower(program))
    built: list[Callable[..., dict]] = [] if fallback is None else [fallback]
    built_foreach: list[Callable[..., dict]] = []

    def cpu_fallback(*args: Any) -> dict:
        """The fused step (built on first use: a g++ run that no CUDA bucket needs)."""
        if not built:
            from .fused import compile_fused

            built.append(compile_fused(program))
        return built[0](*args)

    def foreach_fallback(*args: Any) -> dict:
        """The foreach step: `fallback`'s own (the fused step's), or built on first use."""
        if not built_foreach:
            if built:
                built_foreach.append(getattr(built[0], "fallback", built[0]))
            else:
                from .foreach import compile_foreach

                built_foreach.append(compile_foreach(program))
        return built_foreach[0](*args)
    module = load_module(kernel_source(program), "step")
    body = module.step_body
    passes = [(getattr(module, f"step_pass{r}"), getattr(module, f"step_finish{r}"), kernel.nred[r - 1])
              for r in range(1, len(kernel.passes) + 1)]
    low = kernel.low
    pre = prologue(low)
    hp_names = low.program.hparam_names
    scalar_names = [s.name for s, _ in low.states if s.scalar]
    finals = dict(zip([s.name for s, _ in low.states], low.returns[1:]))
    scalar_out = []  # (name, kind, where): a prologue column, a table column (reduction), or a constant
    for name in scalar_names:
        f = finals[name]
        if isinstance(f, float):
            scalar_out.append((name, "const", f))
        elif f.level == PD:
            scalar_out.append((name, "table", kernel.col[f.id]))
        else:
            scalar_out.append((name, "pre", kernel.col[f.id]))
    tensor_state_names = [s.name for s, _ in kernel.tensor_states]
    uses_g = kernel.uses_g
    nk, nscalar, ncols, nptr = len(kernel.k_vals), kernel.nscalar, kernel.ncols, kernel.nptr
    nphases = len(passes)
    layouts = _Layouts()
    dtypes = _triton_dtypes()
    launch = {"num_warps": NUM_WARPS, **launch_options()}
    zeros = [0.0] * nscalar
    launches = [0]  # kernel launches so far (tests check the kernel ran, not a fallback)

    def step(params, grads, states, steps, hparams):
        n = len(params)
        if n == 0:
            return {name: [] for name in scalar_names}
        p0 = params[0]
        device = p0.device
        if not runs_on(device.type):
            if device.type == "cpu":
                _warn_once("cpu", "CPU parameters use the fused C++ backend (Triton kernels run on CUDA; "
                                  "TRITON_INTERPRET=1 runs them on the CPU, slowly, for tests)")
                return cpu_fallback(params, grads, states, steps, hparams)
            _warn_once(f"device:{device.type}", f"{device.type} parameters use the foreach backend")
            return foreach_fallback(params, grads, states, steps, hparams)
        tdt = dtypes.get(p0.dtype)
        lists = [params, grads] if uses_g else [params]
        lists += [states[name] for name in tensor_state_names]
        if tdt is None:
            _warn_once(f"dtype:{p0.dtype}", f"{p0.dtype} parameters use the foreach backend "
                                            f"(the Triton kernel covers {', '.join(_DTYPES)})")
            return foreach_fallback(params, grads, states, steps, hparams)
        if not _layout_ok(lists, p0.dtype, device):
            _warn_once("layout", "non-contiguous (or mismatched) tensors use the foreach backend")
            return foreach_fallback(params, grads, states, steps, hparams)
        hp = tuple(float(hparams[name]) for name in hp_names)
        ks = pre.run(hp, steps, [states[name] for name in scalar_names], n)
        cols = list(ks)
        per_tensor = any(isinstance(x, list) for x in cols)
        sizes = tuple(map(_numel, params))
        blocks, first, nblocks = layouts.block_table(sizes, device)
        tab = layouts.pointer_table(lists, sizes, device)
        if per_tensor or nphases:
            if per_tensor:
                rows = [per_param(x, n) for x in cols]
                pad = [0.0] * (ncols - nscalar)
                ktab = _to_device([float(x) for row in zip(*rows) for x in (*row, *pad)], torch.float32, device)
                kargs = zeros
            else:
                ktab = torch.empty(n * ncols, dtype=torch.float32, device=device)
                kargs = [float(x) for x in cols]
            kstride = ncols
        else:
            ktab, kstride, kargs = layouts.dummy(device), 0, [float(x) for x in cols]
        if device.type != "cuda":
            ctx = quiet_numpy()
        elif device.index is not None and device.index != torch.cuda.current_device():
            ctx = torch.cuda.device(device)  # Triton launches on the current device
        else:
            ctx = contextlib.nullcontext()
        launches[0] += 2 * nphases + 1
        with ctx:
            for pass_fn, finish_fn, nred in passes:
                part = torch.empty(max(nblocks * nred, 1), dtype=torch.float64, device=device)
                pass_fn[(nblocks,)](tab, ktab, kstride, blocks, part, *kargs, NPTR=nptr, DT=tdt,
                                    PER_TENSOR=per_tensor, BLOCK=BLOCK, **launch)
                finish_fn[(n,)](tab, ktab, kstride, first, part, *kargs, NPTR=nptr, PER_TENSOR=per_tensor,
                                CHUNK=CHUNK, **launch)
            body[(nblocks,)](tab, ktab, kstride, blocks, *kargs, NPTR=nptr, DT=tdt, PER_TENSOR=per_tensor,
                             BLOCK=BLOCK, **launch)
        out = {}
        for name, kind, src in scalar_out:
            if kind == "const":
                out[name] = [src] * n
            elif kind == "table":  # a per-tensor value from a reduction pass: read back (waits for the kernel)
                out[name] = [float(x) for x in ktab.view(n, ncols)[:, src].tolist()]
            else:
                out[name] = per_param(as_floats(ks[src]), n)
        return out

    step.launches = launches
    step.__source__ = module.__file__
    step.kernels = module
    step.fallback = foreach_fallback
    return step


