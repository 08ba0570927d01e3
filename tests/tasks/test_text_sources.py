"""Named stdlib text sources for the character-level tasks."""

from __future__ import annotations

import os
import sysconfig

import pytest

from discover.tasks import charlm


def test_text_sources_are_disjoint_stdlib_modules():
    assert charlm.TEXT_A == charlm.STDLIB_SOURCES  # what charlm has always read
    a, b, c = (set(charlm.text_modules(k)) for k in "abc")
    assert not (a & b or a & c or b & c)
    stdlib = sysconfig.get_paths()["stdlib"]
    for mod in b | c:
        base = os.path.join(stdlib, *mod.split("."))
        assert os.path.exists(base + ".py") or os.path.exists(os.path.join(base, "__init__.py")), mod
    with pytest.raises(ValueError, match="unknown text source"):
        charlm.text_modules("z")
    assert charlm.encode("").shape == (0,) and charlm.encode("a\n").tolist() == [67, 1]


def test_load_text_reads_the_source_files_in_order():
    stdlib = sysconfig.get_paths()["stdlib"]

    def read(*parts):
        with open(os.path.join(stdlib, *parts), encoding="utf-8") as f:
            return f.read()

    # Source A is byte for byte what charlm read before sources had names.
    expected_a = read("textwrap.py") + read("heapq.py") + read("fractions.py")
    assert charlm.load_text(64_000) == expected_a[:64_000] == charlm.load_text(64_000, "a")
    assert charlm.load_text(150_000, "b") == (read("argparse.py") + read("dataclasses.py"))[:150_000]
    # Packages are read from their __init__.py.
    assert charlm.load_text(20_000, ("json", "email.utils")) == \
        (read("json", "__init__.py") + read("email", "utils.py"))[:20_000]


def test_load_text_fallbacks_for_other_sources(monkeypatch, tmp_path):
    monkeypatch.setattr(charlm.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    import argparse
    doc = charlm.load_text(1_000_000, "b")            # no sources: the modules' docstrings
    assert doc.startswith(argparse.__doc__.strip()[:50])
    monkeypatch.setattr(charlm.inspect, "getdoc", lambda obj: None)
    assert charlm.load_text(3_000, "c").startswith("The Zen of Python")
