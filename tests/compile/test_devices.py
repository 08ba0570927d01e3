"""Buckets on other devices never reach the CPU kernels (raw pointers would be wrong there). No GPU
is needed: PyTorch's "meta" device (shapes, no data) stands in for CUDA for the routing."""
from __future__ import annotations

import warnings

import torch

from discover import ProgramOptimizer, load
from discover.compile import chunked, fused
from discover.compile.population_torch import init_states
from discover.compile.population_kernel import population_step
from discover.evaluate.work import ensure_lr


def test_optimizer_on_another_device_uses_foreach_with_one_warning(monkeypatch):
    fused._WARNED.clear()
    params = [torch.nn.Parameter(torch.empty(3000, device="meta")) for _ in range(3)]
    for p in params:
        p.grad = torch.empty(3000, device="meta")
    monkeypatch.setitem(chunked.CHUNK_BYTES, "meta", 1024 * 4)  # and large buckets are cut there too
    opt = ProgramOptimizer(params, "adamw")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            opt.step()
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "meta torch.float32 parameters use the foreach backend" in messages[0]
    assert all(opt.state[p]["m"].device.type == "meta" and opt.state[p]["step"] == 3 for p in params)


def test_population_step_on_another_device_uses_the_torch_batched_step(monkeypatch):
    import discover.compile.population_kernel as pop

    program = ensure_lr(load("adam"))
    calls = []
    real = pop.compile_batched
    monkeypatch.setattr(pop, "compile_batched", lambda p: (lambda *a: calls.append(1) or real(p)(*a)))
    w, g = torch.empty(3, 100, device="meta"), torch.empty(3, 100, device="meta")
    hp = {**program.defaults, "lr": torch.full((3,), 1e-3, device="meta")}
    population_step(program)([w], [g], init_states(program, [w], hp), 1, hp)
    assert calls == [1]
