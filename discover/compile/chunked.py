"""Cache-blocked foreach steps: run a generated step on slices of the bucket, one sub-bucket at a time.

The foreach step allocates its temporaries as whole lists (a ``denom`` for every
parameter), so its peak temporary memory is (temporaries alive at once) x (the
bucket's size): 2 lists for Adam, where torch's foreach Adam keeps 1. For an
elementwise program (no ``norm``/``rms``/``mean``) the shape of a tensor does not
matter: `chunked_step` cuts every contiguous tensor of the bucket (parameters,
gradients, tensor state) into flat views, packs them into near-equal sub-buckets
of at most a budget of values each, and runs the step once per sub-bucket. The
views write through to the tensors in place and every element goes through the
same arithmetic, so results are bit-identical; the peak becomes (temporaries
alive) x (one sub-bucket), and the smaller working set is also faster on CPU
(it stays in cache between the ops of one step).

- A bucket of at most 2 budgets runs whole: one more sub-bucket's Python overhead
  is not repaid below that. A larger one is cut into
  ``ceil(total / budget)`` >= 3 near-equal sub-buckets, so Adam's peak, 2 sub-buckets,
  is at most 2/3 of one list: below torch's foreach Adam. (A whole bucket peaks at most
  2 budgets above it, 8 MiB on CPU.)
- Per-parameter inputs follow their pieces: every piece gets its parent's step and
  scalar state (scalar state is one number per parameter, never cut), and each returned
  scalar-state list is mapped back to one value per parent (all pieces of a parent
  compute the same value; the first is kept).
- Pieces are cut at multiples of `ALIGN` elements from the start of their tensor:
  torch's CPU kernels run the last few elements of a range through a scalar loop, which
  for ``sigmoid``, ``cosh`` and float32 tensor ``pow`` rounds differently from the
  vectorized loop, so a cut anywhere else could change the last bit. With aligned cuts
  the same elements take the scalar path as without chunking (on one thread: with
  several, torch's own split of a large tensor between threads moves that boundary,
  chunked or not, and results already depend on the thread count).

Budgets (bytes of one list per sub-bucket; `CHUNK_BYTES`, by device type):

- ``cpu``: 4 MiB (1M float32 values): on CPU a sub-bucket that stays in cache beats
  whole lists for Adam, Lion and SGD-momentum on large buckets, and 8 MiB is slower
  (``discover bench step --foreach-budgets 0 2 4 8 --configs L 50x1000000`` measures it
  on a machine). Caveat: each sub-bucket's ops are separate OpenMP parallel regions, and
  on an oversubscribed CPU (more busy threads than cores) every region can wait a
  scheduler time slice for a descheduled worker; with ``torch.set_num_threads(1)`` there
  are no regions to wait for.
- ``cuda`` (and other accelerators): 256 MiB, chosen so that one sub-bucket keeps the
  GPU busy longer than the CPU takes to launch the next one, so chunking should cost no
  time; only buckets over 512 MiB per list are cut. ``discover bench step --device cuda
  --foreach-budgets 0 64 256 --configs 10x20000000`` checks it on a GPU.

Example:
    >>> import torch
    >>> from discover import load
    >>> from discover.compile.foreach import compile_foreach
    >>> sgd = load("sgd")
    >>> step = chunked_step(compile_foreach(sgd).unchunked, sgd, budget_bytes=4096 * 4)
    >>> w, g = [torch.ones(10_000)], [torch.ones(10_000)]
    >>> step(w, g, {}, [1], {**sgd.defaults, "lr": 0.5})   # 3 sub-buckets of <= 4096 values
    {}
    >>> float(w[0].sum())
    5000.0
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import torch

from ..lang.ir import Program
from .lower import PD, is_staged, lower

CHUNK_BYTES: dict[str, int] = {"cpu": 4 << 20, "cuda": 256 << 20}
"""Most bytes of one list of values (per sub-bucket) by device type; see the module docstring."""
OTHER_DEVICE_BYTES = 256 << 20
"""Budget for device types not in `CHUNK_BYTES` (accelerators: launch overhead as on CUDA)."""
ALIGN = 1024
"""Pieces are cut at multiples of this many elements from their tensor's start (a multiple of
every CPU vector loop's stride, so the vectorized/scalar split of each tensor is unchanged)."""

Piece = tuple[int, int, int]  # (parameter index, start, stop) in the flattened parameter


def is_elementwise(program: Program) -> bool:
    """True when no value of `program` is a per-tensor reduction (norm, rms, mean) or a staged op
    (matrix ops, row/column means, group sums): then every element of the result depends only on
    the same element of the inputs."""
    low = lower(program)
    return not any(i.dst.level == PD for i in low.instrs) and not is_staged(low)


def budget_elements(like: torch.Tensor, budget_bytes: int | None = None) -> int:
    """Most values of one list per sub-bucket for tensors like `like` (a multiple of `ALIGN`)."""
    if budget_bytes is None:
        budget_bytes = CHUNK_BYTES.get(like.device.type, OTHER_DEVICE_BYTES)
    n = budget_bytes // like.element_size()
    return max(n - n % ALIGN, ALIGN)


