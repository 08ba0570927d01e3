"""torch's ``betas`` convention: accepted by programs with beta1 and beta2, kept in step with them,
so OneCycleLR's default momentum cycling (which writes ``betas``) drives ``adam`` as it drives
torch.optim.Adam; programs that also have beta3 take a triple (pytorch_optimizer's convention for
Adan and AdEMAMix). References: torch.optim.Adam and pytorch_optimizer.Adan under the same schedulers."""
import copy
import pickle

import pytest
import pytorch_optimizer
import torch

from discover import ProgramOptimizer

F64 = dict(rtol=1e-12, atol=1e-15)


def make_params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in ((4, 3), (3,))]


def grad_stream(params, steps, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params] for _ in range(steps)]


def step_both(pairs, grads):
    for opt, params in pairs:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()


def assert_params_close(a, b):
    for p, q in zip(a, b):
        torch.testing.assert_close(p.detach(), q.detach(), **F64)


def one_cycle_side_by_side(ours, a, theirs, b, names) -> list:
    """16 steps of `ours` (on params `a`) and `theirs` (on `b`) under OneCycleLR cycling momentum,
    checking after each that the groups' ``betas`` agree and that ours' ``names`` (what the
    program reads) are its ``betas``; returns ours' beta1 after each step."""
    kw = dict(max_lr=0.1, total_steps=16, base_momentum=0.8, max_momentum=0.95)  # cycle_momentum=True: the default
    s1 = torch.optim.lr_scheduler.OneCycleLR(ours, **kw)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, **kw)
    seen = []
    for grads in grad_stream(a, 16):
        step_both([(ours, a), (theirs, b)], grads)
        s1.step()
        s2.step()
        group = ours.param_groups[0]
        assert group["betas"] == theirs.param_groups[0]["betas"]
        assert tuple(group[n] for n in names) == group["betas"]
        seen.append(group["beta1"])
    return seen


def test_one_cycle_lr_with_momentum_cycling_drives_adam_like_torch():
    a, b = make_params(), make_params()
    ours, theirs = ProgramOptimizer(a, "adam", lr=0.01), torch.optim.Adam(b, lr=0.01)
    seen = one_cycle_side_by_side(ours, a, theirs, b, ("beta1", "beta2"))
    assert min(seen) < 0.85 and max(seen) > 0.9  # beta1 really cycled
    assert_params_close(a, b)


def test_state_dict_round_trip_mid_cycle_matches_an_uninterrupted_torch_run():
    grads = grad_stream(make_params(), 20)
    kw = dict(max_lr=0.1, total_steps=20)
    b = make_params()
    theirs = torch.optim.Adam(b, lr=0.01)
    s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, **kw)
    for gs in grads:
        step_both([(theirs, b)], gs)
        s2.step()

    a = make_params()
    ours = ProgramOptimizer(a, "adam", lr=0.01)
    s1 = torch.optim.lr_scheduler.OneCycleLR(ours, **kw)
    for gs in grads[:9]:
        step_both([(ours, a)], gs)
        s1.step()
    saved = pickle.loads(pickle.dumps((ours.state_dict(), s1.state_dict())))  # as torch.save would
    a2 = [torch.nn.Parameter(p.detach().clone()) for p in a]
    resumed = ProgramOptimizer(a2, "adam", lr=0.01)
    s3 = torch.optim.lr_scheduler.OneCycleLR(resumed, **kw)
    resumed.load_state_dict(saved[0])
    s3.load_state_dict(saved[1])
    for gs in grads[9:]:
        step_both([(resumed, a2)], gs)
        s3.step()
        group = resumed.param_groups[0]
        assert (group["beta1"], group["beta2"]) == group["betas"]
    assert_params_close(a2, b)


