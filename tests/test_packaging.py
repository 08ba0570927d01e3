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
