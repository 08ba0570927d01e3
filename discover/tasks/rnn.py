"""Character-level GRU language model on text that ships with Python itself."""

from __future__ import annotations

import math

import torch

from torch.autograd.function import once_differentiable

from .base import population_cross_entropy, population_linear
from .charlm import VOCAB_SIZE, text_modules
from .textwindow import WindowLM

__all__ = ["RNNLM", "RNNLMC", "gru_sequence"]


class _GRUSequence(torch.autograd.Function):
    """Population GRU over a window with a hand-written backward (backpropagation through time).

    Autograd through a Python loop of small ops costs more in bookkeeping than in
    arithmetic here (measured ~2.5x slower) and allocates a full-size gradient
    for every slice it takes. This version keeps memory small (fresh memory costs
    page faults, which dominated the step): each step gathers its input rows from
    the ``(N, V, 3H)`` projection table and scatters their gradient back, and the
    recurrent weight gradient is accumulated step by step. Checked against
    ``torch.nn.GRU`` (values and gradients) in the tests.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, ids: torch.Tensor, w_hh: torch.Tensor,
                b_hh: torch.Tensor) -> torch.Tensor:
        n, _, h3 = table.shape
        t, b = ids.shape
        h = h3 // 3
        hs = table.new_empty(n, t + 1, b, h)                          # hs[:, 0] = 0: initial state
        hs[:, 0].zero_()
        rz = table.new_empty(t, n, b, 2 * h)                          # gates r, z
        cand = table.new_empty(t, n, b, h)                            # candidate n
        gh_n = table.new_empty(t, n, b, h)                            # h W_hn + b_hn
        bias = b_hh.unsqueeze(1)
        # Per-step views made once (indexing inside the loop costs more than the arithmetic).
        h_prev, rz_s, r_s, z_s = hs.unbind(1), rz.unbind(0), rz[..., :h].unbind(0), rz[..., h:].unbind(0)
        cand_s, gh_n_s = cand.unbind(0), gh_n.unbind(0)
        for s, step_ids in enumerate(ids):
            gi = table[:, step_ids]                                   # (N, B, 3H)
            gh = torch.baddbmm(bias, h_prev[s], w_hh)
            torch.add(gi[..., :2 * h], gh[..., :2 * h], out=rz_s[s]).sigmoid_()
            gh_n_s[s].copy_(gh[..., 2 * h:])
            torch.addcmul(gi[..., 2 * h:], r_s[s], gh_n_s[s], out=cand_s[s]).tanh_()
            torch.lerp(cand_s[s], h_prev[s], z_s[s], out=h_prev[s + 1])  # (1 - z) n + z h
        ctx.save_for_backward(ids, w_hh, hs, rz, cand, gh_n)
        ctx.table_shape = table.shape
        return hs[:, 1:]                                              # (N, T, B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor, torch.Tensor]:
        ids, w_hh, hs, rz, cand, gh_n = ctx.saved_tensors
        t, n, b, h = cand.shape
        d_table = hs.new_zeros(ctx.table_shape)
        d_w = torch.zeros_like(w_hh)
        d_b = hs.new_zeros(n, b, 3 * h)                               # summed over the batch at the end
        d_gh = hs.new_empty(n, b, 3 * h)                              # reused every step
        d_gi = hs.new_empty(n, b, 3 * h)
        dh = hs.new_zeros(n, b, h)
        w_t = w_hh.transpose(1, 2).contiguous()  # once, not a strided copy inside every bmm
        sig_bwd, tanh_bwd = torch.ops.aten.sigmoid_backward.grad_input, torch.ops.aten.tanh_backward.grad_input
        h_prev, r_s, z_s, cand_s = hs.unbind(1), rz[..., :h].unbind(0), rz[..., h:].unbind(0), cand.unbind(0)
        gh_n_s, grad_s, ids_s = gh_n.unbind(0), grad_out.unbind(1), ids.unbind(0)
        d_gi_rz, d_gi_r, d_gi_z, d_gi_n = d_gi[..., :2 * h], d_gi[..., :h], d_gi[..., h:2 * h], d_gi[..., 2 * h:]
        d_gh_rz, d_gh_n = d_gh[..., :2 * h], d_gh[..., 2 * h:]
        for s in range(t - 1, -1, -1):
            dh += grad_s[s]
            r, z, c = r_s[s], z_s[s], cand_s[s]
            # h' = c + z (h - c): dc = dh (1 - z), dz = dh (h - c); h gets dh z directly.
            tanh_bwd(torch.addcmul(dh, dh, z, value=-1), c, grad_input=d_gi_n)   # d(pre-tanh)
            sig_bwd((h_prev[s] - c).mul_(dh), z, grad_input=d_gi_z)
            sig_bwd(d_gi_n * gh_n_s[s], r, grad_input=d_gi_r)
            d_gh_rz.copy_(d_gi_rz)                                    # r, z see gi and gh alike
            torch.mul(d_gi_n, r, out=d_gh_n)                          # gh_n enters as r * gh_n
            d_table.index_add_(1, ids_s[s], d_gi)
            d_w.baddbmm_(h_prev[s].transpose(1, 2), d_gh)
            d_b += d_gh
            dh = torch.baddbmm(dh * z, d_gh, w_t)
        return d_table, None, d_w, d_b.sum(1)


def gru_sequence(table: torch.Tensor, ids: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """GRU hidden states ``(N, T, B, H)`` from a zero initial state, for every member at once.

    The input of member ``i`` at step ``s`` of window ``j`` is the one-hot
    character ``ids[s, j]``, so its input projection ``x W_ih + b_ih`` is row
    ``ids[s, j]`` of ``table[i]`` ``(V, 3H)``; gates ``r, z, n`` as in
    ``torch.nn.GRU``. ``ids`` is ``(T, B)`` (time-major), ``w_hh`` ``(N, H, 3H)``,
    ``b_hh`` ``(N, 3H)``. Differentiable once (hand-written backward) in
    ``table``, ``w_hh`` and ``b_hh``.

    Example::

        hs = gru_sequence(torch.zeros(2, 97, 12), torch.zeros(5, 3, dtype=torch.long),
                          torch.zeros(2, 4, 12), torch.zeros(2, 12))
        hs.shape   # (2, 5, 3, 4); all zeros: every candidate is tanh(0)
    """
    return _GRUSequence.apply(table, ids, w_hh, b_hh)


class RNNLM(WindowLM):
    """A GRU reads windows of text and predicts every next character (BPTT through each window).

    Per member: character embedding ``emb (V, E)``; a single-layer GRU with
    input weights ``w_ih (E, 3H)``, ``b_ih (3H,)`` and recurrent weights
    ``w_hh (H, 3H)``, ``b_hh (3H,)``, gates in ``torch.nn.GRU``'s order
    ``(r, z, n)`` and with its equations::

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
        z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
        h' = (1 - z) * n + z * h

    and an output layer ``w_out (H, V)``, ``b_out (V,)``. Each window of
    ``context + 1`` characters starts from a zero hidden state; the loss is the
    mean cross-entropy over all ``context`` positions (``log 97 = 4.57`` at chance)
    and gradients flow through the whole window. The population runs batched: one
    ``baddbmm`` per time step with members as the batch (:func:`gru_sequence`).

    Init: as ``torch.nn.GRU`` and ``torch.nn.Linear`` (weights and biases uniform
    in ``+-1/sqrt(H)``), embeddings ``N(0, 1)``.

    Data (see :class:`~discover.tasks.textwindow.WindowLM`): ``batch_size`` random
    windows of ``context + 1`` characters of ``text`` per step; validation on
    ``n_val`` fixed held-out windows.

    Example::

        task = RNNLM(); task.setup()
        params = task.init_params([0, 1])        # emb, w_ih, b_ih, w_hh, b_hh, w_out, b_out
        task.train_loss(params, step=1)          # shape (2,), about log(97) at init
    """

    name = "rnn"
    steps = 300
    summary = "GRU char LM (emb 16, hidden 48), text A, 6 windows of 32 (full BPTT) per step"

    def __init__(self, emb: int = 16, hidden: int = 48, context: int = 32, batch_size: int = 6,
                 text: str | tuple[str, ...] = "a", max_chars: int = 64_000, n_val: int = 128,
                 data_seed: int = 22, steps: int | None = None) -> None:
        text_modules(text)  # fail early on an unknown source
        self.emb, self.hidden, self.context, self.batch_size = emb, hidden, context, batch_size
        self.text, self.max_chars, self.n_val, self.data_seed = text, max_chars, n_val, data_seed
        if steps is not None:
            self.steps = steps

    def param_shapes(self) -> list[tuple[int, ...]]:
        e, h = self.emb, self.hidden
        return [(VOCAB_SIZE, e), (e, 3 * h), (3 * h,), (h, 3 * h), (3 * h,), (h, VOCAB_SIZE), (VOCAB_SIZE,)]

    def init_member(self, generator: torch.Generator) -> list[torch.Tensor]:
        bound = 1 / math.sqrt(self.hidden)
        shapes = self.param_shapes()
        out = [torch.randn(shapes[0], generator=generator)]
        for shape in shapes[1:]:
            out.append((torch.rand(shape, generator=generator) * 2 - 1) * bound)
        return out

    def logits(self, params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """Per-member next-character logits ``(N, B, T, V)`` for input ids ``(B, T)``.

        Example::

            task.logits(params, torch.zeros(2, 5, dtype=torch.long)).shape   # (N, 2, 5, 97)
        """
        return self._time_major_logits(params, inputs).transpose(1, 2)

    def _time_major_logits(self, params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        emb, w_ih, b_ih, w_hh, b_hh, w_out, b_out = params
        # Input projections of every vocabulary entry (V rows, fewer than B*T tokens); the
        # recurrence gathers each step's rows from this table.
        table = torch.baddbmm(b_ih.unsqueeze(1), emb, w_ih)                  # (N, V, 3H)
        hs = gru_sequence(table, inputs.t().contiguous(), w_hh, b_hh)       # (N, T, B, H)
        return population_linear(hs, w_out, b_out)                          # (N, T, B, V)

    def window_loss(self, params: list[torch.Tensor], windows: torch.Tensor) -> torch.Tensor:
        # Time-major throughout (the mean over positions does not care about their order).
        logits = self._time_major_logits(params, windows[:, :-1])
        return population_cross_entropy(logits.reshape(logits.shape[0], -1, VOCAB_SIZE),
                                        windows[:, 1:].t().reshape(-1))


class RNNLMC(RNNLM):
    """Validation GRU LM: text C (other stdlib modules), wider, longer windows.

    Example::

        task = RNNLMC(); task.setup()
    """

    name = "rnn_c"
    steps = 400
    summary = "GRU char LM (emb 24, hidden 80), text C, 4 windows of 40 (full BPTT) per step"

    def __init__(self, **overrides) -> None:
        kw = dict(emb=24, hidden=80, context=40, batch_size=4, text="c", max_chars=200_000,
                  n_val=128, data_seed=122)
        super().__init__(**{**kw, **overrides})
