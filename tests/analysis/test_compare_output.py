"""`discover compare` output a researcher can trust: validation-loss curves per seed, mean ± s.e.,
labels as typed, CSV files that agree with the table; log axes with plain tick labels.

References are computed here independently: the untrained model's validation loss from the task,
the standard error with Python's `statistics`."""
import csv
import math
import statistics

import pytest
import torch

from discover.cli import main
from discover.tasks import get_task

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    mine = tmp / "my_sgd.opt"
    mine.write_text("def renamed_inside(w, g, *, lr=0.01):\n    return lr * g\n")
    out = tmp / "out"
    code = main(["compare", "adam", str(mine), "--tasks", "logistic", "--steps", "12", "--seeds", "3",
                 "--lr-factors", "1,10", "--out", str(out)])
    assert code == 0
    return out, str(mine)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_csv_is_mean_and_standard_error_of_the_seeds_final_validation_losses(compared):
    out, mine = compared
    table = _rows(out / "table.csv")
    curves = _rows(out / "curves.csv")
    assert [r["program"] for r in table] == ["adam", mine]  # named as typed, not by the def's name
    for row in table:
        val = [r for r in curves if r["program"] == row["program"] and r["kind"] == "val"]
        last = max(int(r["step"]) for r in val)
        assert last == 12
        finals = [float(r["loss"]) for r in val if int(r["step"]) == last]
        assert len(finals) == 3 == int(row["seeds"])
        assert float(row["val_loss_mean"]) == pytest.approx(statistics.fmean(finals), rel=1e-6)
        assert float(row["val_loss_se"]) == pytest.approx(statistics.stdev(finals) / math.sqrt(3), rel=1e-6)


def test_validation_curves_start_at_the_untrained_models_loss(compared):
    out, _ = compared
    task = get_task("logistic")
    task.setup()
    curves = _rows(out / "curves.csv")
    for seed in range(3):
        with torch.no_grad():
            untrained = float(task.val_loss(task.init_params([seed]))[0])
        starts = [float(r["loss"]) for r in curves if r["kind"] == "val" and r["step"] == "0" and r["seed"] == str(seed)]
        assert len(starts) == 2 and all(s == pytest.approx(untrained, rel=1e-6) for s in starts)
    train = [r for r in curves if r["kind"] == "train" and r["program"] == "adam" and r["seed"] == "0"]
    assert [int(r["step"]) for r in train] == list(range(1, 13))


def test_printed_table_has_mean_plus_minus_se_and_the_png_is_drawn(compared, capsys):
    out, mine = compared
    text = (out / "table.txt").read_text()
    rows = {line.split()[1]: line for line in text.splitlines()[1:3]}
    assert set(rows) == {"adam", mine} and all(" ± " in line for line in rows.values())
    assert "mean ± standard error over 3 seeds" in text
    from matplotlib.image import imread

    image = imread(out / "curves.png")
    colors = {tuple(px) for px in image.reshape(-1, image.shape[-1])[::7].round(2).tolist()}
    assert image.shape[0] > 300 and len(colors) > 20  # curves and bands, not an empty frame


@pytest.mark.parametrize("values, scale", [([2.0, 4.0], "linear"), ([0.1, 30.0], "log")])
def test_loss_axis_labels_ticks_as_plain_numbers(values, scale):
    from discover.plotting import loss_axis, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], values)
    loss_axis(ax, values)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    plt.close(fig)
    assert ax.get_yscale() == scale and labels
    assert not any("times" in s or "^" in s or "10^" in s for s in labels), labels
