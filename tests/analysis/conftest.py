from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def lion_raw_path() -> Path:
    return HERE / "lion_raw.opt"
