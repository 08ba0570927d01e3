"""The command line reads the same everywhere: lists, --version, units, help that cites real files."""
import re
import tomllib
from pathlib import Path

import pytest

import discover
from discover.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.split()[:2] == ["discover", version]
    assert discover.__version__ == version


@pytest.mark.parametrize("argv, dest, expected", [
    (["search", "--tasks", "quadratic,mlp", "charlm"], "tasks", ["quadratic", "mlp", "charlm"]),
    (["search", "--tasks", "quadratic", "mlp"], "tasks", ["quadratic", "mlp"]),
    (["search", "--init", "adamw", "lion,sgd"], "init", ["adamw", "lion", "sgd"]),
    (["search", "--meta-tasks", ""], "meta_tasks", []),
    (["search", "--factors", "1,3", "10"], "factors", [1.0, 3.0, 10.0]),
    (["search", "--references", "momentum", "lion"], "references", ["momentum", "lion"]),
    (["compare", "adam", "--tasks", "quadratic,mlp"], "tasks", ["quadratic", "mlp"]),
    (["compare", "adam", "--lr-factors", "1", "3,10"], "lr_factors", [1.0, 3.0, 10.0]),
    (["simplify", "lion", "--ablate", "--tasks", "logistic,mlp"], "tasks", ["logistic", "mlp"]),
    (["bench", "step", "--programs", "adam", "lion,momentum"], "programs", ["adam", "lion", "momentum"]),
])
def test_lists_take_commas_or_spaces(argv, dest, expected):
    assert getattr(build_parser().parse_args(argv), dest) == expected


def test_a_bad_number_in_a_list_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["search", "--factors", "1,x"])
    assert exit_.value.code == 2
    assert "expected numbers separated by commas or spaces" in capsys.readouterr().err


def test_list_descriptions_are_whole_sentences(capsys):
    assert main(["list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["lookahead"].endswith("and the fast weights restart from them.")
    assert all(row.endswith(".") for row in rows.values()), rows


def test_memory_is_in_binary_units(capsys):
    assert main(["explain", "lion", "--params", "1e8"]) == 0
    # Lion keeps one float32 buffer: 4e8 bytes = 381.47 MiB (2**20 bytes each)
    assert "381.5 MiB for a 100M-parameter model" in capsys.readouterr().out


def _help_texts(parser, prefix=()):
    yield prefix, parser.format_help()
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield from _help_texts(sub, prefix + (name,))


def test_help_cites_only_files_that_exist():
    for where, text in _help_texts(build_parser()):
        for cited in re.findall(r"[\w./-]+\.md\b", " ".join(text.split())):
            assert (ROOT / cited).exists(), f"`discover {' '.join(where)} --help` cites {cited}, which is not in the repository"


def test_readme_and_docstring_name_the_same_default_backend():
    import inspect

    from discover import ProgramOptimizer
    from discover.compile import DEFAULT_BACKEND

    assert inspect.signature(ProgramOptimizer).parameters["backend"].default == "auto"
    readme = (ROOT / "README.md").read_text()
    said = re.search(r'The default, `backend="auto"`, is `"(\w+)"`', readme).group(1)
    assert said == DEFAULT_BACKEND
    doc = " ".join(ProgramOptimizer.__doc__.split())
    assert f'``"auto"`` (the default) is ``"{DEFAULT_BACKEND}"``' in doc
