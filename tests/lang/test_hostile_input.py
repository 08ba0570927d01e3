"""Program text and files a careless user gives: every one a `ProgramError` with file, line and
column (or the file alone when the problem is the file), never a traceback or a hang."""
import json
import os
import threading

import pytest

from discover import ProgramError, parse, parse_file
from discover.lang.parse import MAX_SOURCE_BYTES
from discover.search.program import program_from_json, program_to_json

BIG = "1" + "0" * 308  # 1e308 written as an int fits a float; ten times that does not
HUGE = "1" + "0" * 309


@pytest.mark.parametrize("text, line, col", [
    (f"def f(w, g, *, lr={HUGE}):\n    return lr * g\n", 1, 19),
    (f"def f(w, g, m={HUGE}):\n    return g, m\n", 1, 15),
    (f"def f(w, g):\n    return {HUGE} * g\n", 2, 12),
    (f"def f(w, g):\n    return -{HUGE} * g\n", 2, 13),
])
def test_an_integer_literal_too_large_for_a_float_is_an_error_at_its_position(text, line, col):
    with pytest.raises(ProgramError, match="too large for a float") as info:
        parse(text, filename="big.opt")
    assert (info.value.filename, info.value.line, info.value.col) == ("big.opt", line, col)
    assert parse(f"def f(w, g, *, lr={BIG}):\n    return lr * g\n").defaults["lr"] == 1e308


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    text = "def f(w, g, *, lr=0.5):\n    return lr * g\n"
    f = tmp_path / "bom.opt"
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert parse_file(f) == parse(text) == parse("\ufeff" + text) == parse(b"\xef\xbb\xbf" + text.encode())


def test_a_lone_surrogate_is_an_error_with_line_and_column():
    with pytest.raises(ProgramError, match="not valid Unicode") as info:
        parse("def f(w, g):\n    x = g\n    return x  # caf\udce9\n")
    assert (info.value.line, info.value.col) == (3, 20)


def _parse_in_thread(path):
    """parse_file(path) in a thread, so a hang fails the test instead of blocking it."""
    out = {}

    def target():
        try:
            parse_file(path)
        except ProgramError as exc:
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), f"parse_file({path}) did not return"
    return out["error"]


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused_without_reading_it():
    err = _parse_in_thread("/dev/zero")
    assert err.filename == "/dev/zero" and "not a regular file" in err.message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs")
def test_a_fifo_nobody_writes_to_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "p.opt"
    os.mkfifo(fifo)
    assert "not a regular file" in _parse_in_thread(fifo).message


def test_a_directory_and_an_oversized_file_are_refused(tmp_path):
    assert "it is a directory" in _parse_in_thread(tmp_path).message
    big = tmp_path / "big.opt"
    with open(big, "wb") as f:
        f.truncate(50 * MAX_SOURCE_BYTES)  # sparse: large on paper, nothing to write
    err = _parse_in_thread(big)
    assert f"over {MAX_SOURCE_BYTES} bytes" in err.message and err.filename == str(big)


def test_a_scalar_state_cannot_start_as_a_copy_of_w():
    with pytest.raises(ProgramError, match="scalar state 'm' cannot start as a copy of w") as info:
        parse("def f(w, g, m: scalar = w):\n    return g, m\n", filename="s.opt")
    assert (info.value.line, info.value.col) == (1, 25)
    assert parse("def f(w, g, m=w):\n    return g, m\n").states[0].init.name == "w"  # tensor state may
    data = program_to_json(parse("def f(w, g, m: scalar = 0):\n    return g, m\n"))
    data["states"][0][1] = "w"
    with pytest.raises(ProgramError, match="scalar state 'm' cannot start as a copy of w"):
        program_from_json(json.loads(json.dumps(data)))
