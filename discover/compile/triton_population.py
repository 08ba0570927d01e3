"""Search's population update on CUDA: one Triton block interpreter shared by every program.

Search trains every candidate on slices of population tensors (``(n, *shape)``, one member
per trial, `discover.compile.population_torch`), and nearly every candidate is a new program (equivalent
ones are caught by the fingerprint cache before training). A kernel generated per program, as
the optimizer's Triton step is, would cost a Triton compile per candidate: measured with
``triton.compile`` for an H200 (sm_90) on this 2-core CPU, 0.15-0.3 s per kernel (Adam, Lion,
LAMB's three kernels: ``discover bench search`` prints the figure for the machine it runs on),
while a candidate's whole update on a GPU is one launch per step -- ~300 launches of tens of
microseconds on the default proxy tasks, ~10 ms. Compiling would cost 10-30x the work it speeds
up. So, as on CPU (`population_kernel.py`), there is **one** kernel, compiled once per machine (Triton's
disk cache), that interprets the program's bytecode: the same `population_kernel.Bytecode` the C++
interpreter runs, so the two cannot drift apart.

How it runs:

- A **unit** is one member's chunk of one parameter; a unit is split in blocks of `BLOCK`
  elements. One launch per pass over memory: a persistent grid of programs walks the blocks;
  each block runs the pass's instructions in order. Operands are tensor slots (the inputs in
  memory, or registers: a scratch row of `BLOCK` floats per program, L2-resident, reused
  block after block) or scalar columns of the unit's row. Op dispatch is a chain of branches
  on the opcode, uniform across the block (no divergence); the per-op expressions are the
  Triton step's (`triton_common.TRITON_FORMS`).
- The scalars come from the same prologue as every backend, computed on the host in float64
  once per distinct member setting per step, uploaded as one float32 row per unit without
  waiting for the device. Hyperparameters and ``step`` are runtime values.
- Reductions (``norm``/``rms``/``mean``): their pass writes one float64 partial sum per block;
  a per-unit launch adds each unit's partial sums in block order (no atomics: the bits do not
  depend on scheduling) and runs the scalar code that follows, into the unit's row.

Float32 population tensors only (the proxy tasks' dtype); anything else -- other dtypes,
non-contiguous slices, a device Triton cannot run on here, programs the bytecode does not cover --
falls back to the torch batched step, as the C++ interpreter does.

Example:
    >>> from discover import load
    >>> "def pop_pass(" in interpreter_source()
    True
"""
from __future__ import annotations

import contextlib
from array import array
from typing import Any, Callable, Mapping

import torch

from ..lang.ir import Program
from .population_torch import BatchedStep, compile_batched
from ..lang.ops import ALL_OPS
from .population_kernel import _ACCUMULATE, _FINISH, _REDUCTIONS, OPCODES, Bytecode, Unsupported, member_constants
from .triton_common import (available, launch_options, load_module, prelude, quiet_numpy, reduction_finish,
                            reduction_term, runs_on)

BLOCK = 512  # elements per block: a program's registers are BLOCK floats each
NUM_WARPS = 4
UNITS = 128  # units per program of the scalar (per-unit) launches
_GRID_PER_SM = 4  # persistent programs per streaming multiprocessor


# --------------------------------------------------------------------------- the interpreter (Triton)

def _op_form(name: str, key: str) -> str:
    """The Triton expression of opcode (`name`, C++ form `key`) on operands A, B, C (blocks of
    float32): the op's Triton form for the same operand pattern, so both interpreters agree."""
    op = ALL_OPS[name]
    found = op.triton_form(key)
    if found is None or found[0] != key:
        raise KeyError(f"op {name!r} has a C++ form for operands {key!r} and no Triton form for them")
    return found[1].format(*"ABC"[:op.arity])


