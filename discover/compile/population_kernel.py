"""The population kernel: search's batched step without a compiler run per candidate.

Search trains every candidate on slices of population tensors (``(n, *shape)``,
one member per trial, see `discover.compile.population_torch`), and every candidate is a
new program. Building a C++ kernel per program, as the fused backend does, would
cost most of a second of compiler time per candidate, more than a candidate's whole
update time on the default proxy tasks. So the population path compiles **one**
kernel, once per machine: a small block interpreter. A program becomes bytecode
(the lowered SSA of its tensor part, registers reused by liveness); the kernel
walks each member's chunk of each parameter in blocks of `BLOCK` elements, runs
every instruction over the block (a tight vectorized loop on L1-resident
registers), and writes the new state and ``w - update`` at the end of the block.
That is one pass over memory with no temporaries, like the fused kernel, and the
per-op formulas are the op table's C++ forms (`discover.compile.cxx_forms`), as in
the fused kernel, so the two agree to round-off with the reference.

Scalars (bias corrections, per-member learning rates, scalar state) come from
the same scalar prologue as the other backends, computed in float64 once per
distinct member setting per step, and reach the kernel as a ``double`` table
(one row per member): hyperparameters and ``step`` are runtime values.

Per-tensor reductions (``norm``/``rms``/``mean``, per member and parameter) add a
pass over the unit's memory per level, summing in float64 in a fixed order, as
the fused kernel does. Falls back to the torch batched step (`compile_batched`)
for scalar state computed from a reduction (it would differ between parameters),
non-CPU or non-float32/64 tensors, non-contiguous slices, and machines without
a C++ compiler; `population_step` makes that
choice from the program alone, so a given program always takes the same path.

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

import ctypes
from array import array
from typing import Any, Mapping, Sequence

import torch

from ..lang.ir import Program
from . import cxx
from .population_torch import BatchedStep, compile_batched
from ..lang.ops import ALL_OPS
from . import cxx_forms
from .lower import (PD, T, Instr, ReductionPass, Val, distinct, is_staged, lower, prologue, reduction_passes,
                    scalar_state_sources)

BLOCK = 256  # elements per block: ~20 float registers of 1 KB stay in L1
_PARALLEL_MIN = 1 << 16  # elements per call below which one thread is faster than waking others

# --------------------------------------------------------------------------- the interpreter (C++)

# Opcodes: one per C++ form of every elementwise op of the table (an op whose formula depends on
# which operands are numbers, as ``c / tensor`` does in torch, has one per form); each reduction
# has one opcode that adds its terms to an accumulator and one that finishes the sum.
OPCODES: dict[tuple[str, str], int] = {
    (name, key): i for i, (name, key) in enumerate(
        (name, key) for name, op in ALL_OPS.items() if not op.reduction for key, _ in op.cxx_forms())}
_REDUCTIONS = [name for name, op in ALL_OPS.items() if op.reduction]
_ACCUMULATE, _FINISH = -100, -200  # opcode of reduction j: _ACCUMULATE - j and _FINISH - j


def member_hparams(names: Sequence[str], hparams: Mapping[str, Any], n: int) -> list[tuple[float, ...]]:
    """Each of the `n` members' hyperparameters `names` as floats (a tensor holds one per member)."""
    cols = []
    for name in names:
        v = hparams[name]
        cols.append([float(x) for x in v.tolist()] if isinstance(v, torch.Tensor) else [float(v)] * n)
    return list(zip(*cols)) if cols else [()] * n


def member_constants(bc: "Bytecode", hparams: Mapping[str, Any], scalars: list[list[float]],
                     step: int, n: int) -> list[list[float]]:
    """Each of the `n` members' row of the interpreter's constant table: `bc`'s scalar prologue
    of its hyperparameters and scalar states `scalars`, then `bc.tail`; computed once per distinct
    set of values (members of one candidate share them), for the C++ and the Triton interpreters."""
    pre, tail, hp_rows = bc.prologue, bc.tail, member_hparams(bc.hp_names, hparams, n)
    memo: dict = {}
    rows = []
    for i, hp in enumerate(hp_rows):
        key = distinct(hp + tuple(col[i] for col in scalars))
        row = memo.get(key)
        if row is None:
            row = memo[key] = list(pre(*hp, step, *(col[i] for col in scalars))) + tail
        rows.append(row)
    return rows


