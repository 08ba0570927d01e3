"""Warm starts must keep lr a pure scale and fit the length limit; meta tasks train longer (issue #10)."""
import pytest

from discover.search import SearchConfig
from discover.tasks import get_task


def test_a_warm_start_whose_update_is_not_a_scale_of_lr_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"--init asgd: lr is not a pure scale"):
        SearchConfig(init=["asgd"], out=str(tmp_path / "run")).validate()
    assert not (tmp_path / "run").exists()


def test_a_warm_start_longer_than_max_len_is_refused_with_the_length_to_use():
    with pytest.raises(ValueError, match=r"--init radam has 39 statements, more than --max-len 28.*--max-len 47"):
        SearchConfig(init=["radam"]).validate()
    SearchConfig(init=["radam"], max_len=47).validate()


def test_meta_tasks_train_longer_than_their_own_steps_by_default():
    cfg = SearchConfig(meta_tasks=["rnn", "resmlp"])
    assert cfg.meta_task_steps() == {"rnn": 2 * get_task("rnn").steps, "resmlp": 2 * get_task("resmlp").steps}
    assert SearchConfig(meta_tasks=["rnn"], meta_horizon=1.5).meta_task_steps() == {"rnn": 450}
    assert SearchConfig(meta_tasks=["rnn"], meta_steps=40).meta_task_steps() == {"rnn": 40}
    with pytest.raises(ValueError, match="meta horizon"):
        SearchConfig(meta_horizon=0.0).validate()
