"""`Evaluator.restore_baseline`: a saved baseline (a search checkpoint's) is used as is, never retrained."""
import pytest

from discover import load
from discover.evaluate import Evaluator


def test_a_restored_baseline_is_not_trained_and_scores_divide_by_it(monkeypatch):
    trained = Evaluator(["quadratic"], steps=5)
    saved = trained.baseline_state()
    restored = Evaluator(["quadratic"], steps=5, seeds=(1,))  # another seed: its own baseline would differ
    calls = []
    real_run = restored.run
    monkeypatch.setattr(restored, "run", lambda programs, *a, **k: calls.append(programs) or real_run(programs, *a, **k))
    restored.restore_baseline({t: {**v, "loss": 2 * v["loss"]} for t, v in saved.items()})
    assert restored.baselines() == {"quadratic": 2 * saved["quadratic"]["loss"]} and calls == []
    halved = restored.score([load("sgd")])[0]
    assert len(calls) == 1 and calls[0][0].name == "sgd"  # only the program trained, not the baseline
    assert halved.ratios["quadratic"] == pytest.approx(halved.losses["quadratic"] / (2 * saved["quadratic"]["loss"]),
                                                       rel=1e-12)