def opcode(op: str, pattern: str) -> int:
    """The opcode of `op` on operands of `pattern` (``"ts"``: a tensor, then a number)."""
    form = ALL_OPS[op].cxx_form(pattern)
    if form is None or (op, form[0]) not in OPCODES:
        raise Unsupported(f"op {op!r} on operands {pattern!r}")
    return OPCODES[(op, form[0])]


def _interpreter_source() -> str:
    cases = []
    run = {1: "un(len, o, A, sa, [](T x)", 2: "bin(len, o, A, sa, B, sb, [](T x, T y)",
           3: "ter(len, o, A, sa, B, sb, C, sc, [](T x, T y, T z)"}
    for (name, key), code in OPCODES.items():
        op = ALL_OPS[name]
        expr = dict(op.cxx_forms())[key].format(*"xyz"[:op.arity])
        cases.append(f"  case {code}: {run[op.arity]} {{ return {expr}; }}); break;  // {name} {key}")
    accumulate = [f"    case {_ACCUMULATE - j}: for (int64_t i = 0; i < len; ++i) "
                  f"s += {cxx_forms.reduction_term(name, 'double(A[i])')}; break;  // {name}"
                  for j, name in enumerate(_REDUCTIONS)]
    finish = [f"    case {_FINISH - j}: *o = {cxx_forms.reduction_finish(name, 'acc[a]', 'size')}; break;  // {name}"
              for j, name in enumerate(_REDUCTIONS)]
    return (_INTERP.replace("OP_CASES", "\n".join(cases)).replace("ACCUMULATE_CASES", "\n".join(accumulate))
            .replace("FINISH_CASES", "\n".join(finish)).replace("BLOCK_SIZE", str(BLOCK))
            .replace("PARALLEL_MIN", str(_PARALLEL_MIN)).replace("ACC_LAST", str(_ACCUMULATE - len(_REDUCTIONS)))
            .replace("FIN_FIRST", str(_FINISH)))


