"""Careless command lines get one clear message and exit 1, before any training: never a traceback,
never a hang, never a file written where it should not be."""
import os
import sys

import pytest

from discover import cli

HUGE = "1" + "0" * 309


@pytest.fixture
def run(capsys):
    def invoke(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return code, out, err

    return invoke


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything trains: these errors must come first."""
    import discover.analysis.compare as cmp

    def refuse(*a, **k):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(cmp, "compare", refuse)
    monkeypatch.setattr(cmp, "proxy_fitness", refuse)


def test_a_huge_integer_literal_is_a_located_error_in_every_command(run, tmp_path):
    f = tmp_path / "huge.opt"
    f.write_text(f"def f(w, g, *, lr={HUGE}):\n    return lr * g\n")
    for command in ("check", "show", "simplify", "explain"):
        code, _, err = run(command, f)
        assert code == 1 and f"{f}:1:19: error:" in err and "too large for a float" in err, command


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_check_dev_zero_is_refused_without_reading_it(run):
    code, _, err = run("check", "/dev/zero")
    assert code == 1 and "/dev/zero: error: cannot read program file: it is not a regular file" in err


@pytest.mark.parametrize("spec, message", [
    ("", "no program given"),
    ("lookahead+", "needs a program on each side of '+'"),
    ("+adam", "needs a program on each side of '+'"),
])
def test_show_an_empty_or_half_composition(run, spec, message):
    code, _, err = run("show", spec)
    assert code == 1 and message in err and "Is a directory" not in err


def test_simplify_output_to_a_directory_is_refused_before_simplifying(run, tmp_path):
    code, out, err = run("simplify", "adam", "-o", tmp_path)
    assert code == 1 and "is a directory; give the file to write" in err and out == ""


@pytest.mark.parametrize("tolerance", ["-1", "nan", "inf"])
def test_simplify_refuses_a_negative_or_non_finite_tolerance(run, no_training, tolerance):
    code, out, err = run("simplify", "adam", "--ablate", "--fitness", "proxy", f"--tolerance={tolerance}")
    assert code == 1 and "--tolerance must be a fitness change of 0 or more" in err and out == ""


@pytest.mark.parametrize("params", ["inf", "nan", "0", "-5"])
def test_explain_refuses_a_model_size_that_is_not_a_count(run, params):
    code, _, err = run("explain", "adam", f"--params={params}")
    assert code == 1 and "--params must be a model size of at least 1 parameter" in err


def test_compare_refuses_an_out_file_and_bad_lr_factors_before_training(run, no_training, tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep")
    code, _, err = run("compare", "adam", "--tasks", "quadratic", "--no-plot", "--out", f)
    assert code == 1 and "is a file; give a folder" in err and f.read_text() == "keep"
    for factors in (["-1"], ["1", "0"], ["nan"]):
        code, _, err = run("compare", "adam", "--tasks", "quadratic", "--no-plot", "--lr-factors", *factors)
        assert code == 1 and "--lr-factors must be positive" in err, factors


def test_a_task_that_needs_arguments_or_is_abstract_is_a_clear_error(run, tmp_path, monkeypatch):
    (tmp_path / "mytasks.py").write_text(
        "from discover.tasks import Quadratic, Task\n"
        "class NeedsArgs(Quadratic):\n"
        "    def __init__(self, size):\n        super().__init__()\n"
        "class Abstract(Task):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mytasks", None)
    from discover.tasks import get_task

    for cls in ("NeedsArgs", "Abstract"):
        with pytest.raises(ValueError, match=f"task 'mytasks:{cls}' cannot be built with no arguments"):
            get_task(f"mytasks:{cls}")
        out = tmp_path / f"run_{cls}"
        code, _, err = run("search", "--tasks", f"mytasks:{cls}", "--out", out, "--no-progress")
        assert code == 1 and "cannot be built with no arguments" in err and not out.exists()
