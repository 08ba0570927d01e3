"""The progress bar and the log lines do not garble each other: on a terminal every log line and
warning is written above the bar (tqdm clears it first); elsewhere there is no bar at all."""
import io
import warnings

from discover.search import SearchConfig, run
from discover.search.evolution import Search


class Terminal(io.StringIO):
    def isatty(self):
        return True


def tiny(out):
    return SearchConfig(init=["sgd"], tasks=["quadratic"], meta_tasks=[], steps=8, budget=8, batch=4,
                        population=4, tournament=2, out=str(out), progress=True)


def _warn_every_step(monkeypatch):
    original = Search.step

    def step(self):
        warnings.warn("a backend says something mid-run", RuntimeWarning)
        return original(self)

    monkeypatch.setattr(Search, "step", step)


def test_on_a_terminal_log_lines_and_warnings_go_above_the_bar(tmp_path, monkeypatch):
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    _warn_every_step(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        run(tiny(tmp_path / "run"))
    text = stream.getvalue()
    assert "eval" in text and "\r" in text  # the bar was drawn
    said = [line for line in text.split("\n") if "mid-run" in line or "warm start sgd" in line]
    assert sum("mid-run" in line for line in said) >= 2 and any("warm start sgd" in line for line in said)
    for line in said:  # what shows after the bar's last carriage return is the message, whole and alone
        visible = line.split("\r")[-1]
        assert visible.startswith("warm start sgd") or (
            visible.endswith("RuntimeWarning: a backend says something mid-run") and ".py:" in visible), repr(line)
        assert "eval/s" not in visible and "|" not in visible, repr(line)


def test_without_a_terminal_there_is_no_bar_only_lines(tmp_path, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    run(tiny(tmp_path / "run"))
    text = stream.getvalue()
    assert "\r" not in text and "warm start sgd" in text
