"""The KV cache the engine decodes from: buffered cache layers and prefix sources.

* :func:`buffered_layer_class` — transformers' ``DynamicLayer`` with its keys/values in a
  preallocated buffer, so that a decoding step is written in place (``DynamicLayer.update``
  appends with ``torch.cat``, which copies the whole cache at every step), rows join by
  left-padding in place and finished rows' slots are refilled by moving only the last rows;
* :class:`Prefix` — a prefilled prefix (its cache, attention mask and each row's last
  position) that later prefills extend: a batch-wide prefix, a group's prefix, or the
  snapshot of a finished row (:func:`snapshot`) that its follow-up turns continue;
* :func:`check_layers` — the pool decodes full-attention KV layers (and sliding-window
  layers while the window is not exceeded); other cache types are refused clearly.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Prefix",
    "buffered_layer_class",
    "check_layers",
    "gather_cache",
    "layers",
    "plain_layer",
    "snapshot",
    "stack_prefixes",
    "truncate_prefix",
]


@dataclass
class Prefix:
    """A prefilled prefix: its KV cache, attention mask and each row's last position."""

    cache: object
    mask: object
    pos: object


def layers(cache):
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"unsupported KV cache type {type(cache).__name__} (expected a transformers DynamicCache)")
    return layers


_BUFFERED = None


def buffered_layer_class():
    """:class:`transformers.cache_utils.DynamicLayer` with its keys/values in a preallocated buffer.

    ``DynamicLayer.update`` appends a decoding step with ``torch.cat``, which copies the whole
    cache of every layer at every step: measured on SmolLM2-135M (96 rows, 200 cached positions,
    2-core CPU) that copy was 52 % of a decoding step. Here a step is written in place into
    spare capacity and ``keys``/``values`` are views of the filled part, so a step costs only
    its own new column (the buffer grows by doubling if the capacity runs out).
    """
    global _BUFFERED
    if _BUFFERED is not None:
        return _BUFFERED
    import torch
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """Rows ``[0, r)`` and columns ``[s, s + n)`` of preallocated buffers hold the cache.

        Spare columns on the right take decoding steps in place; spare columns on the left let
        longer rows join by padding the others (zeros, never uninitialised memory: a masked
        0 × NaN would poison attention); spare rows take new rows in place.
        """

        def __init__(self, keys, values, rows_cap: int, right: int, left: int = 0):
            super().__init__()
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self._r, self._n, self._s = keys.shape[0], keys.shape[-2], left
            cap = (max(rows_cap, self._r), keys.shape[1], left + self._n + right, keys.shape[-1])
            self._k, self._v = keys.new_empty(cap), values.new_empty(cap[:3] + (values.shape[-1],))
            self._k[: self._r, :, left : left + self._n] = keys
            self._v[: self._r, :, left : left + self._n] = values
            self._views()

        def _views(self) -> None:
            r, s, n = self._r, self._s, self._n
            self.keys, self.values = self._k[:r, :, s : s + n], self._v[:r, :, s : s + n]

        def _realloc(self, rows_cap: int, left: int, right: int) -> None:
            r, s, n = self._r, self._s, self._n
            cap = (max(rows_cap, r), self._k.shape[1], left + n + right, self._k.shape[-1])
            k, v = self._k.new_empty(cap), self._v.new_empty(cap[:3] + (self._v.shape[-1],))
            k[:r, :, left : left + n], v[:r, :, left : left + n] = self._k[:r, :, s : s + n], self._v[:r, :, s : s + n]
            self._k, self._v, self._s = k, v, left

        def reserve(self, rows: int, right: int) -> None:
            """Room for ``rows`` rows in all and ``right`` more columns."""
            spare = self._k.shape[2] - self._s - self._n
            if rows > self._k.shape[0] or right > spare:  # grow with headroom: reallocations copy everything
                self._realloc(max(rows, self._k.shape[0]), max(self._s, 64), max(right + 64, spare))
                self._views()

        def update(self, key_states, value_states, *args, **kwargs):
            m = key_states.shape[-2]
            if self._s + self._n + m > self._k.shape[2]:  # out of columns: grow by doubling
                self._realloc(self._k.shape[0], self._s, max(self._n, m))
            e = self._s + self._n
            self._k[: self._r, :, e : e + m] = key_states
            self._v[: self._r, :, e : e + m] = value_states
            self._n += m
            self._views()
            return self.keys, self.values

        def pad_left(self, d: int) -> None:
            """``d`` more (zero) columns on the left of every row."""
            if d > self._s:  # headroom for later joins too: reallocations copy everything
                self._realloc(self._k.shape[0], 2 * d + 64, self._k.shape[2] - self._s - self._n)
            self._k[: self._r, :, self._s - d : self._s].zero_()
            self._v[: self._r, :, self._s - d : self._s].zero_()
            self._s -= d
            self._n += d
            self._views()

        def append_rows(self, keys, values) -> None:
            """New rows, right-aligned with the current columns (zeros before them)."""
            m, length = keys.shape[0], keys.shape[-2]
            if length > self._n:
                raise ValueError(f"rows of length {length} cannot join a cache of length {self._n}")
            if self._r + m > self._k.shape[0]:
                self._realloc(2 * (self._r + m), self._s, self._k.shape[2] - self._s - self._n)
            r, s, n = self._r, self._s, self._n
            self._k[r : r + m, :, s : s + n - length].zero_()
            self._v[r : r + m, :, s : s + n - length].zero_()
            self._k[r : r + m, :, s + n - length : s + n] = keys
            self._v[r : r + m, :, s + n - length : s + n] = values
            self._r += m
            self._views()

        def move_rows(self, src, dst, keep: int) -> None:
            """Copy rows ``src`` onto rows ``dst`` (filling holes), then keep the first ``keep`` rows."""
            s, n = self._s, self._n
            if len(src):
                self._k[dst, :, s : s + n] = self._k[src, :, s : s + n]
                self._v[dst, :, s : s + n] = self._v[src, :, s : s + n]
            self._r = keep
            self._views()

        def trim_left(self, d: int) -> None:
            self._s += d
            self._n -= d
            self._views()

    del torch
    _BUFFERED = BufferedLayer
    return BufferedLayer


