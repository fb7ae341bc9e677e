#!/usr/bin/env python
"""Cross-check: fla's RWKV-7 on a CPU (uqroute's fla_cpu path) against BlinkDL's reference implementation.

Builds a random RWKV-7 with flash-linear-attention (``fla.models.RWKV7ForCausalLM``, head size 64
as BlinkDL's CPU code assumes), runs it with :mod:`uqroute.inference.fla_cpu` installed, converts
its weights to BlinkDL's names and layout, loads them with the ``rwkv`` pip package (RWKV-7 CPU
path, float32) and compares the logits of a 40-token prefill and of 10 greedy decoding steps
from each side's own state. Needs the ``rwkv`` extra plus ``pip install rwkv==0.8.32`` (best in a
separate virtual environment: importing ``rwkv.model`` with ``RWKV_V7_ON=1`` changes global torch
settings). Run from the repository root::

    python benchmarks/check_rwkv7_reference.py

Recorded result (docs/slurm.md): max |Δ logits| 3e-6 to 4e-6 at logit magnitudes ~5, identical
greedy tokens.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def to_blinkdl(sd: dict, n_layers: int) -> dict:
    """fla's RWKV-7 state dict → BlinkDL's ``.pth`` names (the ``rwkv`` package transposes and squeezes on load)."""
    z = {
        "emb.weight": sd["model.embeddings.weight"],
        "blocks.0.ln0.weight": sd["model.layers.0.pre_norm.weight"],
        "blocks.0.ln0.bias": sd["model.layers.0.pre_norm.bias"],
        "ln_out.weight": sd["model.norm.weight"],
        "ln_out.bias": sd["model.norm.bias"],
        "head.weight": sd["lm_head.weight"],
    }
    for i in range(n_layers):
        p, q, a = f"model.layers.{i}.", f"blocks.{i}.", f"model.layers.{i}.attn."
        for src, dst in (("attn_norm", "ln1"), ("ffn_norm", "ln2")):
            z[f"{q}{dst}.weight"], z[f"{q}{dst}.bias"] = sd[f"{p}{src}.weight"], sd[f"{p}{src}.bias"]
        for x in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "k_k", "k_a", "r_k"):
            z[f"{q}att.{x}"] = sd[a + x]
        for src, dst in (("r_proj", "receptance"), ("k_proj", "key"), ("v_proj", "value"), ("o_proj", "output")):
            z[f"{q}att.{dst}.weight"] = sd[f"{a}{src}.weight"]
        for lora, n in (("w_lora", "w"), ("a_lora", "a"), ("v_lora", "v"), ("g_lora", "g")):
            if f"{a}{lora}.lora.0.weight" not in sd:  # layer 0 has no v_lora
                continue
            z[f"{q}att.{n}1"] = sd[f"{a}{lora}.lora.0.weight"].t()
            z[f"{q}att.{n}2"] = sd[f"{a}{lora}.lora.2.weight"].t()
            if f"{a}{lora}.lora.2.bias" in sd:
                z[f"{q}att.{n}0"] = sd[f"{a}{lora}.lora.2.bias"]
        z[f"{q}att.ln_x.weight"], z[f"{q}att.ln_x.bias"] = sd[f"{a}g_norm.weight"], sd[f"{a}g_norm.bias"]
        for x in ("x_k", "key.weight", "value.weight"):
            z[f"{q}ffn.{x}"] = sd[f"{p}ffn.{x}"]
    return {k: v.clone() for k, v in z.items()}


def main() -> None:
    os.environ["RWKV_V7_ON"] = "1"
    import torch
    from fla.models import RWKV7Config, RWKV7ForCausalLM

    from uqroute.inference import fla_cpu

    fla_cpu.install()
    torch.manual_seed(0)
    cfg = RWKV7Config(
        hidden_size=128,
        num_hidden_layers=3,
        head_dim=64,
        vocab_size=300,
        intermediate_size=256,
        decay_low_rank_dim=8,
        gate_low_rank_dim=16,
        a_low_rank_dim=8,
        v_low_rank_dim=8,
        **fla_cpu.LOAD_KWARGS,
    )
    model = RWKV7ForCausalLM(cfg).eval()
    fla_cpu.install(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    with tempfile.TemporaryDirectory() as d:
        torch.save(to_blinkdl(model.state_dict(), cfg.num_hidden_layers), Path(d) / "m.pth")
        from rwkv.model import RWKV

        ref = RWKV(str(Path(d) / "m"), "cpu fp32")
    ids = torch.randint(0, 300, (40,)).tolist()
    with torch.inference_mode():
        ours = model(torch.tensor([ids]), use_cache=True)
        theirs, state = ref.forward(ids, None, full_output=True)
        print(
            f"prefill: max |Δ logits| {(ours.logits[0] - theirs).abs().max().item():.2e} "
            f"(logits up to {theirs.abs().max().item():.2f})"
        )
        cache, a, b, diffs = ours.past_key_values, [int(ours.logits[0, -1].argmax())], [int(theirs[-1].argmax())], []
        for _ in range(10):
            out = model(torch.tensor([[a[-1]]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            lb, state = ref.forward([b[-1]], state)
            diffs.append((out.logits[0, -1] - lb).abs().max().item())
            a.append(int(out.logits[0, -1].argmax()))
            b.append(int(lb.argmax()))
    print(f"decoding: max |Δ logits| per step {' '.join(f'{x:.1e}' for x in diffs)}")
    print(f"greedy tokens identical: {a == b}")


if __name__ == "__main__":
    main()
