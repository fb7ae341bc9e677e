"""CPU inference: linear layers with their weights prepacked once for oneDNN.

``torch.nn.Linear`` on a CPU runs each product on the plain row-major weight; at decoding
batch sizes (a few to a few hundred rows) that streams the weights through a kernel tuned
for large products. oneDNN's inner-product with a weight reordered once into its blocked
layout (the prepacking PyTorch's own inductor backend and vLLM's CPU backend use) is 2–2.5×
faster here on a 2-core AVX-512 CPU for the shapes of a 135M-parameter model (measured
with ``benchmarks/bench_inference.py``; see docs/benchmarks.md). Results agree with
``nn.Linear`` to float32 rounding (a different summation order), not bit for bit.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

__all__ = ["packing_available", "pack_linear_layers"]

_CLS = None


def packing_available() -> bool:
    """Whether this PyTorch build has oneDNN and the prepacked-linear operators."""
    import torch

    ops = getattr(torch.ops, "mkldnn", None)
    return bool(
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "_linear_pointwise")
        and hasattr(ops, "_reorder_linear_weight")
    )


def _packed_linear_class():
    global _CLS
    if _CLS is not None:
        return _CLS
    import torch

    class PackedLinear(torch.nn.Module):
        """``nn.Linear`` (inference only) on a oneDNN-prepacked copy of its weight."""

        def __init__(self, linear: torch.nn.Linear, batch_hint: int = 16):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            w = linear.weight.detach()
            self.register_buffer(
                "packed_weight", torch.ops.mkldnn._reorder_linear_weight(w, batch_hint), persistent=False
            )
            b = linear.bias
            self.register_buffer("bias", b.detach() if b is not None else None, persistent=False)

        def forward(self, x):
            shape = x.shape
            y = torch.ops.mkldnn._linear_pointwise(
                x.reshape(-1, shape[-1]), self.packed_weight, self.bias, "none", [], ""
            )
            return y.reshape(*shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    _CLS = PackedLinear
    return PackedLinear


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process's private mappings of ``*.safetensors`` files (``/proc/self/maps``):
    where ``from_pretrained`` memory-maps the weights it loads."""
    try:
        with open("/proc/self/maps") as fh:
            lines = fh.read().splitlines()
    except OSError:  # not Linux
        return []
    out = []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[1].endswith("p") and parts[5].endswith(".safetensors"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append((lo, hi))
    return out


def _release_pages(tensor, mappings: list[tuple[int, int]]) -> None:
    """Give the kernel back the memory-mapped file pages that hold only ``tensor`` (``MADV_DONTNEED``).

    ``from_pretrained`` leaves the weights as views of one private mapping of the safetensors
    file, which stays mapped while any weight of it lives: dropping a plain weight frees nothing,
    and every page read to pack it stays resident. Only whole pages inside both the tensor and a
    file mapping are released (a later read would load them from the file again)."""
    import ctypes
    import mmap

    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    lo, hi = -(-start // page) * page, end // page * page
    if hi <= lo or not any(m_lo <= lo and hi <= m_hi for m_lo, m_hi in mappings):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), 4)  # MADV_DONTNEED


def pack_linear_layers(model) -> int:
    """Replace every float32/bfloat16 ``nn.Linear`` of a CPU model by its prepacked version, in place.

    Returns the number of layers replaced (0 where oneDNN is unavailable; the model is then
    unchanged). Tied output embeddings keep their embedding; the output layer gets its own
    packed copy.

    Memory: layers are packed one at a time, and each plain weight is dropped as soon as its
    packed copy replaces it, so the peak stays near one copy of the weights (plus the largest
    layer), not two. Weights that are views of the memory-mapped checkpoint (how
    ``from_pretrained`` loads safetensors) would stay resident until the last one goes, so their
    file pages are handed back to the kernel as each is packed (``MADV_DONTNEED``). Whether this CPU and build can pack is tried first on one layer of each
    dtype: where it cannot (e.g. bfloat16 without AVX-512 BF16), nothing is replaced. Should a later
    layer still fail, the layers packed so far stay packed and the rest plain (a plain weight
    dropped cannot be restored; both compute the same product).
    """
    import torch

    if not packing_available():
        return 0
    cls = _packed_linear_class()
    todo = [  # (parent, attribute name, dtype): no reference to the layer itself is kept
        (module, name, child.weight.dtype)
        for module in model.modules()
        for name, child in module.named_children()
        if type(child) is torch.nn.Linear
        and child.weight.device.type == "cpu"
        and child.weight.dtype in (torch.float32, torch.bfloat16)
    ]
    mappings = _file_mappings()
    # a weight shared with another parameter (a tied embedding) must keep its pages
    counts: dict = {}
    for _, prm in model.named_parameters(remove_duplicate=False):
        counts[prm.data_ptr()] = counts.get(prm.data_ptr(), 0) + 1
    firsts: dict = {}
    for i, (_, _, dtype) in enumerate(todo):
        firsts.setdefault(dtype, i)
    try:  # one trial layer per dtype: a CPU or build that cannot pack keeps nn.Linear everywhere
        trial = {i: cls(getattr(todo[i][0], todo[i][1])) for i in firsts.values()}
    except (RuntimeError, NotImplementedError) as e:
        log.warning("oneDNN weight prepacking unavailable here (%s); using plain nn.Linear", e)
        return 0
    for i, (module, name, _) in enumerate(todo):
        try:
            packed = trial.pop(i) if i in trial else cls(getattr(module, name))
        except (RuntimeError, NotImplementedError) as e:  # the plain weights already dropped cannot come back
            log.warning(
                "oneDNN weight prepacking failed at layer %d of %d (%s); the other %d keep plain nn.Linear "
                "(the results agree to float32 rounding)",
                i + 1,
                len(todo),
                e,
                len(todo) - i,
            )
            return i
        plain = getattr(module, name).weight
        setattr(module, name, packed)  # the plain layer (and its weight, unless tied to an embedding) is freed here
        if mappings and counts.get(plain.data_ptr(), 0) == 1 and plain.is_contiguous():
            _release_pages(plain, mappings)
        del plain
    return len(todo)
