"""`discover export`: the exported file runs where discover cannot be imported, trains exactly as
`ProgramOptimizer` (foreach backend; the fused default to round-off), and its state_dicts load
into and from `ProgramOptimizer`'s. The exported files are run in a subprocess that blocks
`import discover`; the reference trajectories are ProgramOptimizer's and torch.optim.Adam's."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

from discover import ProgramOptimizer, load
from discover.cli import main
from discover.export import export_source

STEPS, SPLIT = 24, 11
ODD = """def odd(w, g, step, m=0, s: scalar = 1, acc=0.5, *, lr=0.02, beta=0.9, c=2.0, torch=0.5, dict=3.0):
    m = interp(g, m, beta)
    r = rms(m) + mean(abs(g)) + norm(g) * 0.01
    s = s * beta + (step % 3 == 0)
    acc = acc + where(g > 0, g * g, clip(g, c) ** 2)
    d = m / (sqrt(acc) + r) + 1e-3 * exp(-abs(w)) * sign(g) * (s > 1) * torch
    return lr * maximum(minimum(d, dict), -dict), m, s, acc
"""
PROGRAMS = {  # spec -> hyperparameters given to the optimizer
    "adam": {"lr": 0.01, "betas": (0.8, 0.95)},
    "lion": {"lr": 0.003, "weight_decay": 0.1},
    "nadam": {"lr": 0.01},
    "adagrad": {"lr": 0.1, "initial_accumulator_value": 0.3},
    "lookahead+adam": {"lr": 0.01, "k": 3},
    "adan": {"lr": 0.01, "betas": (0.9, 0.8, 0.95)},  # three betas
    "adafactor": {"lr": 0.01},  # one value per row and per column as state
    "odd": {"lr": 0.03, "torch": 0.7},
}

SUBPROCESS = textwrap.dedent('''
    import importlib.abc, importlib.util, io, json, sys

    class Block(importlib.abc.MetaPathFinder):  # this process must not need discover
        def find_spec(self, name, path, target=None):
            if name == "discover" or name.startswith("discover."):
                raise ImportError("discover is blocked in this process")

    sys.meta_path.insert(0, Block())
    try:
        import discover  # noqa: F401
        raise SystemExit("discover could be imported")
    except ImportError:
        pass
    import torch
    from common import grads, params

    job = json.loads(sys.argv[1])
    out = {}
    for key, (path, cls_name, hp) in job["programs"].items():
        spec = importlib.util.spec_from_file_location(f"exported_{len(out)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cls = getattr(module, cls_name)
        ps = params()
        opt = cls([{"params": ps[:2]}, {"params": ps[2:]}], **hp)
        for gs in grads()[:job["split"]]:
            for p, g in zip(ps, gs):
                p.grad = g.to(p.dtype)
            opt.step()
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)  # a round trip through bytes, into a fresh optimizer
        buffer.seek(0)
        ps2 = [torch.nn.Parameter(p.detach().clone()) for p in ps]
        opt2 = cls([{"params": ps2[:2]}, {"params": ps2[2:]}], **hp)
        opt2.load_state_dict(torch.load(buffer))
        # and ProgramOptimizer's state_dict at the same point, into another fresh one
        ps3 = [torch.nn.Parameter(p.detach().clone()) for p in ps]
        opt3 = cls([{"params": ps3[:2]}, {"params": ps3[2:]}], **hp)
        opt3.load_state_dict(torch.load(job["program_optimizer_states"][key]))
        for gs in grads()[job["split"]:]:
            for o, qs in ((opt2, ps2), (opt3, ps3)):
                for p, g in zip(qs, gs):
                    p.grad = g.to(p.dtype)
                o.step()
        torch.save({"own": [p.detach() for p in ps2], "from_program_optimizer": [p.detach() for p in ps3],
                    "state_dict": opt2.state_dict()}, job["out"][key])
    # OneCycleLR cycling beta1 through betas, against torch.optim.Adam
    if "adam" in job["programs"]:
        path, cls_name, _ = job["programs"]["adam"]
        spec = importlib.util.spec_from_file_location("exported_adam", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        a, b = params(), params()
        ours, theirs = getattr(module, cls_name)(a, lr=0.01), torch.optim.Adam(b, lr=0.01)
        kw = dict(max_lr=0.1, total_steps=len(grads()), base_momentum=0.8, max_momentum=0.95)
        s1 = torch.optim.lr_scheduler.OneCycleLR(ours, **kw)
        s2 = torch.optim.lr_scheduler.OneCycleLR(theirs, **kw)
        for gs in grads():
            for p, q, g in zip(a, b, gs):
                p.grad, q.grad = g.to(p.dtype), g.to(q.dtype)
            ours.step(); theirs.step(); s1.step(); s2.step()
            assert ours.param_groups[0]["beta1"] == theirs.param_groups[0]["betas"][0]
        print("one-cycle max diff", max(float((p - q).abs().max()) for p, q in zip(a, b)))
''')

COMMON = textwrap.dedent('''
    import torch

    def params():
        gen = torch.Generator().manual_seed(0)
        shapes, dtypes = ((4, 3), (3,), (2, 5), (6,)), (torch.float32, torch.float64, torch.float64, torch.float32)
        return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64).to(d)) for s, d in zip(shapes, dtypes)]

    def grads(steps=%d):
        gen = torch.Generator().manual_seed(1)
        return [[torch.randn(s, generator=gen, dtype=torch.float64) for s in ((4, 3), (3,), (2, 5), (6,))]
                for _ in range(steps)]
''' % STEPS)


def _program(spec, tmp_path):
    if spec == "odd":
        path = tmp_path / "odd.opt"
        path.write_text(ODD)
        return load(str(path))
    return load(spec)


def _reference(program, hp, backend, split_state_path=None):
    namespace: dict = {}
    exec(COMMON, namespace)  # the test's own helper code (shared with the subprocess)
    ps = namespace["params"]()
    opt = ProgramOptimizer([{"params": ps[:2]}, {"params": ps[2:]}], program, backend=backend, **hp)
    for t, gs in enumerate(namespace["grads"]()):
        if t == SPLIT and split_state_path is not None:
            torch.save(opt.state_dict(), split_state_path)
        for p, g in zip(ps, gs):
            p.grad = g.to(p.dtype)
        opt.step()
    return [p.detach() for p in ps], opt


@pytest.fixture(scope="module")
def exported_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    (tmp / "common.py").write_text(COMMON)
    job = {"programs": {}, "out": {}, "program_optimizer_states": {}, "split": SPLIT}
    references = {}
    for key, hp in PROGRAMS.items():
        program = _program(key, tmp)
        path = tmp / f"exported_{key.replace('+', '_')}.py"
        path.write_text(export_source(program, "Exported"))
        job["programs"][key] = [str(path), "Exported", hp]
        job["out"][key] = str(tmp / f"{path.stem}.pt")
        job["program_optimizer_states"][key] = str(tmp / f"{path.stem}_po_state.pt")
        references[key] = _reference(program, hp, "foreach", job["program_optimizer_states"][key])
        references[key + ":fused"] = _reference(program, hp, "auto")
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS, json.dumps(job)], cwd=tmp, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = {key: torch.load(job["out"][key]) for key in PROGRAMS}
    return results, references, proc.stdout


@pytest.mark.parametrize("key", list(PROGRAMS))
def test_exported_optimizer_trains_exactly_as_program_optimizer(exported_runs, key):
    results, references, _ = exported_runs
    expected, _ = references[key]
    for which in ("own", "from_program_optimizer"):  # both state_dict round trips
        for got, want in zip(results[key][which], expected):
            assert got.dtype == want.dtype
            assert torch.equal(got, want), (key, which, float((got - want).abs().max()))
    fused, _ = references[key + ":fused"]  # the default backend: to float round-off
    for got, want in zip(results[key]["own"], fused):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("key", list(PROGRAMS))
def test_exported_state_dict_loads_into_program_optimizer(exported_runs, key):
    results, references, _ = exported_runs
    _, reference_opt = references[key]
    mine = reference_opt.state_dict()
    theirs = results[key]["state_dict"]
    fresh = ProgramOptimizer([{"params": list(reference_opt.param_groups[0]["params"])},
                              {"params": list(reference_opt.param_groups[1]["params"])}],
                             reference_opt.program, backend="foreach", **PROGRAMS[key])
    fresh.load_state_dict(theirs)
    assert theirs["param_groups"] == mine["param_groups"]
    for index, state in mine["state"].items():
        for name, value in state.items():
            other = fresh.state_dict()["state"][index][name]
            assert torch.equal(torch.as_tensor(other), torch.as_tensor(value)), (key, name)


def test_exported_adam_follows_one_cycle_lr_like_torch_adam(exported_runs):
    _, _, stdout = exported_runs
    diff = float(stdout.split("one-cycle max diff")[1].split()[0])
    assert diff < 1e-6  # float32 and float64 parameters; torch's Adam computes the same rule


def test_cli_writes_a_module_with_the_hyperparameters_as_keyword_arguments(tmp_path, capsys):
    out = tmp_path / "my_opt.py"
    assert main(["export", "lion", "-o", str(out), "--class-name", "MyLion"]) == 0
    assert "from my_opt import MyLion" in capsys.readouterr().out
    text = out.read_text()
    assert "def __init__(self, params, lr=0.0001, beta1=0.9, beta2=0.99, weight_decay=0.0, betas=None):" in text
    assert "update = lr*(w*weight_decay + sign(beta1*m + g*(1 - beta1)))" in text  # the formula, in the docstring


@pytest.mark.parametrize("argv, message", [
    (["export", "lookahead"], "export a composition such as 'lookahead+adam'"),
    (["export", "adam", "--class-name", "1st"], "is not a Python identifier"),
    (["export", "adam", "-o", "x.txt"], "should end in .py"),
])
def test_bad_exports_are_clear_errors(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_hyperparameter_named_like_an_argument_is_refused():
    from discover import parse

    program = parse("def f(w, g, *, lr=0.1, self=1.0):\n    return lr * self * g\n")
    with pytest.raises(ValueError, match="hyperparameter 'self' clashes"):
        export_source(program)


def test_user_text_reaches_the_file_only_as_comments(tmp_path):
    import ast

    from discover import parse

    doc = 'evil """ + __import__("os").system("echo hi") \\ é \x0c end'
    program = parse(f"# {doc}\ndef f(w, g, *, lr=0.1):\n    return lr * g\n")
    assert "evil" in program.doc
    source = export_source(program)
    tree = ast.parse(source)  # still one valid module
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert imported <= {"math", "torch", "repeat", "Tensor", "annotations"}
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "__import__" not in calls
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not any("evil" in s for s in strings)  # not in the docstring or any other literal: comments only
    assert any(line.startswith("#") and "evil" in line for line in source.splitlines())


