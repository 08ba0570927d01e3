"""ResMLP against a torch.nn model, and the heavy-tailed data it trains on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from discover.tasks.resmlp import ResMLP, student_t

F64 = dict(rtol=1e-10, atol=1e-12)


def member_grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Gradients of ``loss.sum()``, split by member: ``out[i][k]`` is member ``i``'s slice of parameter ``k``."""
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=True)
    return [[g[i] for g in grads] for i in range(loss.shape[0])]


class RefBlock(torch.nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.norm, self.fc1, self.fc2 = torch.nn.LayerNorm(d), torch.nn.Linear(d, hidden), torch.nn.Linear(hidden, d)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, F64), (torch.float32, dict(rtol=2e-5, atol=2e-6))])
def test_resmlp_matches_torch_nn(dtype, tol):
    task = ResMLP(blocks=3)
    task.setup(dtype=dtype)
    params = task.init_params([0, 1])
    with torch.no_grad():
        for k, p in enumerate(params):
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(k), dtype=dtype))
    idx = task.batch_indices(4, task.n_train, task.batch_size)
    x, y = task.data["x"][idx], task.data["y"][idx]
    loss = task.train_loss(params, 4)
    grads = member_grads(loss, params)
    for i in range(2):
        mine = [p[i].detach().clone().requires_grad_(True) for p in params]
        model = torch.nn.Sequential(torch.nn.Linear(task.in_dim, task.d),
                                    *[RefBlock(task.d, task.hidden) for _ in range(task.blocks)],
                                    torch.nn.LayerNorm(task.d), torch.nn.Linear(task.d, task.out_dim)).to(dtype)
        names = ["0.weight", "0.bias"]
        for b in range(task.blocks):
            names += [f"{b + 1}.norm.weight", f"{b + 1}.norm.bias", f"{b + 1}.fc1.weight", f"{b + 1}.fc1.bias",
                      f"{b + 1}.fc2.weight", f"{b + 1}.fc2.bias"]
        k = task.blocks + 1
        names += [f"{k}.weight", f"{k}.bias", f"{k + 1}.weight", f"{k + 1}.bias"]
        sd = {n: (p.T if p.dim() == 2 else p) for n, p in zip(names, mine)}
        ref = F.mse_loss(torch.func.functional_call(model, sd, (x,)), y)
        torch.testing.assert_close(loss[i], ref, **tol)
        for g, g_ref in zip(grads[i], torch.autograd.grad(ref, mine)):
            torch.testing.assert_close(g, g_ref, **tol)


def test_student_t_has_the_t3_distribution():
    x = student_t((200_000,), 3, torch.Generator().manual_seed(0)).double()
    # Closed-form CDF of Student's t with 3 degrees of freedom.
    t = torch.tensor([-5.0, -2.0, -1.0, -0.3, 0.0, 0.5, 1.5, 3.0, 8.0], dtype=torch.float64)
    u = t / math.sqrt(3)
    cdf = 0.5 + (u / (1 + u * u) + torch.atan(u)) / math.pi
    empirical = (x.unsqueeze(1) <= t).double().mean(0)
    assert (empirical - cdf).abs().max() < 0.004


def test_resmlp_data_are_heavy_tailed_and_validation_is_clean():
    task = ResMLP()
    task.setup()
    x, y, y_val = task.data["x"], task.data["y"], task.data["y_val"]
    def kurtosis(v):
        v = (v - v.mean(0)) / v.std(0)
        return v.pow(4).mean(0)

    assert (kurtosis(x) > 6).all()            # every feature far above a Gaussian's 3
    scales = x.std(0)
    assert scales.max() / scales.min() > 8    # ill-conditioned input layer
    # Clean validation targets: unit variance, Gaussian-like tails (a bounded teacher); the noisy
    # training targets reach far beyond them.
    assert abs(y_val.std().item() - 1) < 0.1 and kurtosis(y_val.flatten()) < 4
    assert y.abs().max() > 2 * y_val.abs().max()
    with torch.no_grad():
        zero_pred = [torch.zeros(p.shape) for p in (task.init_params([0]))]  # every weight 0: predicts 0
        assert abs(task.val_loss(zero_pred).item() - y_val.pow(2).mean().item()) < 1e-6
