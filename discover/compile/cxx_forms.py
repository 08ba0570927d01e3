"""C++ pieces shared by the fused and population kernels, written from the op table.

- `STORAGE`: includes and the storage types (float, double, bfloat16, float16) with their
  load (``d_ld``: widen to the compute type) and store (``d_put``: round once) functions;
- `prelude`: `STORAGE` plus every helper function the ops' C++ forms call;
- `expression`: the C++ expression of one lowered instruction, from its op's form for the
  instruction's operand pattern (`discover.lang.ops.Op.cxx_form`);
- `reduction_term` / `reduction_finish`: what a reduction sums (in float64) and how it turns
  the sum into its value.

Example:
    >>> expression("div", "nt", ["k0", "v3"])     # number / tensor, as torch computes it
    '((T(1) / v3) * k0)'
    >>> reduction_finish("rms", "s", "n")
    'T(T(std::sqrt(s)) / T(std::sqrt(double(std::max<int64_t>(n, 1)))))'
"""
from __future__ import annotations

from ..lang.ops import ALL_OPS

STORAGE = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <omp.h>
#include <vector>
#if defined(__F16C__)
#include <immintrin.h>
#endif

// Storage types: every element is loaded with d_ld (widened to the compute type) and
// stored with d_put (rounded once to the storage type). float and double are their own
// compute types; bfloat16 and float16 are computed in float, as torch's fused optimizers do.
static inline float d_ld(float x) { return x; }
static inline double d_ld(double x) { return x; }
static inline void d_put(float& dst, float x) { dst = x; }
static inline void d_put(double& dst, double x) { dst = x; }

struct d_bf16 { uint16_t bits; };  // bfloat16: the high 16 bits of a float32
static inline float d_ld(d_bf16 h) {
  const uint32_t u = uint32_t(h.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
static inline void d_put(d_bf16& dst, float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  // round to nearest even: add 0x7fff plus the lowest kept bit; a carry out of the
  // mantissa bumps the exponent (so the largest finite values round to inf, as they must)
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;  // keep sign and payload, force a quiet NaN
  dst.bits = uint16_t(x != x ? nan : rounded);
}

// float16 (IEEE binary16) by bit manipulation: the conversion for CPUs without F16C (and
// the reference the tests hold F16C to). Every case is computed and one is selected, with
// no branches, so loops over it vectorize. Flush-to-zero modes cannot change the results:
// the only float subnormals that reach arithmetic are inputs that round to zero anyway.
struct d_half { uint16_t bits; };
// c ? a : b without a branch: GCC 12 turns some such ternaries into branches, which stops
// the loop from being vectorized
static inline uint32_t d_pick(bool c, uint32_t a, uint32_t b) {
  const uint32_t mask = 0u - uint32_t(c);
  return (a & mask) | (b & ~mask);
}
static inline float d_ld(d_half h) {
  const uint32_t e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
  const float tiny = float(int32_t(m)) * 0x1p-24f;  // zero or subnormal: exactly m * 2^-24, a normal float
  uint32_t small;
  std::memcpy(&small, &tiny, sizeof small);
  // normal: rebias the exponent (15 -> 127); inf/NaN: all-ones exponent, payload kept
  const uint32_t big = (uint32_t(h.bits & 0x7fffu) << 13) + (112u << 23) + d_pick(e == 0x1fu, 112u << 23, 0u);
  const uint32_t u = d_pick(e == 0, small, big) | (uint32_t(h.bits & 0x8000u) << 16);
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
static inline void d_put(d_half& dst, float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  // |x| >= 2^-14: rebias the exponent and round the 13 dropped bits to nearest even; a carry
  // bumps the exponent, so 65520 and above round to inf (0x7c00) as they must
  const uint32_t normal = std::min((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13, 0x7c00u);
  // |x| < 2^-14 (half subnormal): adding 0.5 makes the float adder round |x| to a multiple of
  // 2^-24, half's subnormal step, to nearest even; the low bits are then that multiple
  float absx;
  std::memcpy(&absx, &a, sizeof absx);
  const float shifted = absx + 0.5f;
  uint32_t sub;
  std::memcpy(&sub, &shifted, sizeof sub);
  sub -= 0x3f000000u;
  const uint32_t special = d_pick(a > 0x7f800000u, 0x7e00u | ((a >> 13) & 0x3ffu), 0x7c00u);  // quiet NaN, inf
  const uint32_t h = d_pick(a >= 0x47800000u, special, d_pick(a < 0x38800000u, sub, normal));
  dst.bits = uint16_t(h | sign);
}

// float16 blocks <-> float blocks: F16C where the CPU has it (round to nearest even, quiet
// NaN, inf kept), else the bit manipulation above
#if defined(__F16C__)
static inline void d_widen(const d_half* a, float* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(b + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(a + i))));
  for (; i < n; ++i) b[i] = _cvtsh_ss(a[i].bits);
}
static inline void d_narrow(const float* a, d_half* b, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i*)(b + i), _mm256_cvtps_ph(_mm256_loadu_ps(a + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) b[i].bits = _cvtss_sh(a[i], _MM_FROUND_TO_NEAREST_INT);
}
#else
static inline void d_widen(const d_half* a, float* b, int64_t n) { for (int64_t i = 0; i < n; ++i) b[i] = d_ld(a[i]); }
static inline void d_narrow(const float* a, d_half* b, int64_t n) { for (int64_t i = 0; i < n; ++i) d_put(b[i], a[i]); }
#endif
"""


def prelude() -> str:
    """`STORAGE` and the C++ helpers of every op (each once, in table order)."""
    helpers = dict.fromkeys(h for op in ALL_OPS.values() for h in op.cxx_helpers)
    return STORAGE + "\n" + "\n".join(helpers) + "\n"


def const(x: float) -> str:
    """A number as a C++ constant of the compute type ``T``."""
    if x != x:
        return "std::numeric_limits<T>::quiet_NaN()"
    if x in (float("inf"), float("-inf")):
        return ("-" if x < 0 else "") + "std::numeric_limits<T>::infinity()"
    return f"T({x!r})"


def expression(op: str, pattern: str, args: list[str]) -> str | None:
    """C++ for `op` on arguments `args` (already C++) whose tensors are given by `pattern`; None
    if the op has no C++ form for that pattern."""
    form = ALL_OPS[op].cxx_form(pattern)
    return None if form is None else form[1].format(*args)


def reduction_term(op: str, x: str) -> str:
    """What reduction `op` adds to its float64 sum for the value `x` (a ``double``)."""
    return ALL_OPS[op].cxx_reduce[0].format(x)


def reduction_finish(op: str, total: str, size: str) -> str:
    """Reduction `op`'s value (in ``T``) from the float64 sum `total` of `size` values."""
    return ALL_OPS[op].cxx_reduce[1].format(total, size)