_INTERP = cxx_forms.prelude() + r"""
#include <vector>
// A block interpreter for programs' tensor parts (generated by discover; the same for every program).
// Operand x >= 0: tensor slot x (inputs first, then registers); x < 0: scalar -1 - x of the unit's row
// (the member's scalars, then per-tensor values). An instruction is 5 ints: opcode, destination, a, b, c.
// Opcode -1 stores a into input slot dst; -100 - j adds the terms of reduction j of a to accumulator dst;
// -200 - j turns accumulator a into reduction j's value in scalar dst; -10 n starts a pass of the next n
// instructions.
template <typename T, typename F> static inline void un(int64_t n, T* o, const T* a, int sa, F f) {
  if (sa) { for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]); }
  else { const T v = f(a[0]); for (int64_t i = 0; i < n; ++i) o[i] = v; }
}
template <typename T, typename F> static inline void bin(int64_t n, T* o, const T* a, int sa, const T* b, int sb, F f) {
  if (sa && sb) { for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]); }
  else if (sa) { const T y = b[0]; for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], y); }
  else if (sb) { const T x = a[0]; for (int64_t i = 0; i < n; ++i) o[i] = f(x, b[i]); }
  else { const T v = f(a[0], b[0]); for (int64_t i = 0; i < n; ++i) o[i] = v; }
}
template <typename T, typename F> static inline void ter(int64_t n, T* o, const T* a, int sa, const T* b, int sb,
                                                         const T* c, int sc, F f) {
  if (sa && sb && !sc) { const T z = c[0]; for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i], z); }
  else if (sa && sb && sc) { for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i], c[i]); }
  else { for (int64_t i = 0; i < n; ++i) o[i] = f(a[i * sa], b[i * sb], c[i * sc]); }
}

template <typename T>
static inline void exec(int32_t op, T* o, int64_t len, const T* A, int sa, const T* B, int sb, const T* C, int sc) {
  switch (op) {
  case -1: un(len, o, A, sa, [](T x) { return x; }); break;  // store
OP_CASES
  default: break;
  }
}

// One unit: one member's chunk of one parameter. The code is a sequence of segments:
// ``-10 n``: the next n instructions run over every block of the unit (a pass over memory);
// any other instruction runs once, on scalars (finishing reductions, per-tensor values).
template <typename T>
static void unit(const int32_t* code, int64_t ncode, int64_t nin, int64_t nslots, T* const* in, int64_t size,
                 T* kl, double* acc, T* regs) {
  T* slot[nslots];
  for (int64_t j = nin; j < nslots; ++j) slot[j] = regs + (j - nin) * BLOCK_SIZE;
  for (int64_t pc = 0; pc < ncode;) {
    if (code[pc] == -10) {  // a pass over the unit's blocks
      const int64_t begin = pc + 5, end = begin + 5 * int64_t(code[pc + 1]);
      for (int64_t i0 = 0; i0 < size; i0 += BLOCK_SIZE) {
        const int64_t len = std::min<int64_t>(BLOCK_SIZE, size - i0);
        for (int64_t j = 0; j < nin; ++j) slot[j] = in[j] + i0;
        for (int64_t q = begin; q < end; q += 5) {
          const int32_t op = code[q], d = code[q + 1], a = code[q + 2], b = code[q + 3], c = code[q + 4];
          const T* A = a >= 0 ? slot[a] : kl + (-1 - a);
          if (op <= -100 && op > ACC_LAST) {  // accumulate a reduction's terms in double, in a fixed order
            double s = 0;
            switch (op) {
ACCUMULATE_CASES
            default: break;
            }
            acc[d] += s;
            continue;
          }
          exec<T>(op, slot[d], len, A, a >= 0, b >= 0 ? slot[b] : kl + (-1 - b), b >= 0,
                  c >= 0 ? slot[c] : kl + (-1 - c), c >= 0);
        }
      }
      pc = end;
      continue;
    }
    const int32_t op = code[pc], d = code[pc + 1], a = code[pc + 2], b = code[pc + 3], c = code[pc + 4];
    T* o = kl + (-1 - d);  // scalar destinations are columns of the unit's row
    if (op <= FIN_FIRST) {  // finish a reduction
      switch (op) {
FINISH_CASES
      default: break;
      }
    } else exec<T>(op, o, 1, kl + (-1 - a), 0, kl + (-1 - b), 0, kl + (-1 - c), 0);
    pc += 5;
  }
}

template <typename T>
static void run(const int32_t* code, int64_t ncode, int64_t nin, int64_t nregs, int64_t nparams, int64_t nmembers,
                void* const* base, const int64_t* member_numel, const double* kd, int64_t nk, int64_t nacc,
                int64_t nthreads) {
  const int64_t nslots = nin + nregs;
  std::vector<T> k(nmembers * nk + 1);
  for (int64_t i = 0; i < nmembers * nk; ++i) k[i] = (T)kd[i];
  int64_t total = 0;
  for (int64_t p = 0; p < nparams; ++p) total += member_numel[p] * nmembers;
  const int64_t nunits = nparams * nmembers;
  #pragma omp parallel num_threads(nthreads) if (nthreads > 1 && total >= PARALLEL_MIN)
  {
    std::vector<T> regs(nregs * BLOCK_SIZE + 1), kl(nk + 1);
    std::vector<double> acc(nacc + 1);
    std::vector<T*> in(nin + 1);
    #pragma omp for schedule(static)
    for (int64_t u = 0; u < nunits; ++u) {
      const int64_t p = u / nmembers, m = u % nmembers, size = member_numel[p];
      for (int64_t j = 0; j < nin; ++j) in[j] = (T*)base[p * nin + j] + m * size;
      std::copy(k.data() + m * nk, k.data() + (m + 1) * nk, kl.data());  // the member's scalars, then
      std::fill(acc.begin(), acc.end(), 0.0);                           // this unit's own
      unit<T>(code, ncode, nin, nslots, in.data(), size, kl.data(), acc.data(), regs.data());
    }
  }
}

extern "C" void discover_population_f32(const int32_t* code, int64_t ncode, int64_t nin, int64_t nregs, int64_t nparams,
    int64_t nmembers, void* const* base, const int64_t* member_numel, const double* k, int64_t nk, int64_t nacc,
    int64_t nthreads) {
  run<float>(code, ncode, nin, nregs, nparams, nmembers, base, member_numel, k, nk, nacc, nthreads);
}
extern "C" void discover_population_f64(const int32_t* code, int64_t ncode, int64_t nin, int64_t nregs, int64_t nparams,
    int64_t nmembers, void* const* base, const int64_t* member_numel, const double* k, int64_t nk, int64_t nacc,
    int64_t nthreads) {
  run<double>(code, ncode, nin, nregs, nparams, nmembers, base, member_numel, k, nk, nacc, nthreads);
}
"""

