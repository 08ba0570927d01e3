"""BagOfWords against plain-Python features and a dense matmul, and the sparse data it trains on."""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F

from discover.tasks.bow import BagOfWords, hashed_ngrams, module_lines


def member_grads(loss: torch.Tensor, params: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Gradients of ``loss.sum()``, split by member: ``out[i][k]`` is member ``i``'s slice of parameter ``k``."""
    grads = torch.autograd.grad(loss.sum(), params, retain_graph=True)
    return [[g[i] for g in grads] for i in range(loss.shape[0])]


def python_features(line: str, buckets: int, ngrams=(1, 4)) -> dict[int, float]:
    """Hashed n-gram features of one line in plain Python (no torch)."""
    def char_id(ch):
        o = ord(ch)
        return o - 30 if 32 <= o <= 126 else (1 if ch == "\n" else 0)
    counts: Counter = Counter()
    for n in range(ngrams[0], ngrams[1] + 1):
        for s in range(len(line) - n + 1):
            code = sum((char_id(ch) + 1) * 98 ** k for k, ch in enumerate(line[s:s + n]))
            counts[(code * 1_103_515_245 + 12_345) % (2**31 - 1) % buckets] += 1
    norm = math.sqrt(sum(c * c for c in counts.values()))
    return {b: c / norm for b, c in counts.items()}


def test_hashed_ngrams_match_plain_python():
    lines = ["def f(x):", "return self._x + 1", "ab", "", "é naïve ü"]
    crow, col, val = hashed_ngrams(lines, 512)
    for i, line in enumerate(lines):
        got = dict(zip(col[crow[i]:crow[i + 1]].tolist(), val[crow[i]:crow[i + 1]].tolist()))
        want = python_features(line, 512)
        assert got.keys() == want.keys()
        assert all(abs(got[k] - want[k]) < 1e-6 for k in want)


def test_bow_matches_dense_reference():
    task = BagOfWords(buckets=1024, hidden=8, activation="relu")
    task.setup(dtype=torch.float64)
    train_lines, train_y, _, _ = task.split_lines(torch.Generator().manual_seed(task.data_seed))
    assert torch.equal(task.data["y"], torch.tensor(train_y))
    params = task.init_params([0, 1, 2])
    with torch.no_grad():
        params[1].add_(0.3)  # biases matter for the ReLU
    step = 6
    rows = task.batch_indices(step, len(train_y), task.batch_size).tolist()
    x = torch.zeros(len(rows), task.buckets, dtype=torch.float64)
    for r, row in enumerate(rows):
        for b, v in python_features(train_lines[row], task.buckets).items():
            x[r, b] = v
    y = torch.tensor([train_y[row] for row in rows])
    loss = task.train_loss(params, step)
    grads = member_grads(loss, params)
    for i in range(3):
        emb, b1, w2, b2 = mine = [p[i].detach().clone().requires_grad_(True) for p in params]
        ref = F.cross_entropy(torch.relu(x @ emb + b1) @ w2 + b2, y)
        # The task stores its features in float32 (the reference's are float64).
        torch.testing.assert_close(loss[i], ref, rtol=1e-6, atol=1e-8)
        for g, g_ref in zip(grads[i], torch.autograd.grad(ref, mine)):
            torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-8)


def test_bow_data_are_sparse_zipf_and_labelled_by_module():
    task = BagOfWords()
    task.setup()
    train_lines, train_y, val_lines, val_y = task.split_lines(torch.Generator().manual_seed(task.data_seed))
    assert not set(train_lines) & set(val_lines)
    for line, label in list(zip(train_lines, train_y))[::97]:
        assert line in module_lines(task.modules[label])
    assert set(train_y) == set(range(task.classes)) == set(val_y)
    nnz = task.data["crow"].diff().float()
    assert nnz.mean() < 0.02 * task.buckets                    # sparse rows
    # Sparse gradients: which embedding rows does each batch of an epoch touch?
    n = len(train_y)
    hits = torch.zeros(task.buckets)
    touched = []
    for step in range(1, n // task.batch_size + 1):
        rows = task.batch_indices(step, n, task.batch_size).tolist()
        cols = torch.unique(torch.cat([task.data["col"][task.data["crow"][r]:task.data["crow"][r + 1]] for r in rows]))
        touched.append(len(cols) / task.buckets)
        hits[cols] += 1
    share = hits / len(touched)                                # fraction of batches touching each row
    assert sum(touched) / len(touched) < 0.35                  # a batch updates a minority of rows
    assert (share < 0.25).float().mean() > 0.5                 # most rows: in under a quarter of batches
    assert (share == 1).sum() >= 10                            # Zipf head: rows in every batch
    assert 1.5 < task.chance_loss < math.log(task.classes)
