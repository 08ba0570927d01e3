"""The :class:`Task` interface: a proxy training problem whose parameters carry a population axis.

Search scores optimizer candidates by short training runs. To make that cheap,
``N`` independent trials (program x learning rate x seed) train *together*:
every parameter tensor has a leading population dimension of size ``N``, one
forward and one backward pass per step serve all trials, and member ``i``'s
loss depends only on member ``i``'s slice of every parameter.

A task of your own is a subclass of :class:`Task` that can be built with no
arguments; pass it to search as an import path ``"mypkg.mod:MyTask"``::

    import torch
    from discover.tasks import Task

    class LeastSquares(Task):
        name, steps = "lsq", 100

        def setup(self, device="cpu", dtype=torch.float32):
            super().setup(device, dtype)          # records self.device / self.dtype
            g = torch.Generator().manual_seed(0)  # fixed data seed, never the global RNG
            self.A = torch.randn(64, 8, generator=g).to(self.device, dtype)
            self.b = torch.randn(64, generator=g).to(self.device, dtype)

        def param_shapes(self):
            return [(8,)]

        def train_loss(self, params, step):
            (w,) = params                          # (N, 8)
            rows = torch.arange(step % 4 * 16, step % 4 * 16 + 16, device=w.device)
            r = w @ self.A[rows].T - self.b[rows]  # (N, 16): member i only sees w[i]
            return r.pow(2).mean(1)

        def val_loss(self, params):
            (w,) = params
            return (w @ self.A.T - self.b).pow(2).mean(1)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch

from .schedule import lr_factor

__all__ = ["Task", "SyntheticTask", "population_cross_entropy", "population_linear",
           "population_layer_norm", "ACTIVATIONS"]


class Task(ABC):
    """A proxy training problem evaluated for a whole population of parameter sets at once.

    Subclasses implement :meth:`param_shapes`, :meth:`train_loss` and
    :meth:`val_loss`, and usually :meth:`setup` (to build data; call
    ``super().setup(device, dtype)`` from it) and :meth:`init_member` (to choose
    the initialisation). Contract:

    * ``init_params(seeds)`` returns one leaf tensor per parameter, shaped
      ``(len(seeds), *shape)``; member ``i`` comes from a generator seeded with
      ``seeds[i]`` only, so it does not depend on ``N`` or on other members.
    * ``train_loss(params, step)`` returns shape ``(N,)``; the minibatch is a
      function of ``step`` alone (the same one for every member).
    * Members are independent: the gradient of ``train_loss(...).sum()`` with
      respect to member ``i``'s slice equals the gradient of member ``i``'s loss
      computed alone. Use batched ops (``bmm``/``baddbmm``/``einsum`` with the
      population as the batch dim, grouped convolutions, ``torch.func.vmap``),
      never reductions across the population.

    Example::

        task = get_task("mlp"); task.setup("cpu")
        params = task.init_params([0, 1, 2])       # each (3, *shape)
        task.train_loss(params, step=1).shape      # torch.Size([3])
    """

    #: Short name used in logs and in ``TASKS``.
    name: str = "task"
    #: One line for task listings: model and data (a listing adds the steps and schedule).
    summary: str = ""
    #: Default number of training steps for one search evaluation.
    steps: int = 100
    #: Learning-rate schedule of a run (see `discover.tasks.schedule`): the program sees
    #: ``lr * lr_factor(step)``. Override both for a task of your own.
    schedule: str = "warmup_cosine"
    #: Fraction of the steps spent warming up (for ``warmup_cosine``).
    warmup: float = 0.1
    #: Where/how the data live; set by :meth:`setup` (``None`` until then).
    device: torch.device | None = None
    dtype: torch.dtype = torch.float32

    # -- life cycle ---------------------------------------------------------------------------

    def setup(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        """Prepare the task on ``device`` with floating dtype ``dtype``. Idempotent.

        The base implementation only records ``device`` and ``dtype``; tasks with
        data override it, build the data deterministically (a fixed data seed and a
        ``torch.Generator``, never the global RNG) and call ``super().setup(...)``.
        """
        self.device = torch.device(device)
        self.dtype = dtype

    @property
    def is_setup(self) -> bool:
        """Whether :meth:`setup` has run (so callers need not reset a chosen device)."""
        return self.device is not None

    # -- parameters ---------------------------------------------------------------------------

    @abstractmethod
    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of one member's parameters (without the population dim)."""

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        """Initial parameters of one member, drawn from ``generator`` only (CPU, float32).

        The default is LeCun-normal: tensors of rank >= 2 get ``N(0, 1/fan_in)`` with
        ``fan_in = prod(shape[:-1])`` (weights stored as ``(in, out)``), vectors and
        scalars (biases) start at zero. Override for other layouts.
        """
        out = []
        for shape in self.param_shapes():
            if len(shape) >= 2:
                fan_in = math.prod(shape[:-1])
                out.append(torch.randn(shape, generator=generator) / math.sqrt(fan_in))
            else:
                out.append(torch.zeros(shape))
        return out

    def init_params(self, seeds: Sequence[int]) -> list[torch.Tensor]:
        """Stacked initial parameters for ``len(seeds)`` members, as leaf tensors with grad.

        Each member is drawn on the CPU in float32 from ``torch.Generator().manual_seed(seed)``
        and only then moved to ``self.device``/``self.dtype``, so a seed gives the same
        start on every device and population size.

        Example::

            params = task.init_params([0, 1])   # params[k].shape == (2, *task.param_shapes()[k])
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("init_params needs at least one seed")
        if not self.is_setup:
            self.setup()
        shapes = [tuple(s) for s in self.param_shapes()]
        members = [self.init_member(torch.Generator().manual_seed(s)) for s in seeds]
        params = []
        for k, shape in enumerate(shapes):
            stacked = torch.stack([m[k] for m in members])
            if tuple(stacked.shape[1:]) != shape:
                raise ValueError(f"{self.name}: init_member gave shape {tuple(stacked.shape[1:])} "
                                 f"for parameter {k}, param_shapes() says {shape}")
            params.append(stacked.to(self.device, self.dtype).requires_grad_(True))
        return params

    def lr_factor(self, step: int, steps: int | None = None) -> float:
        """The multiplier of ``lr`` at 1-based `step` of a run of `steps` (default ``self.steps``).

        Example::

            get_task("mlp").lr_factor(1)       # warming up: 1 / warmup steps
        """
        return lr_factor(self.schedule, step, self.steps if steps is None else steps, self.warmup)

    # -- losses -------------------------------------------------------------------------------

    @abstractmethod
    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        """Per-member training loss of shape ``(N,)`` on the minibatch chosen by ``step``."""

    @abstractmethod
    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        """Per-member loss of shape ``(N,)`` on held-out data (called under ``no_grad``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, steps={self.steps})"


