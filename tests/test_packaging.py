"""Every subpackage is listed in pyproject.toml, so `pip install .` ships all of discover."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(discover(?:\.\w+)*)"', text.split("packages = [", 1)[1].split("]", 1)[0]))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "discover").rglob("__init__.py")}
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "discover.programs" in listed


def test_builtin_programs_ship_as_package_data():
    assert any((ROOT / "programs").glob("*.opt"))
    assert '"discover.programs" = ["*.opt"]' in (ROOT / "pyproject.toml").read_text()


def test_a_regular_install_finds_the_builtin_programs(tmp_path):
    """`pip install .` (not editable) ships programs/ as discover/programs."""
    import subprocess
    import sys

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True)
    code = ("import discover, discover.library as lib; "
            "print(lib.programs_dir()); print(','.join(discover.builtin_names()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == str(target / "discover" / "programs")
    assert out[1].split(",") == sorted(p.stem for p in (ROOT / "programs").glob("*.opt"))


def test_the_distribution_name_is_used_in_every_install_line():
    """`discover` on PyPI is an unrelated package: every install line names our distribution."""
    import importlib.metadata
    import tomllib

    from discover.extras import DISTRIBUTION

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "discover"
    try:
        installed = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # a venv made before the rename
        raise AssertionError(f"{DISTRIBUTION} is not installed (an older install names it `discover`): "
                             f"pip uninstall -y discover && pip install -e '.[dev,plot,ray,tensorboard]'") from None
    assert installed == project["version"]  # what pip installed
    texts = [ROOT / "README.md", ROOT / "runs" / "README.md", ROOT / ".ci" / "run", *(ROOT / "discover").rglob("*.py")]
    wrong = re.compile(r"""pip install\s+['"]?discover(\[|['"\s]|$)""", re.M)
    bad = [str(p.relative_to(ROOT)) for p in texts if p.exists() and wrong.search(p.read_text())]
    assert bad == [], f"install lines naming the PyPI package `discover` (not ours) in {bad}"


def test_a_missing_extra_says_how_to_install_it():
    from discover.extras import need

    try:
        need("no_such_module_for_this_test", "plot", "the loss-curve plot")
    except ValueError as exc:
        assert str(exc) == ("the loss-curve plot needs matplotlib: pip install matplotlib "
                            "(or pip install 'discover-optimizers[plot]')")
    else:
        raise AssertionError("no error for a missing module")