def test_betas_argument_and_per_group_betas_match_torch():
    a, b = make_params(), make_params()
    ours = ProgramOptimizer([{"params": a[:1]}, {"params": a[1:], "betas": (0.5, 0.9)}], "adam", lr=0.05,
                            betas=(0.8, 0.99))
    theirs = torch.optim.Adam([{"params": b[:1]}, {"params": b[1:], "betas": (0.5, 0.9)}], lr=0.05,
                              betas=(0.8, 0.99))
    assert [g["beta1"] for g in ours.param_groups] == [0.8, 0.5]
    for grads in grad_stream(a, 10):
        step_both([(ours, a), (theirs, b)], grads)
    assert_params_close(a, b)


def test_writing_beta1_updates_betas_and_copies_keep_them_in_step():
    opt = ProgramOptimizer(make_params(), "lion")
    group = opt.param_groups[0]
    group["beta1"] = 0.7
    assert group["betas"] == (0.7, 0.99)
    group.update(beta2=0.95)
    assert group["betas"] == (0.7, 0.95)
    for clone in (copy.deepcopy(opt).param_groups[0], pickle.loads(pickle.dumps(opt)).param_groups[0]):
        clone["betas"] = (0.6, 0.9)
        assert (clone["beta1"], clone["beta2"]) == (0.6, 0.9)
    assert group["beta1"] == 0.7  # the original is untouched


@pytest.mark.parametrize("kwargs, message", [
    (dict(betas=(0.8, 0.99), beta1=0.7), "disagree"),
    (dict(betas=0.9), "betas must be a pair"),
    (dict(betas=(0.9, "x")), "must be a number"),
])
def test_bad_betas_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProgramOptimizer(make_params(), "adam", **kwargs)


def test_a_program_without_beta2_takes_no_betas():
    with pytest.raises(ValueError, match="unknown hyperparameter 'betas'"):
        ProgramOptimizer(make_params(), "sgd", betas=(0.9, 0.99))


def test_one_cycle_lr_drives_adan_betas_triple_like_pytorch_optimizer():
    """Three betas: OneCycleLR writes ``(momentum, *betas[1:])`` and beta2, beta3 ride along."""
    a, b = make_params(), make_params()
    ours = ProgramOptimizer(a, "adan", lr=0.01, betas=(0.9, 0.8, 0.95), backend="foreach")
    theirs = pytorch_optimizer.Adan(b, lr=0.01, betas=(0.9, 0.8, 0.95))
    assert (ours.param_groups[0]["beta2"], ours.param_groups[0]["beta3"]) == (0.8, 0.95)
    seen = one_cycle_side_by_side(ours, a, theirs, b, ("beta1", "beta2", "beta3"))
    assert min(seen) < 0.85 and max(seen) > 0.9 and ours.param_groups[0]["betas"][1:] == (0.8, 0.95)
    assert_params_close(a, b)


def test_writing_beta3_or_a_betas_triple_keeps_them_in_step():
    opt = ProgramOptimizer(make_params(), "ademamix")
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999, 0.9999)
    group["beta3"] = 0.99
    assert group["betas"] == (0.9, 0.999, 0.99)
    group["betas"] = (0.8, 0.9, 0.95)
    assert (group["beta1"], group["beta2"], group["beta3"]) == (0.8, 0.9, 0.95)
    with pytest.raises(ValueError, match=r"betas must be \(beta1, beta2, beta3\)"):
        group["betas"] = (0.8, 0.9)
    restored = ProgramOptimizer(make_params(), "ademamix")
    restored.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    assert restored.param_groups[0]["betas"] == (0.8, 0.9, 0.95)
    assert restored.param_groups[0]["beta3"] == 0.95


@pytest.mark.parametrize("program, betas, message", [
    ("adan", (0.9, 0.99), r"betas must be a triple \(beta1, beta2, beta3\)"),
    ("adam", (0.9, 0.99, 0.9), r"betas must be a pair \(beta1, beta2\)"),
    ("adan", (0.9, 0.8, 0.95), None),
])
def test_the_betas_tuple_has_one_entry_per_beta(program, betas, message):
    if message is None:
        assert ProgramOptimizer(make_params(), program, betas=betas).param_groups[0]["betas"] == betas
        return
    with pytest.raises(ValueError, match=message):
        ProgramOptimizer(make_params(), program, betas=betas)