def sub_bucket_size(total: int, limit: int) -> int:
    """Size of near-equal sub-buckets for `total` values, at most `limit` each (multiples of `ALIGN`).

    ``ceil(total / limit)`` sub-buckets, one `ALIGN` of slack each for cuts at aligned offsets,
    so no small sub-bucket is left over at the end (its call would cost as much as a full one).

    Example:
        >>> sub_bucket_size(3_000_000, 1_048_576)   # 3 sub-buckets of ~1M values
        1001472
    """
    k = -(-total // limit)
    size = -(-total // k) + ALIGN
    return min(limit, size + (-size) % ALIGN)


@lru_cache(maxsize=256)
def plan(numels: tuple[int, ...], limit: int) -> tuple[tuple[Piece, ...], ...]:
    """Sub-buckets of pieces, each sub-bucket at most `limit` values (a multiple of `ALIGN`).

    Tensors are packed in order; a tensor that does not fit in the room left is cut at the
    largest aligned offset that fits, and the rest goes on into the next sub-buckets.

    Example:
        >>> plan((3000, 500), 2048)
        (((0, 0, 2048),), ((0, 2048, 3000), (1, 0, 500)))
    """
    subs: list[tuple[Piece, ...]] = []
    cur: list[Piece] = []
    room = limit
    for i, n in enumerate(numels):
        if n == 0:  # still stepped: its scalar state must come back
            cur.append((i, 0, 0))
            continue
        start = 0
        while start < n:
            take = n - start
            if take > room:
                take = room - room % ALIGN
                if take == 0:  # no aligned room left: start a new sub-bucket
                    subs.append(tuple(cur))
                    cur, room = [], limit
                    continue
            cur.append((i, start, start + take))
            start += take
            room -= take
            if room == 0:
                subs.append(tuple(cur))
                cur, room = [], limit
    if cur:
        subs.append(tuple(cur))
    return tuple(subs)


def _flat_ok(lists: list[list], numels: list[int]) -> bool:
    """Every tensor contiguous and as large as its parameter (so ``view(-1)`` lines them up)."""
    for lst in lists:
        for t, n in zip(lst, numels):
            if not isinstance(t, torch.Tensor) or not t.is_contiguous() or t.numel() != n:
                return False
    return True


def _pieces(flat: list[torch.Tensor], whole: list[torch.Tensor], sub: tuple[Piece, ...], numels: list[int]) -> list:
    """The views of one list for one sub-bucket (a whole tensor is passed as it is)."""
    return [whole[i] if a == 0 and b == numels[i] else flat[i][a:b] for i, a, b in sub]


def chunked_step(step: Callable[..., dict], program: Program,
                 budget_bytes: int | None = None) -> Callable[..., dict]:
    """`step` run one sub-bucket of at most `budget_bytes` per list at a time (same results).

    Programs with per-tensor reductions get `step` itself. At call time, buckets of at most
    2 budgets, and buckets with a non-contiguous tensor (or a state not shaped like its
    parameter), go to `step` whole. `budget_bytes=None` reads `CHUNK_BYTES` at each call.
    The wrapper keeps `step`'s ``__source__`` and exposes `step` as ``.unchunked``.
    """
    if not is_elementwise(program):
        return step
    tensor_states = [s.name for s in program.states if not s.scalar]
    scalar_states = [s.name for s in program.states if s.scalar]
    uses_g = "g" in program.inputs

    def run(params: list, grads: list, states: dict, steps: list, hparams: dict) -> dict:
        if not params:
            return step(params, grads, states, steps, hparams)
        limit = budget_elements(params[0], budget_bytes)
        numels = [p.numel() for p in params]
        total = sum(numels)
        if total <= 2 * limit:  # one more sub-bucket's overhead is not repaid
            return step(params, grads, states, steps, hparams)
        lists = [params] + ([grads] if uses_g else []) + [states[name] for name in tensor_states]
        first_state = 2 if uses_g else 1
        if not _flat_ok(lists, numels):
            return step(params, grads, states, steps, hparams)
        flats = [[t.view(-1) for t in lst] for lst in lists]
        out: dict[str, list[Any]] = {name: [None] * len(params) for name in scalar_states}
        for sub in plan(tuple(numels), sub_bucket_size(total, limit)):
            views = [_pieces(flat, whole, sub, numels) for flat, whole in zip(flats, lists)]
            parents = [i for i, _, _ in sub]
            sub_g = views[1] if uses_g else [grads[i] for i in parents]
            sub_states = dict(zip(tensor_states, views[first_state:]))
            for name in scalar_states:
                sub_states[name] = [states[name][i] for i in parents]
            new = step(views[0], sub_g, sub_states, [steps[i] for i in parents], hparams)
            for name, values in new.items():
                dest = out[name]
                for i, value in zip(parents, values):
                    if dest[i] is None:  # every piece of a parent gives the same value
                        dest[i] = value
        return out

    run.__source__ = getattr(step, "__source__", None)
    run.__doc__ = step.__doc__
    run.unchunked = step
    return run
