"""Saving and loading probes as safetensors (never pickle).

Tensors: the MLP's parameters under their ``nn.Sequential`` names (``0.weight``,
``0.bias``, ``2.weight``, …; absent for a constant probe), ``feature_mean`` and
``feature_std`` (float32, the standardisation fit on the training rows) and
``base_rate`` (shape (1,), the training rows' fraction correct). The string metadata
holds ``format`` (= ``uqroute-probe``), ``kind`` (``mlp``/``constant``), ``scheme``,
``input_dim``, ``hidden_sizes`` (JSON), ``activation``, ``loss``, ``lr``, ``epochs``,
``batch_size``, ``seed``, ``training_datasets`` (JSON list), ``n_train``,
``n_positive`` and any extra keys given by the caller.

A file of several named probes (:func:`save_probes`, rule ``proxy_probe``) holds each probe's
tensors and metadata under the prefix ``{name}/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path, canonical_safetensors
from .model import LEAKY_SLOPE, build_probe
from .train import FittedProbe

__all__ = ["save_probe", "save_probes", "load_probe", "FORMAT", "MULTI_FORMAT"]

FORMAT = "uqroute-probe"
#: The format of a file of several named probes (:func:`save_probes`).
MULTI_FORMAT = "uqroute-probes"


def _tensors(probe: FittedProbe) -> dict:
    tensors = {
        "feature_mean": torch.from_numpy(np.ascontiguousarray(probe.mean, dtype=np.float32)),
        "feature_std": torch.from_numpy(np.ascontiguousarray(probe.std, dtype=np.float32)),
        "base_rate": torch.tensor([probe.base_rate], dtype=torch.float64),
    }
    if probe.net is not None:
        tensors.update({k: v.detach().clone().contiguous() for k, v in probe.net.state_dict().items()})
    return tensors


def _metadata(probe: FittedProbe, metadata: dict) -> dict:
    meta = {
        "format": FORMAT,
        "kind": probe.kind,
        "input_dim": probe.input_dim,
        "hidden_sizes": list(probe.hidden_sizes),
        "activation": f"LeakyReLU({LEAKY_SLOPE})",
        "loss": "binary cross-entropy (BCEWithLogitsLoss on the output logit)",
        "n_train": probe.info.get("n_train"),
        "n_positive": probe.info.get("n_positive"),
        **({"constant_reason": probe.info["reason"]} if "reason" in probe.info else {}),
        **metadata,
    }
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in sorted(meta.items())}


def _write(path, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save

    blob = canonical_safetensors(save(tensors, metadata=meta))
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(blob)


def save_probe(path, probe: FittedProbe, **metadata) -> None:
    """Write ``probe`` atomically to ``path`` with ``metadata`` (values JSON-encoded unless str).

    The bytes are a function of the content only (see :func:`uqroute.io.canonical_safetensors`)."""
    _write(path, _tensors(probe), _metadata(probe, metadata))


def save_probes(path, probes: dict[str, tuple[FittedProbe, dict]]) -> None:
    """Write several named probes (``{name: (probe, metadata)}``) atomically to one file: each
    probe's tensors and metadata as :func:`save_probe` writes them, under the prefix ``{name}/``
    (a name may not hold ``/``), the file's ``format`` ``uqroute-probes`` and ``probes`` the JSON
    list of names. Read one back with ``load_probe(path, name)``."""
    if not probes:
        raise ValueError(f"{path}: no probe to save")
    bad = [n for n in probes if not n or "/" in n]
    if bad:
        raise ValueError(f"{path}: probe names may not be empty or hold '/': {bad}")
    tensors, meta = {}, {"format": MULTI_FORMAT, "probes": json.dumps(sorted(probes))}
    for name, (probe, metadata) in probes.items():
        tensors.update({f"{name}/{k}": v for k, v in _tensors(probe).items()})
        meta.update({f"{name}/{k}": v for k, v in _metadata(probe, metadata).items()})
    _write(path, tensors, dict(sorted(meta.items())))


def load_probe(path, name: str | None = None) -> tuple[FittedProbe, dict]:
    """Read a probe written by :func:`save_probe` → ``(probe, metadata)``; ``probe.predict``
    scores new hidden states exactly as the pipeline did. ``name`` picks one probe of a file
    written by :func:`save_probes` (and is required there)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    tensors = load_file(str(path))
    if meta.get("format") == MULTI_FORMAT:
        names = json.loads(meta["probes"])
        if name not in names:
            raise ValueError(f"{path}: holds the probes {names}; name one of them (got {name!r})")
        prefix = f"{name}/"
        meta = {k[len(prefix) :]: v for k, v in meta.items() if k.startswith(prefix)}
        tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    elif name is not None:
        raise ValueError(f"{path}: holds one probe, not several; read it without a name (got {name!r})")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a uqroute probe file (metadata format {meta.get('format')!r})")
    hidden = tuple(json.loads(meta["hidden_sizes"]))
    input_dim = int(meta["input_dim"])
    net = None
    if meta["kind"] == "mlp":
        net = build_probe(input_dim, hidden, torch.Generator().manual_seed(0))
        net.load_state_dict({k: v for k, v in tensors.items() if k[0].isdigit()})
    probe = FittedProbe(
        meta["kind"],
        input_dim,
        hidden,
        tensors["feature_mean"].numpy(),
        tensors["feature_std"].numpy(),
        float(tensors["base_rate"][0]),
        net,
    )
    return probe, meta
