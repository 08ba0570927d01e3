"""The `discover` command: list, show, check (through `discover.cli.main` and `python -m discover`)."""
import subprocess
import sys

import pytest

import discover
from discover import load, parse
from discover.cli import main

BUILTINS = discover.builtin_names()


def test_list_names_every_builtin_with_its_state(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(BUILTINS)
    expected_state = {  # from the published rules, not from the code
        "sgd": [], "momentum": ["buf"], "nesterov": ["buf"], "adagrad": ["acc"], "adadelta": ["sq", "acc"],
        "rmsprop": ["sq"], "adam": ["m", "v"], "adamw": ["m", "v"], "nadam": ["m", "v", "scalar mu_product"],
        "radam": ["m", "v"], "lion": ["m"], "lookahead": ["slow"],
    }
    for name, states in expected_state.items():
        n_buffers = sum(not s.startswith("scalar") for s in states)
        assert f"{n_buffers} buffer" in rows[name], rows[name]
        assert f"({', '.join(states) or '-'})" in rows[name], rows[name]
    assert "Lion" in rows["lion"] and "AdaGrad" in rows["adagrad"]  # the one-line description


@pytest.mark.parametrize("spec", ["adam", "lion", "nadam", "lookahead+radam"])
def test_show_prints_text_that_parses_back_to_the_same_ir(spec, capsys):
    assert main(["show", spec]) == 0
    text = capsys.readouterr().out
    assert text.lstrip().startswith("#")  # the description comes along
    assert parse(text) == load(spec)


def test_show_unknown_program_is_one_clear_line(capsys):
    assert main(["show", "adamm"]) == 1
    err = capsys.readouterr().err
    assert "unknown program 'adamm'" in err and "Traceback" not in err


def test_check_good_and_bad_files(tmp_path, capsys):
    from discover.library import programs_dir

    good = [str(programs_dir() / f"{name}.opt") for name in BUILTINS]
    assert main(["check", *good]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (") == len(BUILTINS)

    bad = tmp_path / "bad.opt"
    bad.write_text("def f(w, g):\n    x = g.T\n    return x\n")
    worse = tmp_path / "worse.opt"
    worse.write_text("def f(w, g, m=0):\n    m = interp(g, m)\n    return m, m\n")
    assert main(["check", good[0], str(bad), str(worse)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:2:9: error: attribute access" in captured.err
    assert f"{worse}:2:9: error: interp() takes 3 arguments, got 2" in captured.err
    assert ": ok (" in captured.out and "Traceback" not in captured.err

    assert main(["check", str(tmp_path / "missing.opt")]) == 1
    assert "cannot read program file" in capsys.readouterr().err


def test_python_dash_m_discover(tmp_path):
    bad = tmp_path / "bad.opt"
    bad.write_text("def f(w, g):\n    return open(g)\n")
    proc = subprocess.run([sys.executable, "-m", "discover", "check", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:2:12: error: unknown op 'open'"), proc.stderr
    assert "Traceback" not in proc.stderr
