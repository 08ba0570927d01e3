"""Logistic regression on synthetic, nearly linearly separable data."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import SupervisedTask

__all__ = ["Logistic"]


class Logistic(SupervisedTask):
    """Binary logistic regression: weight ``(features,)`` and bias ``(1,)`` per member.

    Inputs are Gaussian with per-feature scales log-spaced from 1 to 0.1, so the
    loss is moderately ill-conditioned (feature scaling is what adaptive methods
    fix). Labels come from a random separating hyperplane with an offset, and a
    fraction ``label_noise`` of them is flipped, so the data are separable only up
    to noise and the loss stays bounded away from zero.

    Example::

        task = Logistic(); task.setup()
        w, b = task.init_params([0, 1])          # (2, 20), (2, 1)
        task.train_loss([w, b], step=1)          # shape (2,)
    """

    name = "logistic"
    steps = 100
    summary = "logistic regression, 20 log-scaled Gaussian features, 5% label noise"

    def __init__(self, features: int = 20, n_train: int = 2048, n_val: int = 1024,
                 batch_size: int = 64, label_noise: float = 0.05, data_seed: int = 11,
                 steps: int | None = None) -> None:
        self.features, self.n_train, self.n_val = features, n_train, n_val
        self.batch_size, self.label_noise, self.data_seed = batch_size, label_noise, data_seed
        if steps is not None:
            self.steps = steps

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        f, n = self.features, self.n_train + self.n_val
        scale = torch.logspace(0.0, -1.0, f)
        x = torch.randn(n, f, generator=generator) * scale
        # Undo the feature scale in the true weights so every feature carries signal.
        w_true = torch.randn(f, generator=generator) / scale / math.sqrt(f) * 3.0
        y = (x @ w_true + 0.5 > 0).float()
        flip = torch.rand(n, generator=generator) < self.label_noise
        y = torch.where(flip, 1.0 - y, y)
        t = self.n_train
        return {"x": x[:t], "y": y[:t], "x_val": x[t:], "y_val": y[t:]}

    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.features,), (1,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn(self.features, generator=generator) / math.sqrt(self.features),
                torch.zeros(1)]

    def _loss(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w, b = params
        logits = w @ x.T + b                                     # (N, B): row i uses only member i
        return F.binary_cross_entropy_with_logits(
            logits, y.expand_as(logits), reduction="none").mean(1)

