"""Returned values that are themselves buffers about to be overwritten (state swaps, a state
returned as the update, the parameter returned as state) must be read before they are written.
Expected values are worked out by hand."""
import importlib.util

import pytest
import torch

import discover
from discover.compile import backend_names

# The Triton backend runs in Triton's interpreter on CPU: far slower than the others, so its cases
# of these sweeps are in the full Triton set only (python -m pytest -m triton), not the default run.
TRITON_MARKS = (pytest.mark.triton, pytest.mark.triton_full,
                pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed"))


def _marked(backend: str, *values, **kw):
    return pytest.param(backend, *values, marks=TRITON_MARKS if backend == "triton" else (), **kw)


BACKENDS = [_marked(b) for b in backend_names() if b != "auto"]


def _run(src, grads, backend):
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = discover.ProgramOptimizer([w], discover.parse(src), backend=backend)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach(), opt.state[w]


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_swap(backend):
    # new a = old b + g, new b = old a; update = lr * old b + old a
    src = "def swap(w, g, a=0, b=1, *, lr=0.5):\n    return lr * b + a, b + g, a\n"
    w, state = _run(src, [[1.0, 2.0], [3.0, 4.0]], backend)
    # step 1: a=0, b=1 -> update 0.5; a'=1+g1=(2,3), b'=0
    # step 2: a=(2,3), b=0 -> update (2,3); a''=0+g2=(3,4), b''=(2,3)
    assert w.tolist() == [-0.5 - 2.0, -0.5 - 3.0]
    assert state["a"].tolist() == [3.0, 4.0]
    assert state["b"].tolist() == [2.0, 3.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_returned_as_update(backend):
    # the update is the old m; m becomes g: w moves by the previous step's gradient
    src = "def delayed(w, g, m=0, *, lr=1.0):\n    return m, g\n"
    w, state = _run(src, [[1.0, 2.0], [3.0, 4.0]], backend)
    assert w.tolist() == [-1.0, -2.0]
    assert state["m"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_returned_as_state(backend):
    # prev keeps the parameter from before the step
    src = "def keep(w, g, prev=0, *, lr=1.0):\n    return lr * g, w\n"
    w, state = _run(src, [[1.0, 2.0], [3.0, 4.0]], backend)
    assert w.tolist() == [-4.0, -6.0]
    assert state["prev"].tolist() == [-1.0, -2.0]