_ARGS = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64]


_FAILED: list[Exception] = []  # a failed build is not retried for every candidate of a search


def interpreter() -> ctypes.CDLL:
    """The interpreter library (built once per machine; raises `cxx.CompilerUnavailable`)."""
    if _FAILED:
        raise cxx.CompilerUnavailable(str(_FAILED[0]))
    try:
        return cxx.build(_interpreter_source(), {"discover_population_f32": (_ARGS, None),
                                                 "discover_population_f64": (_ARGS, None)}, prefix="population")
    except (cxx.CompilerUnavailable, OSError) as exc:
        _FAILED.append(exc)
        raise cxx.CompilerUnavailable(str(exc)) from exc


# --------------------------------------------------------------------------- program -> bytecode


class Unsupported(Exception):
    """The program has a part the interpreter does not run (the message says which)."""


class Bytecode:
    """A program's tensor part as interpreter instructions.

    Slots ``0..nin-1`` are the inputs in memory (``w``, then ``g`` if used, then tensor
    states); registers follow. Scalars are columns of the unit's row: the prologue's
    outputs (`k_vals`), the per-tensor values of reductions (`pd_vals`, filled in by the
    kernel), then the constants the code reads (`consts`).
    The code is one pass over memory per level of reduction (each followed by the scalar
    code that finishes it), then the body pass that computes and stores everything.
    """

    def __init__(self, program: Program) -> None:
        low = lower(program)
        if is_staged(low):  # torch calls per member: the torch batched step runs them
            raise Unsupported("staged ops (matrix, row/column or group ops)")
        self.low = low
        pro = prologue(low)
        self.prologue = pro.fn  # the scalar prologue, run on the host per distinct member setting
        self.k_vals = pro.outputs
        self.k_col = {v.id: j for j, v in enumerate(self.k_vals)}
        self.pd_vals = [i.dst for i in low.instrs if i.dst.level == PD]
        self.pd_col = {v.id: len(self.k_vals) + j for j, v in enumerate(self.pd_vals)}
        self.consts: list[float] = []  # columns after the prologue's and the reductions'
        for (s, _), f in zip(low.states, low.returns[1:]):
            if s.scalar and isinstance(f, Val) and f.level == PD:  # it would differ between parameters
                raise Unsupported(f"scalar state '{s.name}' computed from a reduction")
        w, g = low.inputs["w"], low.inputs.get("g")
        self.tensor_states = [(s, v) for s, v in low.states if not s.scalar]
        inputs = [w] + ([g] if g is not None else []) + [v for _, v in self.tensor_states]
        self.uses_g = g is not None
        self.nin = len(inputs)
        self.slot = {v.id: j for j, v in enumerate(inputs)}
        self.code: list[int] = []
        self.nregs = 0
        self.nacc = 0
        for rp in reduction_passes(low):
            self._emit_reduction_pass(rp)
        self._emit_body()
        self.ncols = len(self.k_vals) + len(self.pd_vals) + len(self.consts)
        # what a step needs on the host, for the C++ and the Triton interpreter alike
        self.hp_names = low.program.hparam_names
        self.scalar_names = [s.name for s, _ in low.states if s.scalar]
        self.scalar_out = scalar_state_sources(low, self.k_col)
        self.tensor_state_names = [s.name for s, _ in self.tensor_states]
        self.tail = [0.0] * len(self.pd_vals) + self.consts  # the kernel fills in the reductions' columns

    # ---------------------------------------------------------------- operands
    def _scalar(self, a: Any) -> int:
        """The (negative) operand of a number: a prologue or reduction column, or a constant's."""
        if isinstance(a, Val):
            return -1 - (self.pd_col[a.id] if a.level == PD else self.k_col[a.id])
        self.consts.append(a)
        return -1 - (len(self.k_vals) + len(self.pd_vals) + len(self.consts) - 1)

    def _operand(self, a: Any, regs: dict[int, int]) -> int:
        if isinstance(a, Val) and a.level == T:
            return regs[a.id] if a.id in regs else self.slot[a.id]
        return self._scalar(a)

    def _args(self, ins: Instr, regs: dict[int, int]) -> list[int]:
        return [self._operand(a, regs) for a in ins.args] + [0] * (3 - len(ins.args))

    # ---------------------------------------------------------------- emission
    def _emit_loop(self, instrs: list, sinks: list[tuple[int, int, Any]], stores: list[tuple[int, Any]],
                   update: Any = None) -> None:
        """One pass over memory: `instrs` (tensor level, in order), then `sinks` (accumulate
        opcode, accumulator, value), then the `stores` (input slot, value) and, for the body,
        ``w - update`` into w. Registers are reused once their value is dead."""
        start = len(self.code)
        self.code += [-10, 0, 0, 0, 0]
        end = len(instrs) + 1
        last: dict[int, int] = {}
        for k, ins in enumerate(instrs):
            for a in ins.args:
                if isinstance(a, Val):
                    last[a.id] = k
        for v in [v for _, _, v in sinks] + [v for _, v in stores] + [update]:
            if isinstance(v, Val):
                last[v.id] = end
        regs: dict[int, int] = {}
        free: list[int] = []
        count = 0

        def alloc() -> int:
            nonlocal count
            if free:
                return free.pop()
            count += 1
            return self.nin + count - 1

        for k, ins in enumerate(instrs):
            args = self._args(ins, regs)
            op = opcode(ins.op, ins.pattern)
            dying = {a.id for a in ins.args if isinstance(a, Val) and a.id in regs and last.get(a.id) == k}
            free += [regs[i] for i in sorted(dying)]  # a dying argument's register can hold the result
            regs[ins.dst.id] = dst = alloc()
            self.code += [op, dst, *args]
        for op, acc, v in sinks:
            self.code += [op, acc, self._operand(v, regs), 0, 0]
        # a store whose source is an input slot is copied to a register first: that input may
        # itself be overwritten by an earlier store of the same block (states swapped)
        resolved = []
        for slot, f in stores:
            if isinstance(f, Val) and f.level == T and f.id not in regs:
                r = alloc()
                self.code += [opcode("copy", "t"), r, self.slot[f.id], 0, 0]
                resolved.append((slot, r))
            else:
                resolved.append((slot, self._operand(f, regs)))
        if update is not None:
            w_new = alloc()
            pattern = "tt" if isinstance(update, Val) and update.level == T else "ts"
            self.code += [opcode("sub", pattern), w_new, 0, self._operand(update, regs), 0]
            resolved.append((0, w_new))
        for slot, src in resolved:
            self.code += [-1, slot, src, 0, 0]
        self.code[start + 1] = (len(self.code) - start - 5) // 5
        self.nregs = max(self.nregs, count)

    def _emit_reduction_pass(self, rp: ReductionPass) -> None:
        accs = list(range(self.nacc, self.nacc + len(rp.reductions)))
        self.nacc += len(rp.reductions)
        self._emit_loop(rp.inputs, [(_ACCUMULATE - _REDUCTIONS.index(i.op), acc, i.args[0])
                                    for i, acc in zip(rp.reductions, accs)], [])
        for ins, acc in zip(rp.reductions, accs):  # finish the sums, then what this pass computes from them
            self.code += [_FINISH - _REDUCTIONS.index(ins.op), -1 - self.pd_col[ins.dst.id], acc, 0, 0]
        for ins in rp.after:
            self.code += [opcode(ins.op, ins.pattern), -1 - self.pd_col[ins.dst.id], *self._args(ins, {})]

    def _emit_body(self) -> None:
        low = self.low
        update, *finals = low.returns
        stores = [(self.slot[v.id], f) for (s, v), f in zip(low.states, finals)
                  if not s.scalar and not (isinstance(f, Val) and f.id == v.id)]
        self._emit_loop([i for i in low.instrs if i.dst.level == T], [], stores, update)


