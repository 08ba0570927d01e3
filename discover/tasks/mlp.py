"""MLP classifier on a synthetic Gaussian-mixture problem."""

from __future__ import annotations

import torch

import math

from .base import ACTIVATIONS, SupervisedTask, population_cross_entropy

__all__ = ["MLP", "MLPLarge"]


class MLP(SupervisedTask):
    """ReLU (or GELU/tanh) MLP classifying points drawn from a mixture of Gaussian clusters.

    Each of ``classes`` classes owns ``clusters`` random centres in ``in_dim``
    dimensions, so classes are multi-modal and not linearly separable; points are
    centre + ``spread`` x Gaussian noise, so clusters overlap a little and the
    best loss is above zero. Parameters per member: ``W1 (in, h1), b1 (h1,), ...,
    W_out (h_last, classes), b_out (classes,)``.

    Example::

        task = MLP(hidden=(32, 32)); task.setup()
        params = task.init_params(range(8))      # 6 tensors, each (8, ...)
        task.train_loss(params, step=1)          # shape (8,)
    """

    name = "mlp"
    steps = 150
    summary = "ReLU MLP 16-64-64-6 on a Gaussian-cluster mixture"

    def __init__(self, in_dim: int = 16, hidden: tuple[int, ...] = (64, 64), classes: int = 6,
                 clusters: int = 3, spread: float = 0.9, n_train: int = 4096, n_val: int = 2048,
                 batch_size: int = 128, activation: str = "relu", data_seed: int = 12,
                 steps: int | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.in_dim, self.hidden, self.classes, self.clusters = in_dim, tuple(hidden), classes, clusters
        self.spread, self.n_train, self.n_val, self.batch_size = spread, n_train, n_val, batch_size
        self.activation = activation
        self.act, self.gain = ACTIVATIONS[activation]
        self.data_seed = data_seed
        if steps is not None:
            self.steps = steps

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        k = self.classes * self.clusters
        centres = torch.randn(k, self.in_dim, generator=generator)
        n = self.n_train + self.n_val
        cluster = torch.randint(0, k, (n,), generator=generator)
        x = centres[cluster] + self.spread * torch.randn(n, self.in_dim, generator=generator)
        y = cluster % self.classes          # cluster c belongs to class c mod classes
        t = self.n_train
        return {"x": x[:t], "y": y[:t], "x_val": x[t:], "y_val": y[t:]}

    def param_shapes(self) -> list[tuple[int, ...]]:
        sizes = (self.in_dim, *self.hidden, self.classes)
        shapes: list[tuple[int, ...]] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            shapes += [(a, b), (b,)]
        return shapes

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        # Fan-in normal with the activation's gain (He for ReLU) on layers fed by an
        # activation; the first layer sees unit-scale inputs, so plain LeCun there.
        out = []
        for k, shape in enumerate(self.param_shapes()):
            if len(shape) == 2:
                gain = 1.0 if k == 0 else self.gain
                out.append(torch.randn(shape, generator=generator) * (gain / math.sqrt(shape[0])))
            else:
                out.append(torch.zeros(shape))
        return out

    def _loss(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The input is shared by all members: x (B, in) @ W1 (N, in, h) broadcasts to (N, B, h).
        h = torch.matmul(x, params[0]) + params[1].unsqueeze(1)
        for k in range(2, len(params), 2):
            h = torch.baddbmm(params[k + 1].unsqueeze(1), self.act(h), params[k])
        return population_cross_entropy(h, y)


class MLPLarge(MLP):
    """Meta-validation MLP: wider, more classes and inputs, other data, longer training.

    Example::

        task = MLPLarge(); task.setup()          # 32 -> 128 -> 128 -> 10
    """

    name = "mlp_large"
    steps = 300
    summary = "ReLU MLP 32-128-128-10 on another Gaussian-cluster mixture"

    def __init__(self, **overrides) -> None:
        kw = dict(in_dim=32, hidden=(128, 128), classes=10, clusters=4, spread=1.3,
                  n_train=16384, n_val=4096, batch_size=128, data_seed=112)
        super().__init__(**{**kw, **overrides})
