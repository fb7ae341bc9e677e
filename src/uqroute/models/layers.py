"""A model's layer count, read in one place, and the hidden-states index a ``hidden_layer`` names."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["num_hidden_layers", "resolve_layer"]


def num_hidden_layers(model_dir: str | os.PathLike) -> int | None:
    """``num_hidden_layers`` of the model in ``model_dir`` (its ``config.json``; a multimodal model's
    ``text_config``), or None when the file is absent, unreadable or names no positive count."""
    try:
        conf = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(conf, dict):
        return None
    n = conf.get("num_hidden_layers") or (conf.get("text_config") or {}).get("num_hidden_layers")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def resolve_layer(hidden_layer: int, n_layers: int) -> int:
    """Absolute index into ``output_hidden_states`` (``n_layers + 1`` entries, 0 = embeddings)."""
    n = n_layers + 1
    idx = hidden_layer if hidden_layer >= 0 else n + hidden_layer
    if not 0 <= idx < n:
        raise ValueError(
            f"hidden_layer {hidden_layer} is out of range for a model with {n_layers} layers ({n} hidden states)"
        )
    return idx
