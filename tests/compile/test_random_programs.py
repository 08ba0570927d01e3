"""Random programs, made by search's own mutator from the built-ins, run the same on the C++ kernels
(fused, population) as on the reference interpreter: what search feeds them is not only the classics."""
from __future__ import annotations

import pytest
import torch

from discover import load, unparse
from discover.compile import compile_step
from discover.compile.population_torch import init_states
from discover.compile.population_kernel import Unsupported, compile_population
from _stepcheck import needs_compiler, random_programs

SHAPES = [(3, 5), (7,)]
STEPS = 2


def _start(seed: int):
    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    g = [torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    return w, g


def _run(program, backend: str, seed: int) -> list[torch.Tensor]:
    w, g = _start(seed)
    states = {s.name: [0.5] * len(w) if s.scalar else [torch.full_like(x, 0.1) for x in w] for s in program.states}
    step = compile_step(program, backend)
    for k in range(1, STEPS + 1):
        states.update(step(w, g, states, [k] * len(w), dict(program.defaults)))
    return w


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    same = (a == b) | (torch.isnan(a) & torch.isnan(b)) | ((a - b).abs() <= 1e-9 * (1 + b.abs()))
    return bool(same.all())


@needs_compiler
@pytest.mark.parametrize("seed", range(3))
def test_population_kernel_matches_reference_on_random_programs(seed):
    programs = random_programs(seed, 25)
    ran = 0
    for i, program in enumerate(programs):
        try:
            step = compile_population(program)
        except Unsupported:
            continue
        ran += 1
        expected = _run(program, "reference", i)
        w, g = _start(i)
        wp, gp = [torch.stack([x, x]) for x in w], [torch.stack([x, x]) for x in g]  # two members
        hp = {**program.defaults, "lr": torch.tensor([program.defaults["lr"]] * 2, dtype=torch.float64)}
        states = init_states(program, wp, hp)
        for s in program.states:
            for buf in states[s.name]:
                buf.fill_(0.5 if s.scalar else 0.1)
        for k in range(1, STEPS + 1):
            step(wp, gp, states, k, hp)
        for got, want in zip(wp, expected):
            assert _close(got[0], want) and _close(got[1], want), unparse(program)
    assert ran >= 20  # nearly every mutated program runs on the kernel


@needs_compiler
def test_fused_kernel_matches_reference_on_random_programs():
    for i, program in enumerate(random_programs(100, 8)):  # each one is a compiler run
        for got, want in zip(_run(program, "fused", i), _run(program, "reference", i)):
            assert _close(got, want), unparse(program)


@pytest.mark.parametrize("seed", range(3))
def test_foreach_is_bit_identical_to_reference_on_random_programs(seed):
    # the foreach step reorders pure ops (`foreach.schedule`) and computes in place into dead
    # buffers; neither may change a single bit
    for i, program in enumerate(random_programs(seed, 25)):
        for got, want in zip(_run(program, "foreach", i), _run(program, "reference", i)):
            assert bool(((got == want) | (torch.isnan(got) & torch.isnan(want))).all()), unparse(program)
