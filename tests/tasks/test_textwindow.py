"""The windowed-text data shared by the character LMs (transformer, GRU)."""

from __future__ import annotations

import pytest
import torch

from discover.tasks import charlm
from discover.tasks.rnn import RNNLM
from discover.tasks.textwindow import split_text, window_starts
from discover.tasks.transformer import TransformerLM


def test_split_text_and_window_starts():
    train, val = split_text(torch.arange(10_240))
    assert torch.equal(val, torch.cat([torch.arange(4608, 5120), torch.arange(9728, 10_240)]))
    assert len(train) == 9216 and not set(train.tolist()) & set(val.tolist())
    starts = window_starts(1000, 33, 64, step=5, data_seed=3)
    assert starts.min() >= 0 and starts.max() <= 1000 - 33
    assert torch.equal(starts, window_starts(1000, 33, 64, step=5, data_seed=3))
    assert not torch.equal(starts, window_starts(1000, 33, 64, step=6, data_seed=3))
    assert not torch.equal(starts, window_starts(1000, 33, 64, step=5, data_seed=4))


@pytest.mark.parametrize("cls", [TransformerLM, RNNLM])
def test_windows_come_from_the_right_streams(cls):
    task = cls(max_chars=20_000)
    task.setup()
    ids = charlm.encode(charlm.load_text(20_000))
    train, val = split_text(ids)
    windows = task.train_windows(7)
    w = task.context + 1
    starts = window_starts(len(train), w, task.batch_size, 7, task.data_seed)
    assert torch.equal(windows, torch.stack([train[s:s + w] for s in starts.tolist()]))
    held_out = {tuple(val[i:i + w].tolist()) for i in range(0, len(val) - w + 1)}
    assert all(tuple(row.tolist()) in held_out for row in task.data["val_windows"])
