"""The op table's fast scalar path (plain Python floats): + - * / sqrt give numpy float64's exact bits;
pow gives Python's own float pow (the one torch.optim's bias corrections use) and IEEE specials where
Python raises or returns a complex number."""
import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.lang.ops import OPS

SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -0.5, 3.0, 1e-300, -1e-300, 1e300, -1e300, 5e-324,
            math.inf, -math.inf, math.nan, 0.9, 0.999, 1e-8]
floats = st.one_of(st.sampled_from(SPECIALS), st.floats(allow_nan=True, allow_infinity=True), st.integers(-50, 5000))


def _numpy(name: str, *args: float) -> float:
    fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power,
          "sqrt": np.sqrt}[name]
    with np.errstate(all="ignore"):
        return float(fn(*(np.float64(a) for a in args)))


def _bits(x: float) -> bytes:
    return b"nan" if x != x else struct.pack("<d", x)


@settings(max_examples=400, deadline=None)
@given(x=floats, y=floats)
def test_binary_scalars_match_numpy_bit_for_bit(x, y):
    for name in ("add", "sub", "mul", "div"):
        assert _bits(OPS[name].fn(x, y)) == _bits(_numpy(name, x, y)), (name, x, y)
    try:
        expected = float(x) ** float(y)
        if not isinstance(expected, float):
            raise ValueError
    except (ArithmeticError, ValueError):
        expected = _numpy("pow", x, y)
    assert _bits(OPS["pow"].fn(x, y)) == _bits(expected), ("pow", x, y)


@settings(max_examples=200, deadline=None)
@given(x=floats)
def test_sqrt_scalar_matches_numpy_bit_for_bit(x):
    assert _bits(OPS["sqrt"].fn(x)) == _bits(_numpy("sqrt", x))


def test_exceptional_cases_are_ieee_not_exceptions():
    assert OPS["div"].fn(1.0, 0.0) == math.inf
    assert OPS["pow"].fn(0.0, -1.0) == math.inf
    assert math.isnan(OPS["pow"].fn(-8.0, 1 / 3))  # Python gives a complex number here
    assert OPS["pow"].fn(10.0, 400.0) == math.inf  # Python raises OverflowError
    assert math.isnan(OPS["sqrt"].fn(-1.0))
    assert OPS["mod"].fn(-5.0, 3.0) == 1.0
