"""No user string reaches generated Python or C++ except as a validated identifier or an escaped
literal or comment. Every generator is tested: the foreach Python step and its scalar prologue,
the fused C++ kernel (body and reduction passes), the population kernel (its Python prologue; its
C++ interpreter is the same for every program), the Triton step kernels (body, reduction passes
and their finishing kernels; the Triton population interpreter is the same for every program),
the torch batched step and `discover export`'s file.

Two layers: (1) docs are free text and reach the generators as they are; (2) names are validated
where a Program is built (tests/lang/test_names.py), so here that validation is switched off to
show the generators do not depend on it: a program whose every name is hostile generates code
that parses, compiles, runs bit for bit like the same program with plain names, and runs nothing
else."""
import ast
import importlib
import importlib.util
import re

import pytest
import torch

from discover import ProgramError, ProgramOptimizer, parse
from discover.compile import fused, torch_source
from discover.compile.population_torch import compile_batched, init_states
from discover.compile.lower import lower, prologue
from discover.compile import triton_step
from discover.compile.population_kernel import population_step
from discover.compile.source import comment
from discover.evaluate.work import ensure_lr
from discover.lang.ir import Const, HParam, Ref, State, Stmt
from _stepcheck import needs_compiler

BACKENDS = ["reference", "foreach", "fused"]
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None or not torch.cuda.is_available()
                                  and not triton_step.runs_on("cpu"),
                                  reason="triton is not installed (pip install -e '.[gpu]'), or no GPU and no "
                                         "TRITON_INTERPRET: the Triton kernels do not run here")
# adam with a norm (a reduction pass in the fused kernel) and a scalar state (prologue output)
BASE = """
def base(w, g, step, m=0, v=0, c: scalar = 0, *, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
    g = g + weight_decay * w
    m = interp(g, m, beta1)
    v = interp(g * g, v, beta2)
    c = c + 1
    denom = sqrt(v) / sqrt(1 - beta2 ** step) + eps
    scale = norm(m) / (norm(g) + eps)
    return lr / (1 - beta1 ** step) * m / denom + 0.001 * scale * g + 0 * c, m, v, c
"""


def hostile_strings(marker):
    touch = f"__import__('os').system('touch {marker}')"
    return [
        f'x"""\n{touch}\n"""',
        f"x'''\n{touch}\n'''",
        f"a\n{touch} #",
        f"a\r{touch}",
        f"a */ int evil = system(\"touch {marker}\"); /* b",
        "ends in a backslash \\",
        f"a\\\n{touch}",
        f"line\u2028sep\x0c{touch}",
        "??/",
        "λ ☃ \udc80",
        "\x00nul",
    ]


def _rename(program, mapping):
    def op(a):
        return Ref(mapping.get(a.name, a.name)) if isinstance(a, Ref) else a

    return program.with_(
        states=tuple(State(mapping.get(s.name, s.name), op(s.init), s.scalar) for s in program.states),
        hparams=tuple(HParam(mapping.get(h.name, h.name), h.default) for h in program.hparams),
        body=tuple(Stmt(mapping.get(s.target, s.target), s.op, tuple(op(a) for a in s.args)) for s in program.body),
        returns=tuple(op(a) for a in program.returns))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "INJECTED"
    yield path
    assert not path.exists(), "generated code ran a user string"


@pytest.fixture
def no_name_check(monkeypatch):
    checker = importlib.import_module("discover.lang.check")  # the module (the package exports the function)
    monkeypatch.setattr(checker, "check_names", lambda program, filename="<program>": None)


def _pair(marker):
    """(plain program, the same program with every name, the doc and the program name hostile, name map)."""
    plain = ensure_lr(parse(BASE))
    names = list(plain.state_names) + [h for h in plain.hparam_names if h != "lr"] + ["denom", "scale"]
    bad = hostile_strings(marker)
    mapping = {n: f"{n}{bad[i % len(bad)]}" for i, n in enumerate(names)}
    evil = _rename(plain, mapping).with_(name=bad[0], doc="\n".join(bad))
    return plain, evil, mapping


