"""Small causal character-level transformer LM on text that ships with Python itself."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import population_layer_norm, population_linear
from .charlm import VOCAB_SIZE, text_modules
from .textwindow import WindowLM

__all__ = ["TransformerLM", "TransformerLMB"]

#: Parameters of one transformer block, in order (shapes in `TransformerLM.param_shapes`).
BLOCK_PARAMS = ("ln1_g", "ln1_b", "w_qkv", "b_qkv", "w_o", "b_o",
                "ln2_g", "ln2_b", "w_fc", "b_fc", "w_proj", "b_proj")


class TransformerLM(WindowLM):
    """Causal character transformer: next-character cross-entropy on random windows of text.

    Architecture (GPT-2 style, pre-LayerNorm): learned token ``(V, d)`` and
    position ``(context, d)`` embeddings; ``n_layers`` blocks of
    ``x + Attn(LN1(x))`` then ``x + MLP(LN2(x))``, where ``Attn`` is multi-head
    causal self-attention (fused ``qkv`` projection ``(d, 3d)`` with bias, output
    projection ``(d, d)`` with bias) and ``MLP`` is ``(d, 4d)``, exact GELU,
    ``(4d, d)``; a final LayerNorm and an untied output projection ``(d, V)`` with
    bias. Every LayerNorm has its own gain and bias (eps 1e-5). The population
    runs batched: linear layers are ``baddbmm`` with members as the batch, the
    attention is ``scaled_dot_product_attention`` over ``(N * batch, heads)``.

    Init: GPT-2's (normal std 0.02 at width 768 for every weight and embedding,
    the two residual output projections of each block scaled by
    ``1 / sqrt(2 * n_layers)``, zero biases, unit LayerNorm gains), with the std
    rescaled to this width as ``0.02 * sqrt(768 / d_model)``: a unit-variance input
    then leaves every layer at GPT-2's scale (``std * sqrt(d_model) = 0.55``),
    where a literal std of 0.02 at ``d_model = 32`` would start every block 5x
    smaller.

    Data (see :class:`~discover.tasks.textwindow.WindowLM`): ``batch_size``
    random windows of ``context + 1`` characters of ``text`` per step, loss the
    mean next-character cross-entropy over all ``context`` positions (``log 97 =
    4.57`` nats at chance); validation on ``n_val`` fixed held-out windows.

    Example::

        task = TransformerLM(); task.setup()
        params = task.init_params([0, 1])
        task.train_loss(params, step=1)          # shape (2,), about log(97) at init
    """

    name = "transformer"
    steps = 300
    summary = "2-layer d=32 causal char transformer (pre-LN, 2 heads), text A, 3 windows of 32 per step"

    def __init__(self, d_model: int = 32, n_layers: int = 2, n_heads: int = 2, context: int = 32,
                 batch_size: int = 3, mlp_ratio: int = 4, text: str | tuple[str, ...] = "a",
                 max_chars: int = 64_000, n_val: int = 128, data_seed: int = 21,
                 steps: int | None = None) -> None:
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        text_modules(text)  # fail early on an unknown source
        self.d_model, self.n_layers, self.n_heads, self.context = d_model, n_layers, n_heads, context
        self.batch_size, self.mlp_ratio, self.text, self.max_chars = batch_size, mlp_ratio, text, max_chars
        self.n_val, self.data_seed = n_val, data_seed
        if steps is not None:
            self.steps = steps

    # -- parameters -----------------------------------------------------------------------------

    def param_shapes(self) -> list[tuple[int, ...]]:
        d, f = self.d_model, self.mlp_ratio * self.d_model
        block = [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,),
                 (d,), (d,), (d, f), (f,), (f, d), (d,)]
        return [(VOCAB_SIZE, d), (self.context, d), *block * self.n_layers,
                (d,), (d,), (d, VOCAB_SIZE), (VOCAB_SIZE,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        std = 0.02 * math.sqrt(768 / self.d_model)
        resid = std / math.sqrt(2 * self.n_layers)
        out = []
        names = ["tok", "pos", *BLOCK_PARAMS * self.n_layers, "lnf_g", "lnf_b", "w_out", "b_out"]
        for name, shape in zip(names, self.param_shapes()):
            if name.endswith("_g"):
                out.append(torch.ones(shape))
            elif len(shape) == 1:
                out.append(torch.zeros(shape))
            else:
                scale = resid if name in ("w_o", "w_proj") else std
                out.append(torch.randn(shape, generator=generator) * scale)
        return out

    # -- model ----------------------------------------------------------------------------------

    def logits(self, params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """Per-member next-character logits ``(N, B, T, V)`` for input ids ``(B, T)``, ``T <= context``.

        Example::

            task.logits(params, torch.zeros(2, 5, dtype=torch.long)).shape   # (N, 2, 5, 97)
        """
        tok, pos = params[0], params[1]
        n, (b, t) = tok.shape[0], inputs.shape
        h, d = self.n_heads, self.d_model
        x = tok[:, inputs] + pos[:, None, :t]                       # (N, B, T, d)
        for layer in range(self.n_layers):
            (ln1_g, ln1_b, w_qkv, b_qkv, w_o, b_o,
             ln2_g, ln2_b, w_fc, b_fc, w_proj, b_proj) = params[2 + 12 * layer: 14 + 12 * layer]
            qkv = population_linear(population_layer_norm(x, ln1_g, ln1_b), w_qkv, b_qkv)
            # (N, B, T, 3, h, hd) -> three (N*B, h, T, hd): members and windows are both batch.
            q, k, v = qkv.view(n * b, t, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            att = att.transpose(1, 2).reshape(n, b, t, d)
            x = x + population_linear(att, w_o, b_o)
            hid = F.gelu(population_linear(population_layer_norm(x, ln2_g, ln2_b), w_fc, b_fc))
            x = x + population_linear(hid, w_proj, b_proj)
        lnf_g, lnf_b, w_out, b_out = params[-4:]
        return population_linear(population_layer_norm(x, lnf_g, lnf_b), w_out, b_out)


class TransformerLMB(TransformerLM):
    """Validation transformer: text B (other stdlib modules), wider, more heads, twice the context.

    Example::

        task = TransformerLMB(); task.setup()
    """

    name = "transformer_b"
    steps = 400
    summary = "2-layer d=48 causal char transformer (4 heads), text B, 2 windows of 64 per step"

    def __init__(self, **overrides) -> None:
        kw = dict(d_model=48, n_layers=2, n_heads=4, context=64, batch_size=2, text="b",
                  max_chars=200_000, n_val=128, data_seed=121)
        super().__init__(**{**kw, **overrides})
