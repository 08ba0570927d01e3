"""`show --as math --numeric` (hyperparameters at their values, constants folded) and `explain`'s step
size relative to the nearest built-in. Expected numbers are worked out by hand from the defaults."""
import pytest

from discover.cli import main


@pytest.fixture
def run(capsys):
    def invoke(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_numeric_math_view_of_lion(run):
    code, out, _ = run("show", "lion", "--as", "math", "--numeric")
    assert code == 0
    # lr=1e-4, beta1=0.9 (so 1 - beta1 = 0.1), beta2=0.99, weight_decay=0 (the w term vanishes)
    assert out.splitlines() == ["with lr=0.0001, beta1=0.9, beta2=0.99, weight_decay=0",
                                "update = 0.0001*sign(0.1*g + 0.9*m)",
                                "m <- 0.01*g + 0.99*m"]


def test_numeric_view_folds_hyperparameters_into_one_constant(run, tmp_path):
    f = tmp_path / "f.opt"
    f.write_text("def f(w, g, *, lr=1, a=0.2, b=0.52, c=0.1):\n    return lr * g / (a * b + c)\n")
    code, out, _ = run("show", f, "--as", "math", "--numeric")
    # 1 / (0.2 * 0.52 + 0.1) = 1 / 0.204 = 4.90196...
    assert code == 0 and out.splitlines()[1] == "update = 4.90196*g"
    code, out, _ = run("show", f, "--as", "math")
    assert "a*b + c" in out  # without --numeric the names stay


def test_numeric_latex_and_adam_constants(run):
    code, out, _ = run("show", "adam", "--as", "math", "--numeric")
    assert code == 0 and "m <- 0.1*g + 0.9*m" in out and "0.001*g" in out and "0.999*v" in out and "1e-8" in out
    code, out, _ = run("show", "adam", "--as", "latex", "--numeric")
    assert code == 0 and out.startswith("% with lr=0.001") and r"1 \cdot 10^{-8}" in out
    assert r"m \leftarrow 0.1 g + 0.9 m" in out


def test_numeric_needs_a_math_view(run):
    code, _, err = run("show", "adam", "--numeric")
    assert code == 1 and "--numeric is for --as latex or math" in err and "Traceback" not in err


@pytest.mark.parametrize("text, line", [
    # sign-based: every element moves by lr, so the ratio is the lr ratio 3e-4 / 1e-4
    ("def mylion(w, g, m=0, *, lr=3e-4):\n    d = sign(interp(g, m, 0.9))\n    m = interp(g, m, 0.99)\n"
     "    return lr * d, m\n", "step size: 3x lion's"),
    # Adam with 10x the lr: the same directions, 10x the steps
    ("def fast(w, g, step, m=0, v=0, *, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):\n"
     "    g = g + weight_decay * w\n    m = interp(g, m, beta1)\n    v = interp(g * g, v, beta2)\n"
     "    return lr / (1 - beta1 ** step) * m / (sqrt(v) / sqrt(1 - beta2 ** step) + eps), m, v\n",
     "step size: 10x adam's"),
])
def test_explain_gives_the_step_size_relative_to_the_nearest_builtin(run, tmp_path, text, line):
    f = tmp_path / "p.opt"
    f.write_text(text)
    code, out, _ = run("explain", f)
    assert code == 0 and line in out, out
    expected_lr = {"lion": "0.0003", "adam": "0.01"}[line.split("x ")[1].split("'")[0]]
    assert f"with lr={expected_lr}" in out


def test_explain_of_a_builtin_says_the_same_step_size(run):
    code, out, _ = run("explain", "adam")
    assert code == 0 and "step size: the same as adam's" in out
