"""The foreach generator: custom programs (reductions, where, comparisons, clip, NaN, scalar
state, colliding names) against the reference backend, and its generated source."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from discover import ProgramOptimizer, load, parse
from discover.compile import compile_step, torch_source
from _stepcheck import assert_close, run

REDUCTIONS = parse("""
def red(w, g, step, m=0, c: scalar = 0, *, lr=0.1, beta=0.9, k=2.0):
    n = norm(g)
    r = rms(m) + mean(g)
    m = interp(g / (n + 1e-3), m, beta)
    big = n > k
    d = where(big, clip(m, 0.5), m * r)
    e = where(g > 0, minimum(g, m), maximum(g, -m))
    c = c * beta + n * (1 - beta)
    return lr * (d + e * c / (1 + step)) - lr / n * where(step % 2 == 0, g, 0), m, c
""")

NANS = parse("""
def nans(w, g, step, z=0, y=0, *, lr=0.1, t=0.5):
    a = sqrt(g - t)
    b = log(g) + arcsin(g * 2)
    s = sign(a) + where(a, 1, 2)
    q = where(sqrt(t - step), g, w)
    z = clip(g, sqrt(-t)) + sqrt(step - 3) * g
    y = minimum(a, g) + maximum(log(g), g)
    b = b + maximum(b, g)
    return lr * (s + q + where(g > t, a, 0)) + where(g > 1.5, sqrt(-g), 0) + where(g > 2.5, b, 0), z, y
""")

COLLIDE = parse("""
def collide(w, g, torch=0, zip=0, *, hp=0.1, list=2.0, float=0.5, len=0.9, w__0=0.25):
    n__3 = interp(g, torch, len)
    zip = zip + g * g
    step_ = n__3 / (sqrt(zip) + w__0) * list
    return hp * float * step_, n__3, zip
""")


@pytest.mark.parametrize("backend", ["foreach", "fused"])
@pytest.mark.parametrize("program", [REDUCTIONS, NANS, COLLIDE], ids=["reductions", "nans", "collide"])
def test_custom_programs_match_reference(program, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fused falls back for reductions
        for dtype in (torch.float64, torch.float32):
            ref, _ = run(program, "reference", dtype=dtype, steps=12)
            out, _ = run(program, backend, dtype=dtype, steps=12)
            assert_close(out, ref, dtype)


@pytest.mark.parametrize("backend", ["foreach", "fused"])
def test_nan_propagates_like_the_reference(backend):
    ref, ref_opt = run(NANS, "reference", steps=4, skip=False)
    out, opt = run(NANS, backend, steps=4, skip=False)
    for x, y in zip(out, ref):
        assert torch.equal(torch.isnan(x), torch.isnan(y))
        for name in ("z", "y"):
            a, b = opt.state[x][name], ref_opt.state[y][name]
            assert torch.equal(torch.isnan(a), torch.isnan(b))
            torch.testing.assert_close(a, b, equal_nan=True)
    # the program really makes NaN in some places and not in others
    masks = torch.cat([torch.isnan(p).flatten() for p in ref])
    assert masks.any() and not masks.all()
    ys = torch.cat([ref_opt.state[p]["y"].flatten() for p in ref])
    assert torch.isnan(ys).any() and not torch.isnan(ys).all()


def test_scalar_state_is_returned_per_parameter():
    params, opt = run(REDUCTIONS, "foreach", steps=5)
    ref_params, ref_opt = run(REDUCTIONS, "reference", steps=5)
    for p, q in zip(params, ref_params):
        c, c_ref = opt.state[p]["c"], ref_opt.state[q]["c"]
        assert isinstance(c, float)
        assert c == pytest.approx(float(c_ref), rel=1e-12)
    assert len({opt.state[p]["c"] for p in params}) > 1  # one value per parameter


def test_collisions_with_generator_names_are_mangled():
    src = torch_source(COLLIDE)
    # every user name appears in code only as name__<k>; the generator's own names start with '_'
    # ('w__0' and 'n__3' are user names too: they become w__0__<k> and n__3__<k>)
    for name in ("torch", "zip", "hp", "list", "float", "len", "n__3"):
        for line in src.splitlines():
            code = line.split("#")[0]
            for token in code.replace("(", " ").replace(")", " ").replace(",", " ").replace("=", " ").split():
                if token == name:
                    raise AssertionError(f"unmangled {name!r} in: {line}")
    step = compile_step(COLLIDE, "foreach")
    assert callable(step)


def test_generated_source_is_readable_and_in_place():
    src = torch_source(load("adam"))
    assert "_torch._foreach_lerp_(m__" in src  # m's new value written straight into its buffer
    assert "_torch._foreach_lerp_(v__" in src
    assert "_torch._foreach_sub_(w__" in src  # w <- w - update
    assert "# m = interp(g, m, beta1)" in src
    compile(src, "<adam>", "exec")


def test_no_persistent_buffers_beyond_declared_state():
    for backend in ("foreach", "fused"):
        params, opt = run("lookahead+adam", backend, dtype=torch.float32, steps=4)
        for p in params:
            state = opt.state[p]
            assert set(state) == {"step", "m", "v", "slow"}
            assert all(state[k].shape == p.shape for k in ("m", "v", "slow"))


def test_wrapper_alone_is_refused():
    with pytest.raises(ValueError, match="wraps"):
        compile_step(load("lookahead"), "foreach")


def test_show_torch_prints_the_foreach_source(capsys):
    from discover.cli import main

    assert main(["show", "lion", "--torch"]) == 0
    out = capsys.readouterr().out
    assert "_torch._foreach_sign" in out and "def step(" in out


def test_schedule_computes_adamw_weight_decay_late_and_keeps_two_lists_alive():
    # AdamW's update is `lr * weight_decay * w + lr / (1 - beta1 ** step) * m / denom`: in program
    # order the first term's list is alive with `denom` and `m * lr_t`, 3 lists; scheduled, 2
    import torch
    from discover import ProgramOptimizer
    from discover.benchmarks.memory import peak_temporary_bytes

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(20_000)) for _ in range(10)]
    for p in params:
        p.grad = torch.randn(20_000)
    opt = ProgramOptimizer(params, "adamw", backend="foreach")
    opt.step()
    one_list = 10 * 20_000 * 4
    assert peak_temporary_bytes(opt.step, torch.device("cpu")) <= 2 * one_list + 4096
