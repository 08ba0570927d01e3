"""Which stdlib module is this line from? Hashed character n-grams: sparse, Zipf-like inputs."""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .base import ACTIVATIONS, SyntheticTask, population_cross_entropy
from .charlm import encode, module_doc, module_source, text_modules

__all__ = ["BagOfWords", "BagOfWordsC", "module_lines", "hashed_ngrams"]

# Universal hashing ((a * code + b) mod p) mod buckets with a Mersenne prime: exact in int64
# (code < 98**4 < 2**27 and a < 2**31), and the same on every platform and Python run
# (Python's own str hash is salted per process).
_P, _A, _B = 2**31 - 1, 1_103_515_245, 12_345


def module_lines(mod: str, min_chars: int = 8, max_chars: int = 120) -> list[str]:
    """The distinct stripped lines of at least ``min_chars`` characters of stdlib module ``mod``.

    Reads the source (:func:`~discover.tasks.charlm.module_source`); without one,
    the docstring's lines; without that (``python -OO``), the module's attribute
    names, one per line. Lines are cut to ``max_chars`` and keep their order of
    first appearance.

    Example::

        module_lines("bisect")[1]   # 'def insort_right(a, x, lo=0, hi=None, *, key=None):'
    """
    text = module_source(mod) or module_doc(mod)
    if text is None:
        try:
            text = "\n".join(sorted(dir(importlib.import_module(mod))))
        except ImportError:
            text = ""
    lines = (line.strip()[:max_chars] for line in text.splitlines())
    return list(dict.fromkeys(line for line in lines if len(line) >= min_chars))


