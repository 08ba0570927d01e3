"""Language-model tasks trained on random windows of stdlib text: shared data and batching."""

from __future__ import annotations

import torch

from .base import SyntheticTask, population_cross_entropy
from .charlm import VOCAB_SIZE, encode, load_text, text_modules

__all__ = ["WindowLM", "split_text", "window_starts"]


def split_text(ids: torch.Tensor, chunk: int = 512, every: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Split encoded text into a training and a held-out stream, as `CharLM` does.

    The text is cut into ``chunk``-character chunks and every ``every``-th chunk
    (the last of each group of ``every``) is held out; each stream is the
    concatenation of its chunks.

    Example::

        train, val = split_text(torch.arange(10_240))   # 9216 and 1024 ids
    """
    is_val = (torch.arange(len(ids)) // chunk) % every == every - 1
    return ids[~is_val], ids[is_val]


def window_starts(n_ids: int, window: int, batch: int, step: int, data_seed: int) -> torch.Tensor:
    """``batch`` random starts of ``window``-long windows in ``n_ids`` ids for training step ``step``.

    A function of ``(step, data_seed)`` alone (its own seeded generator), so a step
    always sees the same windows whatever ran before.

    Example::

        window_starts(1000, 33, 4, step=1, data_seed=0)   # 4 starts in [0, 967]
    """
    g = torch.Generator().manual_seed(data_seed * 1_000_003 + 7919 * int(step) + 29)
    return torch.randint(0, n_ids - window + 1, (batch,), generator=g)


class WindowLM(SyntheticTask):
    """Base of next-character models trained on windows of ``context + 1`` characters.

    Data: :func:`~discover.tasks.charlm.load_text` of ``text`` (a named source or
    module names), encoded with the fixed 97-character vocabulary (``log 97 =
    4.57`` nats at chance), cut into 512-character chunks with every 10th held out
    (:func:`split_text`). Each training step draws ``batch_size`` windows from the
    training stream at :func:`window_starts`; validation uses ``n_val`` fixed,
    evenly spaced, non-overlapping windows of the held-out stream, in forward
    passes of about ``val_tokens`` positions (bounding the ``(N, ..., V)``
    logits). Subclasses set those attributes in ``__init__`` and implement
    :meth:`logits`; the loss is the mean cross-entropy over every position of
    every window.
    """

    context: int
    batch_size: int
    text: str | tuple[str, ...] = "a"
    max_chars: int = 64_000
    n_val: int = 128
    val_tokens: int = 2048

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        text_modules(self.text)  # a clear error for an unknown source
        train, val = split_text(encode(load_text(self.max_chars, self.text)))
        w = self.context + 1
        n_windows = len(val) // w
        if n_windows < 1 or len(train) < w:
            raise ValueError(f"{self.name}: too little text ({len(train)} + {len(val)} characters) "
                             f"for windows of {w}")
        k = min(self.n_val, n_windows)
        pick = torch.arange(k) * n_windows // k
        return {"train_ids": train, "val_windows": val[: n_windows * w].view(n_windows, w)[pick]}

    def train_windows(self, step: int) -> torch.Tensor:
        """The ``(batch_size, context + 1)`` character ids of training step ``step``."""
        train = self.data["train_ids"]
        w = self.context + 1
        starts = window_starts(len(train), w, self.batch_size, step, self.data_seed).to(train.device)
        return train[starts.unsqueeze(1) + torch.arange(w, device=train.device)]

    def logits(self, params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """Per-member next-character logits ``(N, B, T, V)`` for input ids ``(B, T)``."""
        raise NotImplementedError

    def window_loss(self, params: list[torch.Tensor], windows: torch.Tensor) -> torch.Tensor:
        """Mean next-character cross-entropy ``(N,)`` over every position of ``windows`` ``(B, T + 1)``."""
        logits = self.logits(params, windows[:, :-1])
        return population_cross_entropy(logits.reshape(logits.shape[0], -1, VOCAB_SIZE),
                                        windows[:, 1:].reshape(-1))

    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        self._ensure_setup(params)
        return self.window_loss(params, self.train_windows(step))

    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        self._ensure_setup(params)
        windows, c = self.data["val_windows"], max(1, self.val_tokens // self.context)
        parts = [self.window_loss(params, windows[i:i + c]) * len(windows[i:i + c])
                 for i in range(0, len(windows), c)]
        return torch.stack(parts).sum(0) / len(windows)
