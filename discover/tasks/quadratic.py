"""Ill-conditioned noisy quadratic (a "noisy quadratic model", as in Zhang et al., 2019)."""

from __future__ import annotations

import math

import torch

from .base import SyntheticTask

__all__ = ["Quadratic"]


class Quadratic(SyntheticTask):
    """``f(w) = 1/2 (w - w*)^T H (w - w*)`` with log-spaced eigenvalues and gradient noise.

    ``H = Q diag(h) Q^T`` has eigenvalues ``h`` log-spaced from 1 down to
    ``1/condition`` and a random rotation ``Q`` (so a diagonal preconditioner
    such as Adam's cannot undo the conditioning for free). The optimum ``w*`` has
    unit-variance components in the eigenbasis *scaled by* ``1/sqrt(h)``, so every
    eigendirection starts with the same share of the loss and the slow
    directions matter. Step ``s`` sees the moved centre ``w* + eps_s`` with
    ``eps_s ~ N(0, noise^2 H^-1)``, i.e. gradient noise with covariance
    ``noise^2 H`` (minibatch noise of a well-specified model); the pool of
    centres cycles every ``n_noise`` steps. The validation loss is the true ``f``.

    Example::

        task = Quadratic(dim=50, condition=1e3); task.setup()
        params = task.init_params(range(4))      # [(4, 50)]
        task.val_loss(params)                    # tensor of shape (4,)
    """

    name = "quadratic"
    steps = 100
    summary = "noisy rotated quadratic, dim 100, condition number 3e3"

    def __init__(self, dim: int = 100, condition: float = 3e3, noise: float = 1.0,
                 n_noise: int = 512, data_seed: int = 10, steps: int | None = None) -> None:
        self.dim, self.condition, self.noise, self.n_noise = dim, condition, noise, n_noise
        self.data_seed = data_seed
        if steps is not None:
            self.steps = steps

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        d = self.dim
        # Float64 for the eigendecomposition-sized algebra, then stored in the task dtype.
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
        h = torch.logspace(0.0, -math.log10(self.condition), d, dtype=torch.float64)
        hess = (q * h) @ q.T
        w_star = q @ (torch.randn(d, generator=generator, dtype=torch.float64) / h.sqrt())
        eps = (torch.randn(self.n_noise, d, generator=generator, dtype=torch.float64)
               * (self.noise / h.sqrt())) @ q.T
        return {"hess": hess.float(), "w_star": w_star.float(), "centres": (w_star + eps).float()}

    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.dim,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn(self.dim, generator=generator)]

    def _loss(self, w: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        diff = w - centre                                        # (N, d); member rows never mix
        return 0.5 * ((diff @ self.data["hess"]) * diff).sum(1)

    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        self._ensure_setup(params)
        return self._loss(params[0], self.data["centres"][int(step) % self.n_noise])

    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        self._ensure_setup(params)
        return self._loss(params[0], self.data["w_star"])
