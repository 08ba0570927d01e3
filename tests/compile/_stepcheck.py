"""Helpers shared by the compile tests: run a program on several backends side by side."""
from __future__ import annotations

import random

import pytest
import torch

from discover import ProgramOptimizer, load
from discover.compile import cxx, fused
from discover.evaluate.work import ensure_lr
from discover.search.mutate import Mutator, NoChild
from discover.search.program import prune

SHAPES = [(3, 4), (5,), (2, 2, 2), (7,), (1,)]


def run(program, backend, *, dtype=torch.float64, steps=20, skip=True, shapes=SHAPES, seed=0, dtypes=None, **hp):
    """Parameters after `steps` steps; with `skip`, some parameters have no grad on some steps,
    so steps differ between parameters of one bucket."""
    gen = torch.Generator().manual_seed(seed)
    dtypes = dtypes or [dtype] * len(shapes)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(dt))
              for s, dt in zip(shapes, dtypes)]
    opt = ProgramOptimizer(params, program, backend=backend, **hp)
    for it in range(steps):
        for j, p in enumerate(params):
            g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            p.grad = None if (skip and j > 0 and (it + j) % 3 == 0) else g
        opt.step()
    return params, opt


LOWP = [torch.bfloat16, torch.float16]
# Hyperparameters exactly representable in float32, so a float32 kernel and the float64
# reference start from the same numbers. With 0.1 the two would differ by float32 0.1's
# error, and where a result cancels to ~1e-9 (m = lerp(m, g, 0.1) with 0.9 m ~ -0.1 g) that
# flips its sign: no float32 computation can be within 1 ulp there.
DYADIC = dict(lr=2.0 ** -7, weight_decay=2.0 ** -4, beta1=0.875, beta2=1 - 2.0 ** -8, eps=2.0 ** -20,
              momentum=0.875, dampening=0.125, alpha=1 - 2.0 ** -7)


def ordered_bits(x: torch.Tensor) -> torch.Tensor:
    """16-bit floats as integers in value order (adjacent values differ by 1; +0 and -0 are 0)."""
    bits = x.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(bits < 0, -(bits & 0x7FFF), bits)


def random_programs(seed: int, n: int) -> list:
    """`n` programs from search's mutator (1-6 mutations of adamw, lion, sgd, rmsprop or nadam),
    pruned to what their update depends on; the same list for the same seed."""
    rng = random.Random(seed)
    mutator = Mutator()
    bases = [ensure_lr(load(name)) for name in ("adamw", "lion", "sgd", "rmsprop", "nadam")]
    out = []
    while len(out) < n:
        p = rng.choice(bases)
        try:
            for _ in range(rng.randint(1, 6)):
                p, _, _ = mutator.child(p, rng)
        except NoChild:
            continue
        out.append(prune(p))
    return out


def assert_close(a, b, dtype):
    for x, y in zip(a, b):
        if dtype == torch.float64:
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-13, equal_nan=True)
        else:
            torch.testing.assert_close(x, y, rtol=2e-5, atol=2e-6, equal_nan=True)


def _fused_available() -> bool:
    try:
        fused._build(fused.kernel_source(load("sgd")))
        return True
    except cxx.CompilerUnavailable:
        return False


needs_compiler = pytest.mark.skipif(not _fused_available(), reason="no C++ compiler for the fused backend")