def interpreter_source() -> str:
    """The Triton source of the population interpreter (the same for every program)."""
    branches = []
    for i, ((name, key), code) in enumerate(OPCODES.items()):
        kw = "if" if i == 0 else "elif"
        branches.append(f"    {kw} op == {code}:  # {name} {key}\n        r = {_op_form(name, key)}")
    accumulate, finish = [], []
    for j, name in enumerate(_REDUCTIONS):
        kw = "if" if j == 0 else "elif"
        accumulate.append(f"                {kw} op == {_ACCUMULATE - j}:  # {name}\n"
                          f"                    s = tl.sum(tl.where(mask, {reduction_term(name, 'a64')}, 0.0), axis=0)")
        finish.append(f"            {kw} op == {_FINISH - j}:  # {name}\n"
                      f"                r = {reduction_finish(name, 's', 'size')}")
    return (_HEADER + prelude() + _INTERP.replace("ACCUMULATE_BRANCHES", "\n".join(accumulate))
            .replace("FINISH_BRANCHES", "\n".join(finish)).replace("OP_BRANCHES", "\n".join(branches))
            .replace("ACC_LAST", str(_ACCUMULATE - len(_REDUCTIONS))).replace("ACC_FIRST", str(_ACCUMULATE))
            .replace("FIN_LAST", str(_FINISH - len(_REDUCTIONS))).replace("FIN_FIRST", str(_FINISH)))


_HEADER = "# The population interpreter (generated by discover; the same for every program)\n"

_INTERP = '''

@triton.jit
def pop_apply(op, A, B, C):
    """One instruction's value: opcode op on operands A, B, C (copy when no branch matches)."""
    r = A
OP_BRANCHES
    return r


@triton.jit
def pop_operand(x, prow, elem, offs, mask, regs, krow, nin, BLOCK: tl.constexpr):
    """Operand x of a block: an input in memory (x < nin), a register (x >= nin), or a scalar
    column of the unit's row (x < 0), broadcast over the block."""
    if x < 0:  # every lane loads the one column (adding zeros to broadcast would turn -0 into +0)
        v = tl.load(krow + (-1 - x) + tl.zeros([BLOCK], tl.int32))
    elif x < nin:
        ptr = tl.load(prow + x).to(tl.pointer_type(tl.float32))
        v = tl.load(ptr + elem + offs, mask=mask, other=0.0)
    else:
        v = tl.load(regs + (x - nin) * BLOCK + tl.arange(0, BLOCK))
    return v


@triton.jit(do_not_specialize=["start", "count", "nin", "nk", "nregs", "nacc", "nblocks", "nprog"])
def pop_pass(code, start, count, tab, units, blocks, ktab, nk, scratch, nregs, part, nacc, nin, nblocks, nprog,
             BLOCK: tl.constexpr):
    """One pass over memory: instructions code[start:start + 5 * count] on every block of every unit."""
    pid = tl.program_id(0)
    regs = scratch + pid.to(tl.int64) * nregs * BLOCK
    lane = tl.arange(0, BLOCK)
    for blk in range(pid, nblocks, nprog):
        u = tl.load(blocks + 2 * blk).to(tl.int64)
        param = tl.load(units + 3 * u)
        member = tl.load(units + 3 * u + 1)
        size = tl.load(units + 3 * u + 2)
        offs = tl.load(blocks + 2 * blk + 1).to(tl.int64) * BLOCK + lane
        mask = offs < size
        elem = member * size  # the member's chunk starts here in the parameter's slice
        prow = tab + param * nin
        krow = ktab + u * nk
        for q in range(count):
            ins = code + start + 5 * q
            op = tl.load(ins)
            d = tl.load(ins + 1)
            A = pop_operand(tl.load(ins + 2), prow, elem, offs, mask, regs, krow, nin, BLOCK)
            if (op <= ACC_FIRST) & (op > ACC_LAST):  # a reduction's float64 partial sum of the block
                a64 = A.to(tl.float64)
                s = tl.sum(tl.where(mask, a64, 0.0), axis=0)
ACCUMULATE_BRANCHES
                tl.store(part + blk * nacc + d, s)
            else:
                B = pop_operand(tl.load(ins + 3), prow, elem, offs, mask, regs, krow, nin, BLOCK)
                C = pop_operand(tl.load(ins + 4), prow, elem, offs, mask, regs, krow, nin, BLOCK)
                r = pop_apply(op, A, B, C)
                if op == -1:  # store into input slot d (new state, new w)
                    ptr = tl.load(prow + d).to(tl.pointer_type(tl.float32))
                    tl.store(ptr + elem + offs, r, mask=mask)
                else:
                    tl.store(regs + (d - nin) * BLOCK + lane, r)
                tl.debug_barrier()  # the next instruction reads what this one wrote


@triton.jit(do_not_specialize=["start", "count", "nk", "nacc", "nunits", "maxblocks"])
def pop_scalar(code, start, count, units, ufirst, ktab, nk, part, nacc, nunits, maxblocks, UNITS: tl.constexpr):
    """Scalar code code[start:start + 5 * count], one lane per unit: finishing reductions (their
    partial sums added in block order) and what follows from them, into each unit's row."""
    us = tl.program_id(0) * UNITS + tl.arange(0, UNITS)
    um = us < nunits
    krow = ktab + us.to(tl.int64) * nk
    size = tl.load(units + 3 * us.to(tl.int64) + 2, mask=um, other=1)
    lo = tl.load(ufirst + us, mask=um, other=0)
    hi = tl.load(ufirst + us + 1, mask=um, other=0)
    for q in range(count):
        ins = code + start + 5 * q
        op = tl.load(ins)
        d = tl.load(ins + 1)
        a = tl.load(ins + 2)
        if (op <= FIN_FIRST) & (op > FIN_LAST):  # a reduction's value from accumulator a
            s = tl.zeros([UNITS], tl.float64)
            for j in range(maxblocks):
                s += tl.load(part + (lo + j) * nacc + a, mask=um & (lo + j < hi), other=0.0)
            r = tl.zeros([UNITS], tl.float32)
FINISH_BRANCHES
        else:
            A = tl.load(krow + (-1 - a), mask=um, other=0.0)
            B = tl.load(krow + (-1 - tl.load(ins + 3)), mask=um, other=0.0)
            C = tl.load(krow + (-1 - tl.load(ins + 4)), mask=um, other=0.0)
            r = pop_apply(op, A, B, C)
        tl.store(krow + (-1 - d), r, mask=um)
'''