def check_layers(cache, length: int, model: str) -> None:
    """The decoding pool handles full-attention KV layers, and sliding-window ones that never slide."""
    from transformers.cache_utils import DynamicLayer

    for i, layer in enumerate(layers(cache)):
        if not isinstance(layer, DynamicLayer) or layer.keys is None:
            raise TypeError(
                f"model {model}: KV-cache layer {i} is a {type(layer).__name__}; the transformers backend decodes "
                "models whose cache layers are transformers DynamicLayers (full attention)"
            )
        window = getattr(layer, "sliding_window", None)
        if getattr(layer, "is_sliding", False) and window is not None and length > int(window) - 1:
            raise ValueError(
                f"model {model}: layer {i} uses sliding-window attention (window {window}) and this batch needs "
                f"{length} positions; prompts + budgets beyond the window are not supported"
            )


def plain_layer(keys, values):
    from transformers.cache_utils import DynamicLayer

    lay = DynamicLayer()
    lay.dtype, lay.device, lay.is_initialized = keys.dtype, keys.device, True
    lay.keys, lay.values = keys, values
    return lay


def snapshot(pool, r: int) -> Prefix:
    """Row ``r`` of the pool as a one-row prefix source: its cached (unmasked) positions, contiguous."""
    import copy

    import torch

    cols = pool.mask[r].nonzero()[:, 0]
    new = copy.copy(pool.cache)
    new.layers = [
        plain_layer(lay.keys[r : r + 1].index_select(2, cols), lay.values[r : r + 1].index_select(2, cols))
        for lay in layers(pool.cache)
    ]
    n = int(cols.numel())
    return Prefix(
        new,
        torch.ones((1, n), dtype=pool.mask.dtype, device=pool.mask.device),
        torch.tensor([n - 1], device=pool.pos.device),
    )


def truncate_prefix(src: Prefix, n: int) -> Prefix:
    """The first ``n`` positions of a one-row (unpadded) prefix source."""
    import copy

    new = copy.copy(src.cache)
    new.layers = [plain_layer(lay.keys[:, :, :n], lay.values[:, :, :n]) for lay in layers(src.cache)]
    return Prefix(new, src.mask[:, :n], src.pos.new_full((1,), n - 1))


def stack_prefixes(srcs: list[Prefix]) -> Prefix:
    """Prefix sources stacked into one, each row left-padded (masked zeros) to the longest."""
    import copy

    import torch

    L = max(s.mask.shape[1] for s in srcs)
    per_layer = zip(*[layers(s.cache) for s in srcs])
    new = copy.copy(srcs[0].cache)
    new.layers = []

    def pad(x):  # left-pad the position axis with zeros (finite: masked 0 × NaN would poison attention)
        return torch.nn.functional.pad(x, (0, 0, L - x.shape[-2], 0))

    for lays in per_layer:
        new.layers.append(plain_layer(torch.cat([pad(x.keys) for x in lays]), torch.cat([pad(x.values) for x in lays])))
    mask = torch.cat(
        [torch.cat([s.mask.new_zeros((s.mask.shape[0], L - s.mask.shape[1])), s.mask], dim=-1) for s in srcs]
    )
    return Prefix(new, mask, torch.cat([s.pos for s in srcs]))


def gather_cache(cache, idx):
    """A new cache holding (and repeating) rows ``idx`` of ``cache``; ``cache`` itself is unchanged."""
    import copy

    new = copy.copy(cache)
    new.layers = []
    for layer in layers(cache):
        lay = copy.copy(layer)
        if getattr(layer, "keys", None) is not None and layer.keys.numel():
            lay.keys, lay.values = layer.keys.index_select(0, idx), layer.values.index_select(0, idx)
        new.layers.append(lay)
    return new
