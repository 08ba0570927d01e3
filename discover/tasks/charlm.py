"""Character-level language model on text that ships with Python itself."""

from __future__ import annotations

import codecs
import contextlib
import importlib
import inspect
import io
import math
import os
import sysconfig
from collections.abc import Sequence

import torch

from .base import ACTIVATIONS, SyntheticTask, population_cross_entropy

__all__ = ["CharLM", "CharLMLarge", "load_text", "encode", "VOCAB_SIZE", "STDLIB_SOURCES", "TEXT_A",
           "TEXT_B", "TEXT_C", "TEXT_SOURCES", "text_modules", "module_source", "module_doc", "zen_text"]

# Fixed vocabulary so parameter shapes never depend on the text found:
# 0 = any other character, 1 = newline, 2.. = printable ASCII 32..126.
VOCAB_SIZE = 2 + 95

#: Stable, prose-rich stdlib modules, read in this order until enough text is found.
STDLIB_SOURCES = ("textwrap", "heapq", "fractions", "statistics", "difflib", "calendar",
                  "shlex", "string", "getopt", "graphlib", "bisect", "colorsys")

#: Named text sources: disjoint tuples of stdlib module names (dotted, as for ``import``).
#: ``TEXT_A`` is :data:`STDLIB_SOURCES` (what ``charlm`` has always read); ``TEXT_B`` and
#: ``TEXT_C`` are other prose-rich modules (about 570k and 450k characters of source on
#: CPython 3.11), so tasks can train on one text and be validated on another.
TEXT_A = STDLIB_SOURCES
TEXT_B = ("argparse", "dataclasses", "functools", "typing", "contextlib", "enum", "pprint",
          "inspect")
TEXT_C = ("email.message", "email.utils", "email.feedparser", "http.client", "http.server",
          "http.cookiejar", "json", "json.decoder", "json.encoder", "logging", "logging.handlers")
TEXT_SOURCES: dict[str, tuple[str, ...]] = {"a": TEXT_A, "b": TEXT_B, "c": TEXT_C}


def text_modules(source: str | Sequence[str]) -> tuple[str, ...]:
    """The module names of a text ``source``: a key of :data:`TEXT_SOURCES` or module names.

    Example::

        text_modules("a")[:2]            # ('textwrap', 'heapq')
        text_modules(["json", "csv"])    # ('json', 'csv')
    """
    if isinstance(source, str):
        if source not in TEXT_SOURCES:
            raise ValueError(f"unknown text source {source!r}; known: {sorted(TEXT_SOURCES)} "
                             "or a sequence of stdlib module names")
        return TEXT_SOURCES[source]
    return tuple(source)


