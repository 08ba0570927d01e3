"""TransformerLM against torch.nn.TransformerEncoderLayer, member by member."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from discover.tasks import charlm
from discover.tasks.transformer import TransformerLM

F64 = dict(rtol=1e-10, atol=1e-12)


def member_grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Gradients of ``loss.sum()``, split by member: ``out[i][k]`` is member ``i``'s slice of parameter ``k``."""
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=True)
    return [[g[i] for g in grads] for i in range(loss.shape[0])]


def reference_transformer(task: TransformerLM, p: list[torch.Tensor], windows: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """One member's logits and loss with torch.nn.TransformerEncoderLayer (pre-LN, GELU, causal mask)."""
    d, t = task.d_model, windows.shape[1] - 1
    x = p[0][windows[:, :-1]] + p[1][:t]
    mask = torch.nn.Transformer.generate_square_subsequent_mask(t, dtype=x.dtype)
    for layer in range(task.n_layers):
        (ln1_g, ln1_b, w_qkv, b_qkv, w_o, b_o,
         ln2_g, ln2_b, w_fc, b_fc, w_proj, b_proj) = p[2 + 12 * layer: 14 + 12 * layer]
        block = torch.nn.TransformerEncoderLayer(d, task.n_heads, dim_feedforward=w_fc.shape[1], dropout=0.0,
                                                 activation="gelu", batch_first=True, norm_first=True,
                                                 dtype=x.dtype)
        sd = {"self_attn.in_proj_weight": w_qkv.T, "self_attn.in_proj_bias": b_qkv,
              "self_attn.out_proj.weight": w_o.T, "self_attn.out_proj.bias": b_o,
              "linear1.weight": w_fc.T, "linear1.bias": b_fc, "linear2.weight": w_proj.T, "linear2.bias": b_proj,
              "norm1.weight": ln1_g, "norm1.bias": ln1_b, "norm2.weight": ln2_g, "norm2.bias": ln2_b}
        # Plain tensors in place of the module's parameters, so gradients reach ours.
        x = torch.func.functional_call(block, sd, (x,), {"src_mask": mask, "is_causal": True})
    lnf_g, lnf_b, w_out, b_out = p[-4:]
    logits = F.layer_norm(x, (d,), lnf_g, lnf_b) @ w_out + b_out
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, F64), (torch.float32, dict(rtol=2e-5, atol=2e-6))])
def test_transformer_matches_torch_nn(dtype, tol):
    task = TransformerLM(d_model=16, n_layers=2, n_heads=4, context=12, batch_size=3, max_chars=20_000)
    task.setup(dtype=dtype)
    params = task.init_params([0, 1, 2])
    with torch.no_grad():  # non-trivial LayerNorm affines and biases, so every parameter is exercised
        for k, p in enumerate(params):
            if p.dim() == 2:  # (N, size): vectors of each member
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(k), dtype=dtype))
    windows = task.train_windows(3)
    loss = task.window_loss(params, windows)
    grads = member_grads(loss, params)
    with torch.no_grad():
        logits = task.logits(params, windows[:, :-1])
    for i in range(3):
        mine = [p[i].detach().clone().requires_grad_(True) for p in params]
        ref_logits, ref = reference_transformer(task, mine, windows)
        torch.testing.assert_close(logits[i], ref_logits.detach(), **tol)
        torch.testing.assert_close(loss[i], ref, **tol)
        for g, g_ref in zip(grads[i], torch.autograd.grad(ref, mine)):
            torch.testing.assert_close(g, g_ref, **tol)


def test_transformer_is_causal_and_init_is_gpt2_scaled():
    task = TransformerLM()
    task.setup(dtype=torch.float64)
    params = task.init_params([4])
    inputs = task.train_windows(1)[:, :-1]
    changed = inputs.clone()
    changed[:, 20:] = (changed[:, 20:] + 7) % charlm.VOCAB_SIZE
    with torch.no_grad():
        a, b = task.logits(params, inputs), task.logits(params, changed)
    torch.testing.assert_close(a[:, :, :20], b[:, :, :20], **F64)  # the future never leaks back
    assert not torch.allclose(a[:, :, 20:], b[:, :, 20:])
    # Init: std 0.02 * sqrt(768 / d) on weights, / sqrt(2 n_layers) more on residual projections.
    std = 0.02 * math.sqrt(768 / task.d_model)
    tok, w_qkv, w_o = params[0][0], params[4][0], params[6][0]
    assert abs(tok.std().item() / std - 1) < 0.1 and abs(w_qkv.std().item() / std - 1) < 0.1
    assert abs(w_o.std().item() / (std / 2) - 1) < 0.15
    assert (params[2] == 1).all() and (params[3] == 0).all()   # ln1 gain and bias
