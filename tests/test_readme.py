"""The README stays true: it documents every op, and CI runs exactly its test command."""
import re
from pathlib import Path

from discover.lang.ops import OPS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_op():
    documented = set(re.findall(r"^\| `[^`]+` \| `(\w+)` \|", README, flags=re.M))
    missing = set(OPS) - documented - {"copy"}
    assert not missing, f"ops missing from README's op table: {sorted(missing)}"
    assert not documented - set(OPS), f"README documents ops that do not exist: {sorted(documented - set(OPS))}"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_builtin():
    from discover import builtin_names

    for name in builtin_names():
        assert f"`{name}`" in README, name


def test_readme_python_example_runs(monkeypatch, capsys):
    code = re.search(r"## In Python\n\n```python\n(.+?)```", README, re.S).group(1)
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # our own README, not program text
    assert "def lookahead_adam(" in capsys.readouterr().out
