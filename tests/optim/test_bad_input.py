"""ProgramOptimizer refuses what would fail later, deep inside a step: integer parameters, and a
state dict of another program or optimizer (validated as `add_param_group` validates a group)."""
import pytest
import torch

from discover import ProgramOptimizer


def _stepped(opt, params):
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return opt.state_dict()


def test_an_integer_parameter_is_refused_naming_it():
    ok = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=r"parameter 1 of param group 0 \(shape \(2, 3\)\) has dtype torch.int64: "
                                         "parameters must be floating point"):
        ProgramOptimizer([ok, torch.zeros(2, 3, dtype=torch.int64)], "adam")
    opt = ProgramOptimizer([ok], "adam")
    with pytest.raises(ValueError, match=r"parameter 0 of param group 1 \(shape \(4,\)\) has dtype torch.int32"):
        opt.add_param_group({"params": [torch.zeros(4, dtype=torch.int32)]})


@pytest.mark.parametrize("make, message", [
    (lambda ps: torch.optim.Adam(ps), "param group 0: unknown hyperparameters 'amsgrad'"),
    (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), "param group 0: unknown hyperparameters 'dampening'"),
    (lambda ps: ProgramOptimizer(ps, "sgd"), "param group 0 has no 'beta1', 'beta2', 'eps'"),
])
def test_a_state_dict_of_another_optimizer_is_refused(make, message):
    w = torch.nn.Parameter(torch.ones(3))
    opt = ProgramOptimizer([w], "adam")
    other = [torch.nn.Parameter(torch.ones(3))]
    state = _stepped(make(other), other)
    with pytest.raises(ValueError, match=r"load_state_dict: not a state dict of ProgramOptimizer\('adam'\): " + message):
        opt.load_state_dict(state)
    w.grad = torch.ones(3)
    opt.step()  # and the optimizer still works as it was
    assert opt.state[w]["step"] == 1


def test_a_state_dict_with_other_state_keys_is_refused_and_a_good_one_loads():
    src = [torch.nn.Parameter(torch.ones(3))]
    state = _stepped(ProgramOptimizer(src, "adam"), src)
    w = torch.nn.Parameter(torch.ones(3))
    opt = ProgramOptimizer([w], "adam")
    bad = {"state": {0: {"step": 1, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}},
           "param_groups": state["param_groups"]}
    with pytest.raises(ValueError, match=r"the state of parameter 0 holds \['exp_avg', 'exp_avg_sq', 'step'\]; "
                                         r"program 'adam' keeps \['m', 'step', 'v'\]"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="it needs 'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})
    opt.load_state_dict(state)
    assert opt.state[w]["step"] == 1 and torch.equal(opt.state[w]["m"], torch.full((3,), 0.1))
