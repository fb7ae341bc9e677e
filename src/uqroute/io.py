"""Atomic artifact writing shared by every stage.

Every file a rule writes appears atomically: it is written to a temporary file in
the same directory and moved into place with ``os.replace`` only when complete, so
a killed job never leaves a partial artifact that Snakemake (or a user) could
mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import polars as pl

from .schema import check_frame


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the artifact the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(df: pl.DataFrame, path: str | os.PathLike, artifact: str | None = None) -> None:
    """Check ``df`` against ``artifact``'s documented schema (if given), then write it atomically."""
    if artifact is not None:
        check_frame(df, artifact, where=str(path))
    with atomic_path(path, suffix=".parquet") as tmp:
        df.write_parquet(tmp, statistics=False)


def fingerprint(obj) -> str:
    """sha256 of a JSON-serialisable description (sorted keys; non-JSON values via ``str``)."""
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(obj, path: str | os.PathLike) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def canonical_safetensors(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted.

    safetensors stores ``__metadata__`` from a hash map, so its key order (and thus the
    file's bytes) can differ between two runs with identical content. Offsets are relative
    to the end of the header, so rewriting the header (padded with spaces to a multiple of
    8 bytes, as the format recommends) leaves the tensors valid.
    """
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + blob[8 + n :]


def write_safetensors(tensors: dict, path, metadata: dict[str, str]) -> None:
    """Write numpy ``tensors`` as safetensors atomically, byte-identical for identical content."""
    from safetensors.numpy import save

    blob = canonical_safetensors(save(tensors, metadata=metadata))
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(blob)


def write_hidden_states(path, ids, states, *, layer: int, model: str, dataset: str) -> None:
    """Write per-query hidden states (float16) as safetensors, keyed by query id.

    ``states`` is an array of shape (len(ids), hidden_size). The format is
    documented in docs/artifacts.md (section "hidden states").
    """
    import numpy as np

    states = np.asarray(states)
    ids = [str(i) for i in ids]
    if states.ndim != 2 or states.shape[0] != len(ids):
        raise ValueError(f"hidden states for {model}/{dataset}: shape {states.shape} does not match {len(ids)} ids")
    meta = {"ids": json.dumps(ids), "layer": str(int(layer)), "model": model, "dataset": dataset}
    write_safetensors({"hidden_states": np.ascontiguousarray(states.astype(np.float16))}, path, meta)


def read_hidden_states(path):
    """Read a hidden-states file → ``(ids, array float16 (n, d), metadata dict)``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
        arr = f.get_tensor("hidden_states")
    if "ids" not in meta:
        raise ValueError(f"{path}: not a uqroute hidden-states file (no `ids` in its metadata)")
    ids = json.loads(meta["ids"])
    if len(ids) != arr.shape[0]:
        raise ValueError(f"{path}: {len(ids)} ids for {arr.shape[0]} rows")
    return ids, arr, meta
