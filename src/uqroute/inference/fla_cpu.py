"""A CPU path for flash-linear-attention's RWKV-7 (``fla.models.rwkv7``), whose fused ops are Triton-only.

flash-linear-attention (``fla``, pinned in the ``rwkv`` extra) implements RWKV-7's token shift,
its fused element-wise ops and its state recurrence as Triton kernels, which need a GPU: on a
CPU, fla 0.6.0 falls back to nothing (the first kernel launch fails with Triton's
"0 active drivers", and ``TRITON_INTERPRET=1`` fails in the autotuner). fla also ships plain
PyTorch references of those ops for its own tests; :func:`install` points fla's RWKV-7 layer
and feed-forward modules at them:

* the time-mix's ``fused_addcmul_rwkv7``, ``fused_k_rwkv7``, ``gate_output_correction`` →
  fla's ``torch_addcmul_rwkv7``, ``k_update_ref``, ``gate_output_correction_ref``;
* ``chunk_rwkv7`` / ``fused_mul_recurrent_rwkv7`` (the state recurrence
  S_t = S_{t-1}·diag(exp w_t) + S_{t-1}·a_t b_tᵀ + v_t k_tᵀ) → fla's
  ``dplr_recurrence`` (one step per token, float32);
* ``token_shift`` with a carried state (fla's ``token_shift_ref`` has none) → a three-line
  shift that returns the last token as the new state, in the layout of fla's kernel;
* the feed-forward's squared ReLU (``torch.compile``-d in fla) → plain PyTorch.

The fused LayerNorm/GroupNorm/L2-norm modules (``fuse_norm``) are Triton too: a model loaded for
a CPU is built with ``fuse_norm=False`` (:data:`LOAD_KWARGS`), which uses ``torch.nn`` norms with
the same parameters. Measured on a random 3-layer RWKV-7 (head size 64): logits agree with
BlinkDL's reference implementation (the ``rwkv`` package, CPU, float32) to 4e-6 over a 40-token
prefill and 10 decoding steps, with identical greedy tokens; incremental decoding from the
cache agrees with a full forward pass to 3e-6. Written for fla 0.6.0; another version whose
module layout differs is refused with a clear error rather than half-patched.
"""

from __future__ import annotations

__all__ = ["LOAD_KWARGS", "install", "is_fla_model"]

#: ``from_pretrained`` keyword arguments for an fla model that runs on a CPU.
LOAD_KWARGS = {"fuse_norm": False}

_PATCHED = False


def is_fla_model(obj) -> bool:
    """Whether a model or config class comes from flash-linear-attention (directly or re-exported by hub code)."""
    return type(obj).__module__.split(".")[0] == "fla"


def token_shift(x, cu_seqlens=None, cache=None, output_cache=False, chunk_indices=None):
    """``fla.modules.token_shift`` in PyTorch: ``shifted(x) - x``, the previous token taken from ``cache``."""
    import torch

    if cu_seqlens is not None:
        raise NotImplementedError("the CPU path of fla's token shift does not take cu_seqlens")
    prev = torch.zeros_like(x[:, :1]) if cache is None else cache.reshape(x.shape[0], 1, x.shape[2]).to(x.dtype)
    delta = torch.cat([prev, x[:, :-1]], dim=1) - x
    return (delta, x[:, -1].contiguous()) if output_cache else delta


def _recurrence(r, w, k, v, a, b, initial_state, output_final_state):
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence

    d_k = r.shape[-1]

    def heads_first(x):  # fla's layers use [B, T, H, D]; the reference [B, H, T, D]
        return x.transpose(1, 2).float()

    # the reference scales queries by d_k^-0.5; RWKV-7 uses scale 1
    o, state = dplr_recurrence(
        heads_first(r) * d_k**0.5,
        heads_first(k),
        heads_first(v),
        heads_first(a),
        heads_first(b),
        heads_first(w),
        initial_state=initial_state,
        output_final_state=True,
    )
    return o.transpose(1, 2).to(r.dtype), (state if output_final_state else None)


def chunk_rwkv7(r, w, k, v, a, b, scale=1.0, initial_state=None, output_final_state=False, cu_seqlens=None, **_):
    if scale != 1.0 or cu_seqlens is not None:
        raise NotImplementedError("the CPU path of chunk_rwkv7 takes scale 1 and no cu_seqlens")
    return _recurrence(r, w, k, v, a, b, initial_state, output_final_state)


def fused_mul_recurrent_rwkv7(
    r, w, k, v, kk, a, scale=1.0, initial_state=None, output_final_state=False, reverse=False, cu_seqlens=None
):
    if scale != 1.0 or reverse or cu_seqlens is not None:
        raise NotImplementedError(
            "the CPU path of fused_mul_recurrent_rwkv7 takes scale 1, forward order, no cu_seqlens"
        )
    return _recurrence(r, w, k, v, -kk, kk * a, initial_state, output_final_state)


def sqrelu(x):
    import torch.nn.functional as F

    r = F.relu(x.float())
    return (r * r).to(x.dtype)


def install(model=None) -> None:
    """Point fla's RWKV-7 modules at the PyTorch references (idempotent); fix ``model``'s feed-forward activations."""
    global _PATCHED
    import importlib

    try:
        layer = importlib.import_module("fla.layers.rwkv7")
        modeling = importlib.import_module("fla.models.rwkv7.modeling_rwkv7")
        from fla.ops.rwkv7.fused_addcmul import torch_addcmul_rwkv7
        from fla.ops.rwkv7.fused_k_update import k_update_ref
        from fla.ops.rwkv7.gate_output_correction import gate_output_correction_ref

        importlib.import_module("fla.ops.generalized_delta_rule.dplr.naive")
    except ImportError as e:
        raise RuntimeError(
            f"the CPU path for RWKV-7 needs flash-linear-attention 0.6.0 (pip install 'uqroute[rwkv]'): {e}"
        ) from e
    names = (
        "token_shift",
        "fused_addcmul_rwkv7",
        "fused_k_rwkv7",
        "gate_output_correction",
        "chunk_rwkv7",
        "fused_mul_recurrent_rwkv7",
    )
    missing = [n for n in names if not hasattr(layer, n)] + (
        [] if hasattr(modeling, "token_shift") else ["token_shift"]
    )
    if missing:
        import fla

        raise RuntimeError(
            f"flash-linear-attention {getattr(fla, '__version__', '?')}: fla.layers.rwkv7 lacks {missing}; "
            "the CPU path was written for fla 0.6.0 (pip install 'uqroute[rwkv]')"
        )
    if not _PATCHED:
        layer.token_shift = modeling.token_shift = token_shift
        layer.fused_addcmul_rwkv7 = torch_addcmul_rwkv7
        layer.fused_k_rwkv7 = lambda k, a, ka, *args, **kw: k_update_ref(k, a, ka)
        layer.gate_output_correction = gate_output_correction_ref
        layer.chunk_rwkv7 = chunk_rwkv7
        layer.fused_mul_recurrent_rwkv7 = fused_mul_recurrent_rwkv7
        _PATCHED = True
    if model is not None:
        fused = modeling.ACT2FN.get("sqrelu")
        for m in model.modules():
            if type(m).__name__ == "RWKV7FeedForward" and m.act_fn is fused:
                m.act_fn = sqrelu
