"""The simplify / explain / diff / compare / show --as commands, end to end through `discover.cli.main`."""
from pathlib import Path

import pytest

from discover import cli, parse

LION_RAW = Path(__file__).resolve().parent / "analysis" / "lion_raw.opt"


@pytest.fixture
def run(capsys):
    def invoke(*argv):
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_simplify_writes_the_program_and_reports(run, tmp_path):
    out = tmp_path / "lion_simple.opt"
    code, stdout, _ = run("simplify", LION_RAW, "-o", out)
    assert code == 0
    program = parse(out.read_text())  # the written program is valid program text
    assert len(program.states) == 1 and "cosh" not in out.read_text() and "sign(" in out.read_text()
    assert "removed state m" in stdout and "equal except where m == 0" in stdout
    assert "result proved equivalent to the input" in stdout


def test_simplify_prints_to_stdout_without_output_file(run):
    code, stdout, _ = run("simplify", "lion")
    assert code == 0 and stdout.splitlines()[1].startswith("def lion(")


def test_show_as_math_and_latex(run):
    code, stdout, _ = run("show", "adam", "--as", "math")
    assert code == 0 and "update = " in stdout and "beta2" in stdout
    code, stdout, _ = run("show", "adam", "--as", "latex")
    assert code == 0 and r"\frac" in stdout and r"\beta_{2}" in stdout


def test_explain_lion(run):
    code, stdout, _ = run("explain", "lion", "--params", "1000")
    assert code == 0
    assert "1 buffer per parameter (m)" in stdout and "3.9 KiB for a 1K-parameter model" in stdout
    assert "sign-based: yes" in stdout and "uses weight decay: no" in stdout
    assert "nearest built-ins by behaviour: lion (same updates on probe inputs)" in stdout


def test_diff_command(run, tmp_path):
    a = tmp_path / "a.opt"
    a.write_text("def a(w, g, mom=0, *, lr=0.1):\n    mom = interp(g, mom, 0.9)\n    return lr * mom, mom\n")
    code, stdout, _ = run("diff", a, "momentum")
    assert code == 0 and stdout.startswith("--- ") and "same updates on probe inputs: no" in stdout


def test_compare_on_a_tiny_budget_writes_a_png_and_a_table(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    code, stdout, _ = run("compare", "adam", "sgd", "--tasks", "quadratic", "logistic", "--steps", "5",
                          "--lr-factors", "1", "10", "--out", out)
    assert code == 0
    png = out / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = stdout.splitlines()
    assert lines[0].split()[:4] == ["task", "program", "val", "loss"]
    rows = [l.split() for l in lines[1:5]]
    assert [(r[0], r[1]) for r in rows] == [("quadratic", "adam"), ("quadratic", "sgd"),
                                            ("logistic", "adam"), ("logistic", "sgd")]
    assert (out / "table.txt").exists()


@pytest.mark.parametrize("argv, message", [
    (("simplify", "no/such/file.opt"), "no such program file"),
    (("explain", "no_such_builtin"), "unknown program 'no_such_builtin'"),
    (("compare", "adam", "--tasks", "no_such_task"), "unknown task 'no_such_task'"),
    (("simplify", LION_RAW, "--ablate", "--fitness", "proxy", "--tasks", "no_such_task"), "unknown task"),
    (("diff", "adam", "no/such.opt"), "no such program file"),
])
def test_bad_input_gives_a_clear_error(run, argv, message):
    code, stdout, stderr = run(*argv)
    assert code == 1 and message in stderr and "Traceback" not in stderr


def test_a_program_that_does_not_type_check_is_a_clear_error(run, tmp_path):
    bad = tmp_path / "bad.opt"
    bad.write_text("def bad(w, g, *, lr=0.1):\n    n = norm(lr)\n    return n * g\n")
    for command in ("simplify", "explain"):
        code, _, stderr = run(command, bad)
        assert code == 1 and f"{bad}:2:5: error: norm() reduces a tensor" in stderr