# --------------------------------------------------------------------------- the step

_data_ptr = torch.Tensor.data_ptr
_numel = torch.Tensor.numel


def compile_population(program: Program) -> BatchedStep:
    """The interpreter step for `program` (same contract as `compile_batched`'s step).

    Raises `Unsupported` for programs it cannot run and `cxx.CompilerUnavailable` without a
    compiler; `population_step` catches both and falls back.
    """
    bc = Bytecode(program)
    lib = interpreter()
    fns = {torch.float32: lib.discover_population_f32, torch.float64: lib.discover_population_f64}
    fallback = compile_batched(program)
    code = array("i", bc.code)
    nk = bc.ncols

    def step(params: list, grads: list, states: dict, step: int, hparams: Mapping[str, Any]) -> None:
        if not params:
            return
        p0 = params[0]
        n = p0.shape[0]
        fn = fns.get(p0.dtype)
        lists = [params, grads] if bc.uses_g else [params]
        lists += [states[name] for name in bc.tensor_state_names]
        sizes = [_numel(p) for p in params]
        if fn is None or not cxx.raw_pointers_safe(lists, p0.dtype):
            return fallback(params, grads, states, step, hparams)
        scal = [[float(x) for x in states[name][0].reshape(n).tolist()] for name in bc.scalar_names]
        rows = member_constants(bc, hparams, scal, step, n)
        k = array("d", [x for r in rows for x in r]) if nk else array("d", [0.0])
        base = array("q", [_data_ptr(t) for t in zip(*lists) for t in t])
        member_numel = array("q", [s // n for s in sizes])
        fn(code.buffer_info()[0], len(code), bc.nin, bc.nregs, len(params), n, base.buffer_info()[0],
           member_numel.buffer_info()[0], k.buffer_info()[0], nk, bc.nacc, torch.get_num_threads())
        for name, src in bc.scalar_out:
            vals = torch.tensor([r[src] if isinstance(src, int) else src for r in rows], dtype=torch.float64)
            for buf in states[name]:
                buf.copy_(vals.view(buf.shape))

    step.fallback = fallback
    step.bytecode = bc
    return step


def population_step(program: Program) -> BatchedStep:
    """The fastest batched step available for `program`: the interpreter, else `compile_batched`.

    Example:
        >>> from discover import load
        >>> step = population_step(load("adam"))
        >>> callable(step)
        True
    """
    try:
        return compile_population(program)
    except (Unsupported, cxx.CompilerUnavailable, OSError):
        return compile_batched(program)