class SyntheticTask(Task):
    """A :class:`Task` whose data are a dict of tensors generated once from ``data_seed``.

    Subclasses implement :meth:`make_data` (CPU tensors from a seeded generator);
    ``setup`` caches them, moves them to the device (floating tensors cast to the
    task dtype) and exposes them as ``self.data``. :meth:`batch_indices` gives the
    deterministic minibatch of a step: epochs of shuffled, non-overlapping batches.
    Losses set the task up lazily on the parameters' device if nobody did.
    """

    data_seed: int = 0
    _cpu_data: dict[str, torch.Tensor] | None = None
    _key: tuple | None = None
    _perm: tuple[int, int, torch.Tensor] | None = None

    @abstractmethod
    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Build all data on the CPU from ``generator`` (seeded with ``data_seed``)."""

    def setup(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        device = torch.device(device)
        if self._key == (device, dtype):
            return  # idempotent: nothing to rebuild
        if self._cpu_data is None:
            # Generated once in float32 on the CPU, so every device/dtype sees the same data.
            self._cpu_data = self.make_data(torch.Generator().manual_seed(self.data_seed))
        self.data = {k: v.to(device, dtype) if v.is_floating_point() else v.to(device)
                     for k, v in self._cpu_data.items()}
        self._perm = None
        super().setup(device, dtype)
        self._key = (device, dtype)

    def __getstate__(self) -> dict:
        # Ship tasks to worker processes without their data: setup() regenerates the
        # same data from data_seed, which is cheaper than pickling megabytes.
        state = self.__dict__.copy()
        for k in ("data", "_cpu_data", "_key", "_perm", "device"):
            state.pop(k, None)
        return state

    def _ensure_setup(self, params: list[torch.Tensor]) -> None:
        if not self.is_setup:
            self.setup(params[0].device, params[0].dtype)

    def batch_indices(self, step: int, n: int, batch_size: int) -> torch.Tensor:
        """Indices (on ``self.device``) of the ``step``-th minibatch out of ``n`` examples.

        Step ``s`` (1-based) is batch ``(s-1) % (n // batch_size)`` of epoch
        ``(s-1) // (n // batch_size)``; each epoch is a permutation seeded by
        ``data_seed`` and the epoch number, so a step always sees the same examples.
        """
        per_epoch = max(1, n // batch_size)
        epoch, j = divmod(int(step) - 1, per_epoch)
        if self._perm is None or self._perm[:2] != (epoch, n):
            g = torch.Generator().manual_seed(self.data_seed * 1_000_003 + 7919 * epoch + 17)
            self._perm = (epoch, n, torch.randperm(n, generator=g).to(self.device))
        return self._perm[2][j * batch_size:(j + 1) * batch_size]



class SupervisedTask(SyntheticTask):
    """A synthetic task on (x, y) examples: ``data`` holds ``x``, ``y``, ``x_val``, ``y_val``.

    Subclasses write ``_loss(params, x, y) -> (N,)`` and set ``n_train`` and
    ``batch_size``; training minibatches come from `batch_indices`, and
    validation runs in chunks of ``val_chunk`` examples to bound activation memory.
    """

    n_train: int
    batch_size: int
    val_chunk: int | None = None

    def _loss(self, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        self._ensure_setup(params)
        idx = self.batch_indices(step, self.n_train, self.batch_size)
        return self._loss(params, self.data["x"][idx], self.data["y"][idx])

    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        self._ensure_setup(params)
        x, y = self.data["x_val"], self.data["y_val"]
        chunk = self.val_chunk or len(y)
        parts = [self._loss(params, x[i:i + chunk], y[i:i + chunk]) * len(y[i:i + chunk])
                 for i in range(0, len(y), chunk)]
        return torch.stack(parts).sum(0) / len(y)

#: Hidden-layer nonlinearities by name, with the init gain that keeps activations at unit scale.
#: (On this CPU build ``torch.tanh`` measured ~10x slower than ``relu``/``gelu``, so the
#: fast tasks default to ``relu``.)
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "relu": (torch.relu, math.sqrt(2.0)),
    "gelu": (torch.nn.functional.gelu, math.sqrt(2.0)),
    "tanh": (torch.tanh, 1.0),
}


def population_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member: ``logits`` ``(N, B, C)``, shared ``targets`` ``(B,)`` -> ``(N,)``.

    Example::

        population_cross_entropy(torch.zeros(3, 5, 4), torch.zeros(5, dtype=torch.long))  # log(4) x3
    """
    logp = torch.log_softmax(logits, dim=-1)
    idx = targets.view(1, -1, 1).expand(logits.shape[0], -1, 1)
    return -logp.gather(-1, idx).squeeze(-1).mean(1)


def population_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x[i] @ weight[i] + bias[i]`` for every member ``i`` in one batched matmul.

    ``x`` is ``(N, ..., in)``, ``weight`` ``(N, in, out)``, ``bias`` ``(N, out)`` or
    ``None``; returns ``(N, ..., out)``.

    Example::

        population_linear(torch.ones(3, 5, 2), torch.ones(3, 2, 4), torch.zeros(3, 4))  # (3, 5, 4) of 2s
    """
    n, d_in = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, d_in)
    out = torch.bmm(flat, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, weight)
    return out.view(*x.shape[:-1], weight.shape[-1])


def population_layer_norm(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor,
                          eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dim with a gain and bias of each member's own.

    ``x`` is ``(N, ..., d)``, ``gain`` and ``bias`` ``(N, d)``; member ``i`` gets
    ``torch.nn.functional.layer_norm(x[i], (d,), gain[i], bias[i], eps)``. The
    normalisation itself has no parameters, so it runs as one fused ``layer_norm``
    over the whole population and only the affine part is per member.

    Example::

        y = population_layer_norm(torch.randn(2, 4, 8), torch.ones(2, 8), torch.zeros(2, 8))
        y.mean(-1).abs().max() < 1e-6    # tensor(True)
    """
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    x_hat = torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps)
    return torch.addcmul(bias.view(shape), x_hat, gain.view(shape))