def hashed_ngrams(lines: Sequence[str], buckets: int, ngrams: tuple[int, int] = (1, 4)
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hashed character n-gram features of ``lines`` as CSR ``(crow, col, value)`` arrays.

    Every n-gram with ``ngrams[0] <= n <= ngrams[1]`` (characters mapped by
    :func:`~discover.tasks.charlm.encode`) is hashed into one of ``buckets``
    columns; a line's row holds its counts divided by their Euclidean norm (unit
    rows whatever the line's length). Columns within a row are sorted.

    Example::

        crow, col, val = hashed_ngrams(["ab", "b"], 64, (1, 1))
        crow.tolist()   # [0, 2, 3]: 'ab' has 2 unigrams, 'b' one
    """
    lo, hi = ngrams
    # All lines as one id stream with each position's line number; an n-gram is kept where
    # its first and last characters lie on the same line.
    ids = encode("".join(lines))
    line_of = torch.repeat_interleave(torch.arange(len(lines)), torch.tensor([len(s) for s in lines],
                                                                              dtype=torch.long))
    rows, cols = [], []
    for n in range(lo, hi + 1):
        if n > len(ids):
            break
        starts = line_of[: len(ids) - n + 1]
        valid = starts == line_of[n - 1:]
        # Base-98 code with digits id+1 (never 0), so n-grams of different lengths never collide.
        code = ((ids.unfold(0, n, 1) + 1) * (98 ** torch.arange(n))).sum(-1)[valid]
        rows.append(starts[valid])
        cols.append((code * _A + _B) % _P % buckets)
    rows_t = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    cols_t = torch.cat(cols) if cols else torch.zeros(0, dtype=torch.long)
    # Count each (line, bucket) pair; unique() sorts the keys, so rows come out in CSR order.
    key, count = torch.unique(rows_t * buckets + cols_t, return_counts=True)
    r, c, v = key // buckets, key % buckets, count.float()
    norm = torch.zeros(len(lines)).index_add_(0, r, v * v).sqrt()
    crow = torch.zeros(len(lines) + 1, dtype=torch.long)
    crow[1:] = torch.bincount(r, minlength=len(lines)).cumsum(0)
    return crow, c, v / norm[r]


def _gather_rows(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, rows: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Columns, values, row numbers (0..len(rows)-1) and row offsets of CSR ``rows``, concatenated."""
    start, length = crow[rows], crow[rows + 1] - crow[rows]
    offsets = torch.zeros_like(length)
    offsets[1:] = length.cumsum(0)[:-1]
    pos = torch.repeat_interleave(start - offsets, length) + torch.arange(int(length.sum()), device=crow.device)
    row = torch.repeat_interleave(torch.arange(len(rows), device=crow.device), length)
    return col[pos], val[pos], row, offsets


class _PopulationSparseMatmul(torch.autograd.Function):
    """``out[i] = X @ emb[i]`` for a sparse ``X`` shared by all members, as two ``embedding_bag`` calls.

    Forward: one bag per (member, row of ``X``) over the stacked table
    ``emb.view(N * D, H)``. Backward: the same with ``X`` transposed (one bag per
    (member, column), entries sorted by column), which writes the dense gradient
    directly. Autograd's own ``embedding_bag`` backward sorts all ``N * nnz``
    indices: a training step took 4x as long with it (28 against 7 ms at N = 24).
    """

    @staticmethod
    def forward(ctx, emb: torch.Tensor, col: torch.Tensor, val: torch.Tensor, row: torch.Tensor,
                offsets: torch.Tensor) -> torch.Tensor:
        n, d, h = emb.shape
        nnz, b = len(col), len(offsets)
        member = torch.arange(n, device=col.device).unsqueeze(1)
        out = F.embedding_bag((col + member * d).view(-1), emb.view(n * d, h), (offsets + member * nnz).view(-1),
                              mode="sum", per_sample_weights=val.repeat(n))
        ctx.save_for_backward(col, val, row)
        ctx.sizes = (n, d, h, b)
        return out.view(n, b, h)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        col, val, row = ctx.saved_tensors
        n, d, h, b = ctx.sizes
        nnz = len(col)
        order = torch.argsort(col, stable=True)              # entries by column: the bags of X^T
        col_offsets = torch.zeros(d, dtype=torch.long, device=col.device)
        col_offsets[1:] = torch.bincount(col, minlength=d).cumsum(0)[:-1]
        member = torch.arange(n, device=col.device).unsqueeze(1)
        grad = F.embedding_bag((row[order] + member * b).view(-1), grad_out.reshape(n * b, h),
                               (col_offsets + member * nnz).view(-1), mode="sum",
                               per_sample_weights=val[order].repeat(n))
        return grad.view(n, d, h), None, None, None, None


class BagOfWords(SyntheticTask):
    """Classify a line of stdlib source by its module, from hashed character n-grams.

    Inputs: each line's character 1- to 4-gram counts hashed into ``buckets``
    columns (:func:`hashed_ngrams`), normalised to unit length: sparse (~120 of
    8192 columns per line) with Zipf-like column frequencies. A batch of 32 lines
    touches about a quarter of the embedding rows; a few rows (spaces, ``self``,
    ``return``) get a gradient every step while most get one in under a quarter
    of the steps -- the regime of embedding tables, where per-coordinate step
    sizes matter (tuned AdamW ends 300 steps at under half tuned SGD's loss). Classes: the
    modules of ``text`` (12 for text ``"a"``); each module's distinct lines of 8+
    characters (:func:`module_lines`), at most ``max_lines`` per module (a random
    subset), lines shared by two modules dropped; 10% of each module's lines are
    held out for validation. Cross-entropy in nats; chance is the entropy of the
    class frequencies (``chance_loss``, 2.30 nats for text ``"a"``).

    Model per member (fastText-like): an embedding table ``E (buckets, hidden)``
    summed over the line's n-grams with their weights, a bias, ``activation``
    (``"none"``: fastText's linear bag), and a linear layer to the classes. The
    population shares one sparse input, so the bag sums run as ``embedding_bag``
    over the stacked tables. Init: ``E`` normal with std 1 (a unit-norm input
    gives a unit-scale hidden vector), the output layer LeCun normal, zero biases.

    Example::

        task = BagOfWords(); task.setup()
        params = task.init_params([0, 1])        # E, b1, W2, b2
        task.train_loss(params, step=1)          # shape (2,)
    """

    name = "bow"
    steps = 300
    summary = "fastText-like bag of hashed char 1-4-grams (8192 x 8) -> module of a text-A line, 32 lines a step"

    def __init__(self, buckets: int = 8192, hidden: int = 8, ngrams: tuple[int, int] = (1, 4),
                 text: str | tuple[str, ...] = "a", max_lines: int = 600, batch_size: int = 32,
                 activation: str = "none", data_seed: int = 24, steps: int | None = None) -> None:
        if activation != "none" and activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'none' or one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.modules = text_modules(text)
        self.buckets, self.hidden, self.ngrams, self.text = buckets, hidden, tuple(ngrams), text
        self.max_lines, self.batch_size, self.activation = max_lines, batch_size, activation
        self.data_seed = data_seed
        if steps is not None:
            self.steps = steps

    @property
    def classes(self) -> int:
        return len(self.modules)

    def split_lines(self, generator: torch.Generator) -> tuple[list[str], list[int], list[str], list[int]]:
        """Training lines and labels, then validation lines and labels, drawn from ``generator``.

        Example::

            train, y, val, y_val = task.split_lines(torch.Generator().manual_seed(task.data_seed))
        """
        per_module = [module_lines(m) for m in self.modules]
        owners = Counter(line for lines in per_module for line in lines)
        train_lines, train_y, val_lines, val_y = [], [], [], []
        for label, lines in enumerate(per_module):
            lines = [line for line in lines if owners[line] == 1]    # ambiguous lines out
            pick = torch.randperm(len(lines), generator=generator)[: self.max_lines].tolist()
            n_val = len(pick) // 10
            val_lines += [lines[i] for i in pick[:n_val]]
            train_lines += [lines[i] for i in pick[n_val:]]
            val_y += [label] * n_val
            train_y += [label] * (len(pick) - n_val)
        return train_lines, train_y, val_lines, val_y

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        train_lines, train_y, val_lines, val_y = self.split_lines(generator)
        if not train_lines or not val_lines:
            raise ValueError(f"{self.name}: too few lines found in modules {self.modules}")
        data = {"y": torch.tensor(train_y), "y_val": torch.tensor(val_y)}
        for key, lines in (("", train_lines), ("_val", val_lines)):
            crow, col, val = hashed_ngrams(lines, self.buckets, self.ngrams)
            data.update({"crow" + key: crow, "col" + key: col, "x" + key: val})
        return data

    @property
    def chance_loss(self) -> float:
        """Cross-entropy of predicting the training class frequencies (needs ``setup``)."""
        p = torch.bincount(self._cpu_data["y"], minlength=self.classes).double()
        p = p[p > 0] / p.sum()
        return float(-(p * p.log()).sum())

    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(self.buckets, self.hidden), (self.hidden,), (self.hidden, self.classes), (self.classes,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        emb = torch.randn(self.buckets, self.hidden, generator=generator)
        w2 = torch.randn(self.hidden, self.classes, generator=generator) / math.sqrt(self.hidden)
        return [emb, torch.zeros(self.hidden), w2, torch.zeros(self.classes)]

    def _loss(self, params: list[torch.Tensor], suffix: str, rows: torch.Tensor) -> torch.Tensor:
        emb, b1, w2, b2 = params
        x = _gather_rows(self.data["crow" + suffix], self.data["col" + suffix], self.data["x" + suffix], rows)
        h = _PopulationSparseMatmul.apply(emb, *x)                          # (N, B, hidden)
        h = h + b1.unsqueeze(1)
        if self.activation != "none":
            h = ACTIVATIONS[self.activation][0](h)
        return population_cross_entropy(torch.baddbmm(b2.unsqueeze(1), h, w2), self.data["y" + suffix][rows])

    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        self._ensure_setup(params)
        n_train = len(self.data["y"])
        return self._loss(params, "", self.batch_indices(step, n_train, self.batch_size))

    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        self._ensure_setup(params)
        n_val = len(self.data["y_val"])
        rows = torch.arange(n_val, device=self.device)
        parts = [self._loss(params, "_val", rows[i:i + 512]) * len(rows[i:i + 512])
                 for i in range(0, n_val, 512)]
        return torch.stack(parts).sum(0) / n_val


class BagOfWordsC(BagOfWords):
    """Validation bag of n-grams: text C's 11 modules, more lines per module, twice the buckets.

    Example::

        task = BagOfWordsC(); task.setup()
    """

    name = "bow_c"
    steps = 400
    summary = "fastText-like bag of hashed char 1-4-grams (16384 x 8) -> module of a text-C line, 32 lines a step"

    def __init__(self, **overrides) -> None:
        kw = dict(buckets=16384, hidden=8, text="c", max_lines=800, data_seed=124)
        super().__init__(**{**kw, **overrides})