def _load_exported(program, tmp_path, name):
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(export_source(program, "Exported"))
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Exported


@pytest.mark.parametrize("spec, hp, shapes", [
    ("muon", {"lr": 0.02, "ns_bf16": 0}, ((4, 3), (2, 5))),
    ("prodigy", {}, ((4, 3), (3,), (2, 5))),
    ("schedulefree_adamw", {"lr": 0.01, "warmup_steps": 3}, ((4, 3), (3,))),
])
def test_exported_matrix_group_and_eval_programs_train_as_program_optimizer(spec, hp, shapes, tmp_path):
    """Matrix ops, group sums and evaluation weights in an exported file: the same parameters as
    ProgramOptimizer (foreach) after steps, after eval() and after train() again."""
    cls = _load_exported(load(spec), tmp_path, spec)
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes] for _ in range(8)]
    runs = []
    for make in (lambda ps: cls(ps, **hp), lambda ps: ProgramOptimizer(ps, spec, backend="foreach", **hp)):
        ps = [torch.nn.Parameter(x.clone()) for x in start]
        opt = make(ps)
        seen = []
        for t, gs in enumerate(grads):
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
            if t == 4:
                opt.eval()
                seen.append([p.detach().clone() for p in ps])
                if spec == "schedulefree_adamw":  # in eval mode until train(); other programs: no eval weights
                    with pytest.raises(RuntimeError, match="train"):
                        opt.step()
                opt.train()
        seen.append([p.detach().clone() for p in ps])
        runs.append(seen)
    for ours, theirs in zip(*runs):
        for x, y in zip(ours, theirs):
            assert torch.equal(x, y)
    if spec == "schedulefree_adamw":  # eval() gave other weights than training's
        assert not torch.equal(runs[0][0][0], runs[0][1][0])
    if spec == "muon":
        with pytest.raises(ValueError, match=r"shape \(3,\).*non_matrix='diagonal'"):
            cls([torch.nn.Parameter(torch.ones(3))])
        cls([torch.nn.Parameter(torch.ones(3))], non_matrix="diagonal")
