"""Matrix, row/column and group ops in search: opt-in op sets, warm starts from muon and adafactor,
fingerprints that tell matrix programs apart, and candidates the population step trains."""
from __future__ import annotations

import random
import warnings

import pytest
import torch

from discover import load, parse
from discover.analysis.fingerprint import fingerprint
from discover.compile.population_device import population_step
from discover.compile.population_torch import init_states
from discover.lang.check import check
from discover.lang.ir import Const
from discover.lang.ops import Type
from discover.search.config import SearchConfig
from discover.search.mutate import Mutator, NoChild
from discover.search.program import prepare_init

STAGED = {"matmul", "transpose", "newton_schulz", "row_mean", "col_mean", "rows", "cols", "ndim", "epsilon",
          "group_sum", "group_norm"}


def test_the_default_search_space_is_the_one_before_these_ops():
    ops = set(Mutator()._ops)
    assert not ops & STAGED
    assert {"add", "mul", "interp", "sign", "sqrt", "norm", "rms", "mean"} <= ops


def test_op_sets_add_their_ops():
    matrix = set(Mutator(ops=("matrix",))._ops)
    assert {"matmul", "transpose", "newton_schulz", "row_mean", "col_mean"} <= matrix
    assert not matrix & {"group_sum", "group_norm"}
    assert {"group_sum", "group_norm"} <= set(Mutator(ops=("group",))._ops)
    with pytest.raises(ValueError, match="unknown op set.*matrix, group"):
        Mutator(ops=("tensor",))


def test_search_config_takes_op_sets_and_old_configs_load():
    with pytest.raises(ValueError, match="--ops: unknown op set"):
        SearchConfig(budget=4, ops=["matrices"]).validate()
    assert SearchConfig(budget=4, ops=["matrix", "group"]).validate().ops == ["matrix", "group"]
    old = SearchConfig(budget=4).to_json()
    del old["ops"]  # config.json of a run made before op sets
    assert SearchConfig.from_json(old).ops == []


def test_children_with_the_matrix_set_reach_newton_schulz_and_train():
    """Children of adamw with the matrix set: some hold newton_schulz (its options numbers), each type-checks, and the population step trains them on a matrix and a bias."""
    parent = prepare_init(load("adamw"))
    mutator, rng = Mutator(ops=("matrix",)), random.Random(0)
    found = []
    current = parent
    for _ in range(300):
        try:
            child, _, _ = mutator.child(current, rng)
        except NoChild:
            current = parent
            continue
        check(child)
        if any(s.op == "newton_schulz" for s in child.body):
            found.append(child)
            if len(found) == 3:
                break
        current = child if len(child.body) < 24 else parent
    assert found, "no child with newton_schulz in 300 children"
    for child in found:  # options are numbers: constants (inserted at their defaults) or scalars
        stmt = next(s for s in child.body if s.op == "newton_schulz")
        types = check(child)  # the final type per name; option names here are never re-assigned tensors
        assert all(isinstance(a, Const) or types[a.name] == Type.SCALAR for a in stmt.args[1:])
    gen = torch.Generator().manual_seed(0)
    for child in found:
        ws = [torch.randn(3, 4, 6, generator=gen, dtype=torch.float64), torch.randn(3, 6, generator=gen, dtype=torch.float64)]
        gs = [torch.randn_like(w) for w in ws]
        hp = {k: torch.full((3,), v, dtype=torch.float64) if k == "lr" else v for k, v in child.defaults.items()}
        states = init_states(child, ws, hp)
        population_step(child)(ws, gs, states, 1, hp)  # the torch batched step: no exception


@pytest.mark.parametrize("name", ["muon", "adafactor", "prodigy", "schedulefree_adamw"])
def test_warm_starts_from_the_new_built_ins_make_children(name):
    parent = prepare_init(load(name))
    mutator = Mutator(max_len=len(parent.body) + 8, ops=("matrix", "group"))
    child, fp, _ = mutator.child(parent, random.Random(1))
    assert fp != mutator.fingerprint(parent)


def test_fingerprints_tell_matrix_programs_apart():
    def fp(body: str) -> str:
        return fingerprint(parse(f"def f(w, g, *, lr=1):\n    return lr * {body}\n"))

    # on the (3 x 5) probe matrix these differ; on the probe vector (a diagonal matrix) they agree
    assert fp("matmul(matmul(g, transpose(g)), g)") != fp("g * g * g")
    assert fp("transpose(transpose(g))") == fp("g")
    assert fp("matmul(row_mean(g), col_mean(g))") != fp("row_mean(g) * col_mean(g) * 2")
    assert fp("newton_schulz(g)") != fp("newton_schulz(g, 4)")
    # group sums run over both probe parameters as one group: not the per-tensor sum
    assert fp("g * group_sum(g)") != fp("g * mean(g) * 7")


def test_fingerprint_of_per_row_state_keeps_its_shape():
    program = parse("def f(w, g, r: per_row = 0, *, lr=1):\n    r = interp(row_mean(g * g), r, 0.9)\n"
                    "    return lr * g / sqrt(col_mean(r) + 1e-8), r\n")
    full = parse("def f(w, g, r=0, *, lr=1):\n    r = interp(row_mean(g * g), r, 0.9)\n"
                 "    return lr * g / sqrt(col_mean(r) + 1e-8), r\n")
    # with r shaped like w (as a state of the parameter's shape would be) col_mean(r) means over rows
    # of a broadcast value; with r one value per row, it means over the rows' values: the same numbers,
    # so equal fingerprints are right here, and both are finite
    assert "nan" not in fingerprint(program)
    assert fingerprint(program) == fingerprint(full)


def test_the_triton_backend_hands_matrix_programs_to_foreach_saying_why():
    """backend='triton' on a program with staged ops: the foreach step (on any device), one warning."""
    from discover import ProgramOptimizer
    from discover.compile import triton_step

    triton_step._WARNED.clear()
    w = [torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64)) for _ in range(2)]
    v = [torch.nn.Parameter(x.detach().clone()) for x in w]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = ProgramOptimizer(w, "muon", backend="triton", ns_bf16=0)
        ProgramOptimizer(w, "muon", backend="triton", ns_bf16=0)
    assert [str(c.message) for c in caught if "newton_schulz" in str(c.message)] == [
        "discover triton backend: program 'muon' runs on the foreach backend: it uses cols, newton_schulz, rows, "
        "which run as torch calls per parameter (or over the param group) between foreach passes, not inside one kernel"]
    b = ProgramOptimizer(v, "muon", backend="foreach", ns_bf16=0)
    for _ in range(3):
        for p, q in zip(w, v):
            p.grad = torch.ones_like(p)
            q.grad = torch.ones_like(q)
        a.step()
        b.step()
    for p, q in zip(w, v):
        assert torch.equal(p, q)
