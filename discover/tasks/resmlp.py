"""Residual MLP with LayerNorm on a heavy-tailed synthetic regression problem."""

from __future__ import annotations

import math

import torch

from .base import ACTIVATIONS, SupervisedTask, population_layer_norm, population_linear

__all__ = ["ResMLP", "ResMLPLarge", "student_t"]


def student_t(shape: tuple[int, ...], df: int, generator: torch.Generator) -> torch.Tensor:
    """Standard Student-t samples with integer ``df`` degrees of freedom, from ``generator`` only.

    ``z / sqrt(chi2_df / df)`` with ``chi2_df`` a sum of ``df`` squared normals
    (``torch.distributions`` cannot take a generator). Variance ``df / (df - 2)``
    for ``df > 2``; the fourth moment is infinite for ``df <= 4``.

    Example::

        x = student_t((1000,), 3, torch.Generator().manual_seed(0))   # a few |x| > 10
    """
    z = torch.randn(shape, generator=generator)
    chi2 = torch.randn((df, *shape), generator=generator).pow(2).sum(0)
    return z / torch.sqrt(chi2 / df)


class ResMLP(SupervisedTask):
    """Pre-LayerNorm residual MLP regressing a smooth function of heavy-tailed inputs.

    Data (what sets it apart from the Gaussian-mixture ``mlp``): a regression with
    squared loss, not a classification; inputs are Student-t (``df`` = 3: finite
    variance, infinite fourth moment), so the largest inputs are 10-30x a
    feature's standard deviation, and the features' scales are log-spaced over
    ``scale_range`` (an ill-conditioned input layer); the training targets carry
    ``noise`` x Student-t noise (``noise_df`` = 3) on top, so per-example
    gradients are heavy-tailed. The clean target is a random teacher ``tanh``
    network (``teacher_hidden`` units, pre-activations scaled by
    ``teacher_gain``) of the *standardised* features (bounded, so outliers in
    ``x`` do not make outlier targets), scaled to unit variance. Validation
    measures the squared error against the clean targets, so 0 is reachable in
    principle and predicting the mean scores 1.

    Model per member: ``h = x W_in + b_in`` (``d``); ``blocks`` residual blocks
    ``h = h + W2 act(W1 LN(h) + b1) + b2`` (hidden width ``hidden``, each LayerNorm
    with its own gain and bias); a final LayerNorm and a linear head to
    ``out_dim`` outputs. Init: LeCun normal for ``W_in``, ``W1`` and the head, the
    activation's gain for ``W2`` scaled by ``1 / sqrt(blocks)`` (so the residual
    stream's variance stays bounded however many blocks), zero biases, unit
    gains.

    Example::

        task = ResMLP(); task.setup()
        params = task.init_params([0, 1])
        task.train_loss(params, step=1)          # shape (2,)
    """

    name = "resmlp"
    steps = 300
    summary = "residual MLP (2 LN blocks, d=32) regressing Student-t inputs with t noise"

    def __init__(self, in_dim: int = 16, out_dim: int = 4, d: int = 32, hidden: int = 64, blocks: int = 2,
                 teacher_hidden: int = 32, teacher_gain: float = 1.5, df: int = 3, noise_df: int = 3,
                 noise: float = 0.3, scale_range: tuple[float, float] = (0.2, 5.0), n_train: int = 8192,
                 n_val: int = 2048, batch_size: int = 128, activation: str = "gelu", data_seed: int = 23,
                 steps: int | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.in_dim, self.out_dim, self.d, self.hidden, self.blocks = in_dim, out_dim, d, hidden, blocks
        self.teacher_hidden, self.teacher_gain = teacher_hidden, teacher_gain
        self.df, self.noise_df, self.noise = df, noise_df, noise
        self.scale_range = tuple(scale_range)
        self.n_train, self.n_val, self.batch_size = n_train, n_val, batch_size
        self.activation = activation
        self.act, self.gain = ACTIVATIONS[activation]
        self.data_seed = data_seed
        if steps is not None:
            self.steps = steps

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        g, n = generator, self.n_train + self.n_val
        z = student_t((n, self.in_dim), self.df, g) / math.sqrt(self.df / (self.df - 2))  # unit variance
        lo, hi = self.scale_range
        scales = torch.logspace(math.log10(lo), math.log10(hi), self.in_dim)
        x = z * scales[torch.randperm(self.in_dim, generator=g)]
        # Teacher on the standardised features, so every feature matters whatever its scale.
        w_a = torch.randn(self.in_dim, self.teacher_hidden, generator=g) / math.sqrt(self.in_dim)
        b_a = 0.5 * torch.randn(self.teacher_hidden, generator=g)
        w_b = torch.randn(self.teacher_hidden, self.out_dim, generator=g)
        y = torch.tanh(self.teacher_gain * (z @ w_a) + b_a) @ w_b
        y = (y - y.mean(0)) / y.std(0)
        y_noisy = y + self.noise * student_t((n, self.out_dim), self.noise_df, g)
        t = self.n_train
        return {"x": x[:t], "y": y_noisy[:t], "x_val": x[t:], "y_val": y[t:]}

    def param_shapes(self) -> list[tuple[int, ...]]:
        d, f = self.d, self.hidden
        block = [(d,), (d,), (d, f), (f,), (f, d), (d,)]
        return [(self.in_dim, d), (d,), *block * self.blocks, (d,), (d,), (d, self.out_dim), (self.out_dim,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        out = []
        n_block = 6
        for k, shape in enumerate(self.param_shapes()):
            in_block = 2 <= k < 2 + n_block * self.blocks
            role = (k - 2) % n_block if in_block else None
            if len(shape) == 2:
                std = 1 / math.sqrt(shape[0])
                if role == 4:  # W2: the residual branch's output
                    std *= self.gain / math.sqrt(self.blocks)
                out.append(torch.randn(shape, generator=generator) * std)
            elif role == 0 or k == len(self.param_shapes()) - 4:  # LayerNorm gains
                out.append(torch.ones(shape))
            else:
                out.append(torch.zeros(shape))
        return out

    def _loss(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # x is shared by all members: (B, in) @ (N, in, d) broadcasts to (N, B, d).
        h = torch.matmul(x, params[0]) + params[1].unsqueeze(1)
        for blk in range(self.blocks):
            ln_g, ln_b, w1, b1, w2, b2 = params[2 + 6 * blk: 8 + 6 * blk]
            u = self.act(population_linear(population_layer_norm(h, ln_g, ln_b), w1, b1))
            h = h + population_linear(u, w2, b2)
        lnf_g, lnf_b, w_out, b_out = params[-4:]
        pred = population_linear(population_layer_norm(h, lnf_g, lnf_b), w_out, b_out)
        return (pred - y).pow(2).mean((1, 2))


class ResMLPLarge(ResMLP):
    """Validation residual MLP: other data (seed, more inputs and outputs), wider and deeper.

    Example::

        task = ResMLPLarge(); task.setup()
    """

    name = "resmlp_large"
    steps = 400
    summary = "residual MLP (3 LN blocks, d=64) on other Student-t regression data"

    def __init__(self, **overrides) -> None:
        kw = dict(in_dim=32, out_dim=8, d=64, hidden=128, blocks=3, teacher_hidden=64,
                  n_train=16384, n_val=4096, data_seed=123)
        super().__init__(**{**kw, **overrides})