def _segments(code: list[int]) -> list[tuple[str, int, int]]:
    """The bytecode as launches: ("pass", first instruction, count) for each pass over memory,
    ("scalar", first, count) for each run of scalar instructions between them."""
    out: list[tuple[str, int, int]] = []
    pc = 0
    while pc < len(code):
        if code[pc] == -10:
            n = code[pc + 1]
            out.append(("pass", pc + 5, n))
            pc += 5 + 5 * n
        else:
            start = pc
            while pc < len(code) and code[pc] != -10:
                pc += 5
            out.append(("scalar", start, (pc - start) // 5))
    return out


_KERNELS: list[Any] = []


def kernels() -> Any:
    """The interpreter's module (written and imported once per process; Triton compiles each
    kernel once per machine on first use). Raises `RuntimeError` without Triton."""
    if not _KERNELS:
        _KERNELS.append(load_module(interpreter_source(), "population"))
    return _KERNELS[0]


def compile_offline(arch: int = 90) -> float:
    """Seconds to compile the interpreter's kernels for an NVIDIA GPU of compute capability
    `arch`, without one (`triton_common.compile_offline`); Triton does it once per machine."""
    from .triton_common import compile_offline as build

    mod = kernels()
    sig = dict(code="*i32", start="i32", count="i32", tab="*i64", units="*i64", blocks="*i32", ktab="*fp32",
               nk="i32", scratch="*fp32", nregs="i32", part="*fp64", nacc="i32", nin="i32", nblocks="i32",
               nprog="i32", BLOCK="constexpr")
    seconds = build(mod.pop_pass, sig, {"BLOCK": BLOCK}, arch, NUM_WARPS)
    sig = dict(code="*i32", start="i32", count="i32", units="*i64", ufirst="*i64", ktab="*fp32", nk="i32",
               part="*fp64", nacc="i32", nunits="i32", maxblocks="i32", UNITS="constexpr")
    return seconds + build(mod.pop_scalar, sig, {"UNITS": UNITS}, arch, NUM_WARPS)


# --------------------------------------------------------------------------- the step

_data_ptr = torch.Tensor.data_ptr
_numel = torch.Tensor.numel


class _Device:
    """Per-device buffers shared by every candidate's step: registers and partial sums."""

    def __init__(self) -> None:
        self.scratch: dict[torch.device, torch.Tensor] = {}
        self.programs: dict[torch.device, int] = {}

    def nprog(self, device: torch.device, nblocks: int) -> int:
        if device not in self.programs:
            if device.type == "cuda":
                sms = torch.cuda.get_device_properties(device).multi_processor_count
                self.programs[device] = _GRID_PER_SM * sms
            else:  # the interpreter runs programs one after another: a few are as good as many
                self.programs[device] = 4
        return max(1, min(nblocks, self.programs[device]))

    def registers(self, device: torch.device, nprog: int, nregs: int) -> torch.Tensor:
        need = max(nprog * max(nregs, 1) * BLOCK, 1)
        buf = self.scratch.get(device)
        if buf is None or buf.numel() < need:
            buf = self.scratch[device] = torch.empty(need, dtype=torch.float32, device=device)
        return buf


_BUFFERS = _Device()


def _to_device(values: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Host values as a device tensor without waiting for the device's queue (pinned memory,
    non-blocking copy; torch's host allocator keeps the buffer until the copy is done)."""
    host = torch.tensor(values, dtype=dtype) if not isinstance(values, torch.Tensor) else values
    if device.type == "cpu":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def compile_triton_population(program: Program) -> BatchedStep:
    """The Triton interpreter step for `program` (the contract of `compile_batched`'s step).

    Raises `Unsupported` for programs the bytecode does not cover and `RuntimeError` without
    Triton; `discover.compile.population.population_step` catches both and falls back.
    """
    ok, why = available()
    if not ok:
        raise RuntimeError(why)
    bc = Bytecode(program)
    mod = kernels()
    fallback = compile_batched(program)
    segments = _segments(bc.code)
    nk = max(bc.ncols, 1)
    code_dev: dict[torch.device, torch.Tensor] = {}
    layouts: dict[tuple, tuple] = {}
    tabs: dict[tuple, torch.Tensor] = {}  # pointer tables by the pointers they hold
    launches = [0]  # kernel launches so far (tests check the kernel ran, not a fallback)
    mirror: dict[str, tuple] = {}  # scalar state -> (the buffers' (pointer, version), host values)

    def scalar_state(name: str, bufs: list, n: int) -> list[float]:
        """The members' values of a scalar state: from the host copy this step wrote last time,
        unless the buffers changed since (reading a device buffer waits for the device)."""
        key = tuple((_data_ptr(b), b._version) for b in bufs)
        seen = mirror.get(name)
        if seen is not None and seen[0] == key:
            return seen[1]
        return [float(x) for x in bufs[0].reshape(n).tolist()]

    def layout(sizes: tuple, n: int, device: torch.device) -> tuple:
        key = (sizes, n, device)
        hit = layouts.get(key)
        if hit is None:
            units, blocks, ufirst = [], [], [0]
            for p, size in enumerate(sizes):
                for m in range(n):
                    u = len(units) // 3
                    units += [p, m, size]
                    nb = max(-(-size // BLOCK), 1)
                    blocks += [x for j in range(nb) for x in (u, j)]
                    ufirst.append(ufirst[-1] + nb)
            maxblocks = max(b - a for a, b in zip(ufirst, ufirst[1:])) if sizes else 0
            hit = (_to_device(units, torch.int64, device), _to_device(blocks, torch.int32, device),
                   _to_device(ufirst, torch.int64, device), len(blocks) // 2, len(units) // 3, maxblocks)
            if len(layouts) > 8:
                layouts.clear()
            layouts[key] = hit
        return hit

    def step(params: list, grads: list, states: dict, step: int, hparams: Mapping[str, Any]) -> None:
        if not params:
            return
        p0 = params[0]
        n = p0.shape[0]
        device = p0.device
        lists = [params, grads] if bc.uses_g else [params]
        lists += [states[name] for name in bc.tensor_state_names]
        if not (runs_on(device.type) and p0.dtype == torch.float32 and all(
                t.dtype == torch.float32 and t.device == device and t.is_contiguous() and t.numel() == q.numel()
                for lst in lists for t, q in zip(lst, params))):
            return fallback(params, grads, states, step, hparams)
        scal = [scalar_state(name, states[name], n) for name in bc.scalar_names]
        rows = member_constants(bc, hparams, scal, step, n)
        sizes = tuple(_numel(p) // n for p in params)
        units, blocks, ufirst, nblocks, nunits, maxblocks = layout(sizes, n, device)
        # one row per unit (unit = param * n + member): the member's row, for every parameter
        flat = array("f", [x for r in rows for x in r] if bc.ncols else [0.0] * n) * len(params)
        ktab = _to_device(torch.frombuffer(flat, dtype=torch.float32), torch.float32, device)
        ptrs = tuple(_data_ptr(t) for t in zip(*lists) for t in t)
        tab = tabs.get((ptrs, device))
        if tab is None:
            if len(tabs) > 8:
                tabs.clear()
            tab = tabs[(ptrs, device)] = _to_device(list(ptrs), torch.int64, device)
        code = code_dev.get(device)
        if code is None:
            code = code_dev[device] = _to_device(bc.code or [0], torch.int32, device)
        nprog = _BUFFERS.nprog(device, nblocks)
        regs = _BUFFERS.registers(device, nprog, bc.nregs)
        part = torch.empty(max(nblocks * bc.nacc, 1), dtype=torch.float64, device=device)
        if device.type != "cuda":
            ctx = quiet_numpy()
        elif device.index is not None and device.index != torch.cuda.current_device():
            ctx = torch.cuda.device(device)  # Triton launches on the current device
        else:
            ctx = contextlib.nullcontext()
        launches[0] += len(segments)
        with ctx:
            for kind, start, count in segments:
                if kind == "pass":
                    mod.pop_pass[(nprog,)](code, start, count, tab, units, blocks, ktab, nk, regs, bc.nregs, part,
                                           max(bc.nacc, 1), bc.nin, nblocks, nprog, BLOCK=BLOCK,
                                           num_warps=NUM_WARPS, **launch_options())
                else:
                    mod.pop_scalar[(-(-nunits // UNITS),)](code, start, count, units, ufirst, ktab, nk, part,
                                                          max(bc.nacc, 1), nunits, maxblocks, UNITS=UNITS,
                                                          num_warps=NUM_WARPS, **launch_options())
        for name, src in bc.scalar_out:
            values = [r[src] if isinstance(src, int) else src for r in rows]
            host = torch.tensor(values, dtype=torch.float32)
            vals = _to_device(host, torch.float32, device)
            for buf in states[name]:
                buf.copy_(vals.view(buf.shape))
            # what the buffers hold now, as float32 rounds it (the next step reads these numbers)
            mirror[name] = (tuple((_data_ptr(b), b._version) for b in states[name]), host.double().tolist())

    step.fallback = fallback
    step.bytecode = bc
    step.launches = launches
    return step


def population_kernel_step(program: Program) -> Callable[..., None] | None:
    """`compile_triton_population(program)`, or None where it cannot be built (no Triton, or a
    program the bytecode does not cover)."""
    try:
        return compile_triton_population(program)
    except (Unsupported, RuntimeError):
        return None