def module_source(mod: str) -> str | None:
    """The source text of stdlib module ``mod`` (``"json"``, ``"email.utils"``), or ``None``.

    Looks for ``<stdlib>/a/b.py`` and then ``<stdlib>/a/b/__init__.py`` under
    ``sysconfig``'s stdlib directory; nothing is imported.

    Example::

        "class JSONDecoder" in module_source("json.decoder")   # True
    """
    stdlib = sysconfig.get_paths().get("stdlib", "")
    base = os.path.join(stdlib, *mod.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError:
            continue
    return None


def module_doc(mod: str) -> str | None:
    """The docstring of module ``mod`` (imported), or ``None`` if missing or not importable.

    Example::

        module_doc("textwrap")   # 'Text wrapping and filling.'
    """
    try:
        return inspect.getdoc(importlib.import_module(mod))
    except ImportError:
        return None


def load_text(max_chars: int = 64_000, source: str | Sequence[str] = "a") -> str:
    """Up to ``max_chars`` characters of English-and-Python text from the standard library.

    Reads the source files of the modules of ``source`` (a key of
    :data:`TEXT_SOURCES`, default ``"a"`` = :data:`STDLIB_SOURCES`, or a sequence of
    module names) from ``sysconfig``'s stdlib directory, in order; if they give
    fewer than ``max_chars`` characters (e.g. a zipped or .pyc-only stdlib) it
    appends the modules' docstrings (absent under ``python -OO``) and finally the
    Zen of Python, repeated. The text depends only on the Python version.

    Example::

        text = load_text(10_000)              # starts with textwrap.py's source
        other = load_text(10_000, "b")        # starts with argparse.py's source
    """
    modules = text_modules(source)
    parts: list[str] = []
    total = 0
    for mod in modules:
        if total >= max_chars:
            break
        src = module_source(mod)
        if src is None:
            continue
        parts.append(src)
        total += len(parts[-1])
    if total < max_chars:
        for mod in modules:
            doc = module_doc(mod)
            if doc:
                parts.append(doc + "\n\n")
                total += len(parts[-1])
    if total < max_chars // 4:
        parts.append(zen_text(max_chars - total))
    return "".join(parts)[:max_chars]


def zen_text(min_chars: int) -> str:
    """The Zen of Python repeated to at least ``min_chars`` characters (the last-resort text).

    Example::

        zen_text(10).startswith("The Zen of Python")   # True
    """
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    zen = codecs.decode(this.s, "rot13") + "\n\n"
    return zen * max(1, math.ceil(min_chars / len(zen)))


def encode(text: str) -> torch.Tensor:
    """Map text to ids in ``[0, VOCAB_SIZE)`` (int64) with the fixed vocabulary.

    Example::

        encode("a\\n")   # tensor([67, 1])
    """
    if not text:
        return torch.zeros(0, dtype=torch.long)  # frombuffer rejects an empty buffer
    # UTF-32 gives exactly one code point per character, so length is preserved.
    raw = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
    printable = (raw >= 32) & (raw <= 126)
    return torch.where(printable, raw - 30, torch.where(raw == 10, 1, 0))


class CharLM(SyntheticTask):
    """Predict the next character from the previous ``context`` ones (Bengio-style MLP LM).

    Embedding ``(V, emb)`` per member, the ``context`` embeddings are concatenated
    and fed to a ReLU (or GELU/tanh) hidden layer and a softmax over the ``V = 97`` character
    vocabulary; loss is cross-entropy in nats (``log 97 = 4.57`` at chance). The
    text (:func:`load_text`) is cut into 512-character chunks and every 10th chunk
    is held out for validation (so validation text is interleaved, not a
    different file). Validation uses ``n_val`` fixed held-out positions.

    Example::

        task = CharLM(); task.setup()
        params = task.init_params([0, 1])        # emb, W1, b1, W2, b2
        task.train_loss(params, step=1)          # shape (2,), about log(97) at init
    """

    name = "charlm"
    steps = 150
    summary = "MLP char LM (8-char context, emb 16, hidden 128) on text A"

    def __init__(self, context: int = 8, emb: int = 16, hidden: int = 128, max_chars: int = 64_000,
                 batch_size: int = 128, n_val: int = 4096, activation: str = "relu",
                 data_seed: int = 14, steps: int | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, not {activation!r}")
        self.activation = activation
        self.act, self.gain = ACTIVATIONS[activation]
        self.context, self.emb, self.hidden, self.max_chars = context, emb, hidden, max_chars
        self.batch_size, self.n_val, self.data_seed = batch_size, n_val, data_seed
        if steps is not None:
            self.steps = steps

    def make_data(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        ids = encode(load_text(self.max_chars))
        pos = torch.arange(self.context, len(ids))          # predict ids[p] from ids[p-context:p]
        is_val = (pos // 512) % 10 == 9
        val_pos = pos[is_val]
        pick = torch.randperm(len(val_pos), generator=generator)[: self.n_val]
        return {"ids": ids, "train_pos": pos[~is_val], "val_pos": val_pos[pick.sort().values]}

    def param_shapes(self) -> list[tuple[int, ...]]:
        return [(VOCAB_SIZE, self.emb), (self.context * self.emb, self.hidden), (self.hidden,),
                (self.hidden, VOCAB_SIZE), (VOCAB_SIZE,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        # Unit-scale embeddings (so the first layer sees unit-scale inputs), LeCun for the
        # hidden layer, the activation's gain for the output layer, zero biases.
        emb, w1, b1, w2, b2 = super().init_member(generator)
        return [torch.randn(emb.shape, generator=generator), w1, b1, w2 * self.gain, b2]

    def _loss(self, params: list[torch.Tensor], pos: torch.Tensor) -> torch.Tensor:
        emb, w1, b1, w2, b2 = params
        ids = self.data["ids"]
        ctx = ids[pos.unsqueeze(1) + torch.arange(-self.context, 0, device=pos.device)]  # (B, ctx)
        e = emb[:, ctx].reshape(emb.shape[0], len(pos), -1)     # (N, B, ctx*emb), per-member table
        h = self.act(torch.baddbmm(b1.unsqueeze(1), e, w1))
        return population_cross_entropy(torch.baddbmm(b2.unsqueeze(1), h, w2), ids[pos])

    def train_loss(self, params: list[torch.Tensor], step: int) -> torch.Tensor:
        self._ensure_setup(params)
        train_pos = self.data["train_pos"]
        return self._loss(params, train_pos[self.batch_indices(step, len(train_pos), self.batch_size)])

    def val_loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        self._ensure_setup(params)
        val_pos = self.data["val_pos"]
        parts = [self._loss(params, val_pos[i:i + 1024]) * len(val_pos[i:i + 1024])
                 for i in range(0, len(val_pos), 1024)]
        return torch.stack(parts).sum(0) / len(val_pos)


class CharLMLarge(CharLM):
    """Meta-validation character LM: longer context, wider, ~3x the text, longer training.

    Example::

        task = CharLMLarge(); task.setup()
    """

    name = "charlm_large"
    steps = 300
    summary = "MLP char LM (12-char context, hidden 160) on 200k chars of text A"

    def __init__(self, **overrides) -> None:
        kw = dict(context=12, emb=16, hidden=160, max_chars=200_000, batch_size=128,
                  n_val=8192, data_seed=114)
        super().__init__(**{**kw, **overrides})