def _python_identifiers_are_plain(src):
    tree = ast.parse(src)
    for node in ast.walk(tree):
        for ident in ([node.id] if isinstance(node, ast.Name) else [node.arg] if isinstance(node, ast.arg)
                      else [node.name] if isinstance(node, ast.FunctionDef) else []):
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident), ident
    return tree


def _optimizer_run(program, backend, hp_names):
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in [(3, 4), (5,), (7,)]]
    opt = ProgramOptimizer(params, program, backend=backend)
    for _ in range(6):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        opt.step()
    states = [[opt.state[p][hp_names.get(s, s)] for s in ("m", "v", "c")] for p in params]
    return [p.detach().clone() for p in params], states


# ---------------------------------------------------------------- (1) hostile docs, names validated


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_docs_change_nothing_on_any_backend(marker, backend):
    plain = parse(BASE)
    evil = plain.with_(doc="\n".join(hostile_strings(marker)))
    want = _optimizer_run(plain, backend, {})
    got = _optimizer_run(evil, backend, {})
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_hostile_docs_in_every_generated_source(marker):
    plain = ensure_lr(parse(BASE))
    evil = plain.with_(doc="\n".join(hostile_strings(marker)))
    assert torch_source(evil) == torch_source(plain)  # the doc is not written into code at all
    assert fused.kernel_source(evil) == fused.kernel_source(plain)
    assert triton_step.kernel_source(evil) == triton_step.kernel_source(plain)
    prologue(lower(evil))
    _python_identifiers_are_plain(torch_source(evil))


# ---------------------------------------------------------------- (2) hostile names, validation off


def test_names_are_validated_before_any_generator_runs(marker):
    _, evil, _ = _pair(marker)
    for generate in (torch_source, fused.kernel_source, triton_step.kernel_source,
                     lambda p: prologue(lower(p)), population_step):
        with pytest.raises(ProgramError, match="not an identifier"):
            generate(evil)


def test_foreach_source_with_hostile_names_only_holds_them_as_literals_and_comments(marker, no_name_check):
    plain, evil, mapping = _pair(marker)
    src = torch_source(evil)
    tree = _python_identifiers_are_plain(src)
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for name in ("m", "v", "c", "beta1", "weight_decay"):
        assert mapping[name] in literals  # as a dict key, exactly (state and hyperparameter lookups)
    # comments hold them escaped: one physical line each, never a second statement
    assert len(src.splitlines()) == len(torch_source(plain).splitlines())
    assert comment(mapping["m"]) in src


def test_fused_source_with_hostile_names_has_them_only_in_comments(marker, no_name_check):
    plain, evil, _ = _pair(marker)

    def code_only(src):  # drop // comments; nothing else may differ
        return [re.sub(r"\s*//.*$", "", line) for line in src.splitlines()]

    assert code_only(fused.kernel_source(evil)) == code_only(fused.kernel_source(plain))
    for line in fused.kernel_source(evil).splitlines():
        if "//" in line:  # a backslash-newline would continue a // comment onto the next line
            assert not line.rstrip().endswith("\\")
        assert "*/" not in line.split("//")[0]


def test_triton_source_with_hostile_names_has_them_only_in_comments_and_literals(marker, no_name_check):
    plain, evil, mapping = _pair(marker)
    src = triton_step.kernel_source(evil)
    tree = _python_identifiers_are_plain(src)  # Triton source is Python: every identifier is ours

    def code_only(t):  # string literals blanked (comments are not in the tree): nothing else may differ
        for node in ast.walk(t):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                node.value = ""
        return ast.dump(t)

    assert code_only(tree) == code_only(ast.parse(triton_step.kernel_source(plain)))
    literals = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert any(evil.name in lit for lit in literals)  # the program's name, as an escaped literal
    assert len(src.splitlines()) == len(triton_step.kernel_source(plain).splitlines())  # comments stay one line


