"""RNNLM (population GRU with a hand-written BPTT) against torch.nn.GRU, member by member."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from discover.tasks import charlm
from discover.tasks.rnn import RNNLM

F64 = dict(rtol=1e-10, atol=1e-12)


def member_grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Gradients of ``loss.sum()``, split by member: ``out[i][k]`` is member ``i``'s slice of parameter ``k``."""
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=True)
    return [[g[i] for g in grads] for i in range(loss.shape[0])]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, F64), (torch.float32, dict(rtol=2e-5, atol=2e-6))])
def test_rnn_matches_torch_nn_gru(dtype, tol):
    task = RNNLM(emb=8, hidden=12, context=10, batch_size=3, max_chars=20_000)
    task.setup(dtype=dtype)
    params = task.init_params([0, 1, 2])
    with torch.no_grad():
        params[3].mul_(4.0)  # large recurrent weights: saturated gates are tested too
    windows = task.train_windows(5)
    loss = task.window_loss(params, windows)
    grads = member_grads(loss, params)
    with torch.no_grad():
        logits = task.logits(params, windows[:, :-1])                    # (N, B, T, V)
    for i in range(3):
        emb, w_ih, b_ih, w_hh, b_hh, w_out, b_out = [p[i].detach().clone().requires_grad_(True) for p in params]
        gru = torch.nn.GRU(task.emb, task.hidden, batch_first=True, dtype=dtype)
        weights = {"weight_ih_l0": w_ih.T, "weight_hh_l0": w_hh.T, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
        out, _ = torch.func.functional_call(gru, weights, (emb[windows[:, :-1]],))  # zero initial state
        ref_logits = out @ w_out + b_out
        ref = F.cross_entropy(ref_logits.reshape(-1, charlm.VOCAB_SIZE), windows[:, 1:].reshape(-1))
        torch.testing.assert_close(logits[i], ref_logits.detach(), **tol)
        torch.testing.assert_close(loss[i], ref, **tol)
        ref_grads = torch.autograd.grad(ref, [emb, w_ih, b_ih, w_hh, b_hh, w_out, b_out])
        for g, g_ref in zip(grads[i], ref_grads):
            torch.testing.assert_close(g, g_ref, **tol)


def test_rnn_init_is_torch_default():
    task = RNNLM()
    emb, w_ih, b_ih, w_hh, b_hh, w_out, b_out = (p[0] for p in task.init_params([0]))
    bound = 1 / math.sqrt(task.hidden)
    for p in (w_ih, b_ih, w_hh, b_hh, w_out, b_out):
        assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound  # uniform(-bound, bound)
    assert abs(emb.std().item() - 1) < 0.1