@needs_triton
def test_triton_steps_with_hostile_names_run_bit_for_bit_like_plain_ones(marker, no_name_check):
    plain, evil, mapping = _pair(marker)
    results = []
    for program, names in ((plain, {}), (evil, mapping)):
        gen = torch.Generator().manual_seed(0)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(device)) for s in [(3, 4), (5,), (7,)]]
        opt = ProgramOptimizer(params, program, backend="triton")
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen).to(device)
            opt.step()
        assert opt._step_fn.launches[0] == 4 * 3  # the kernel ran (a norm: two more launches a step)
        results.append([p.detach().cpu() for p in params] +
                       [opt.state[p][names.get(s, s)].cpu() for p in params for s in ("m", "v")])
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["reference", "foreach", pytest.param("fused", marks=needs_compiler)])
def test_hostile_names_run_bit_for_bit_like_plain_ones(marker, no_name_check, backend):
    plain, evil, mapping = _pair(marker)
    if backend == "fused":
        fused._build(fused.kernel_source(evil))  # the kernel itself compiles: no fallback hides a broken one
    want = _optimizer_run(plain, backend, {})
    got = _optimizer_run(evil, backend, mapping)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _triton_population(program):
    from discover.compile.triton_population import compile_triton_population

    return compile_triton_population(program)


@pytest.mark.parametrize("make", [population_step, compile_batched, pytest.param(_triton_population, marks=needs_triton)],
                         ids=["population", "batched", "triton_population"])
def test_population_steps_with_hostile_names_run_like_plain_ones(marker, no_name_check, make):
    plain, evil, mapping = _pair(marker)
    results = []
    dtype = torch.float32 if make is _triton_population else torch.float64  # the Triton interpreter: float32
    device = "cuda" if make is _triton_population and torch.cuda.is_available() else "cpu"
    for program, names in ((plain, {}), (evil, mapping)):
        gen = torch.Generator().manual_seed(1)
        params = [torch.randn(3, *s, generator=gen, dtype=dtype).to(device) for s in [(4,), (2, 3)]]
        hp = {names.get(k, k): v for k, v in program.defaults.items()} if names else dict(program.defaults)
        hp = {**dict(program.defaults), **hp}
        hp[names.get("lr", "lr")] = torch.tensor([1e-3, 1e-2, 3e-2], dtype=dtype)
        states = init_states(program, params, hp)
        step = make(program)
        for k in range(1, 6):
            step(params, [torch.randn(p.shape, generator=gen, dtype=dtype).to(device) for p in params], states, k, hp)
        if make is _triton_population:
            assert step.launches[0] == 5 * 3  # the kernel ran: a pass, its finish, the body
        results.append([t.cpu() for t in params + [t for s in program.state_names for t in states[s]]])
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


def test_comment_never_ends_a_line_early_nor_continues_one():
    for s in hostile_strings("F") + ["plain text = 1", "a/b*c"]:
        c = comment(s)
        assert "\n" not in c and "\r" not in c and not c.endswith("\\")
        assert c.isascii() and c.isprintable()


# ---------------------------------------------------------------- discover export (a generator too)


def test_export_with_hostile_names_refuses_them_or_holds_them_only_as_literals(marker, no_name_check):
    from discover.export import export_source

    plain, evil, mapping = _pair(marker)
    with pytest.raises(ValueError, match="is not an identifier; it cannot be a keyword argument"):
        export_source(evil, "Evil")  # its hyperparameters would be keyword arguments: refused
    hps = {h: h for h in plain.hparam_names}  # keep them plain; every other name stays hostile
    evil = _rename(evil, {v: k for k, v in mapping.items() if k in hps})
    src = export_source(evil, "Evil")
    _python_identifiers_are_plain(src)
    results = []
    for program, source in ((plain, export_source(plain, "Evil")), (evil, src)):
        ns = {}
        exec(compile(source, "<exported>", "exec"), ns)  # noqa: S102 - the generated file under test
        gen = torch.Generator().manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(4, generator=gen, dtype=torch.float64)) for _ in range(2)]
        opt = ns["Evil"](params)
        for _ in range(4):
            for p in params:
                p.grad = torch.randn(4, generator=gen, dtype=torch.float64)
            opt.step()
        results.append([p.detach().clone() for p in params])
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


def test_export_refuses_a_hyperparameter_named_super():
    from discover.export import export_source

    with pytest.raises(ValueError, match="hyperparameter 'super' clashes"):
        export_source(parse("def f(w, g, *, lr=0.1, super=1.0):\n    return lr * super * g\n"))
