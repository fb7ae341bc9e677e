"""Loading one dataset's probe inputs: hidden states, roles and correctness labels, aligned by id."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from ..io import ArtifactInputError, align_ids, read_artifact, read_hidden_states

__all__ = ["ProbeInputs", "ProbeInputError", "load_probe_inputs"]


class ProbeInputError(ArtifactInputError):
    """Probe inputs that do not fit together (names the dataset and the file)."""


@dataclass
class ProbeInputs:
    """One dataset's rows in data order: ``x`` float32 (n, d), ``y`` 1.0/0.0/NaN (no label)."""

    dataset: str
    ids: list[str]
    role: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def eval_mask(self) -> np.ndarray:
        return self.role == "eval"

    @property
    def train_mask(self) -> np.ndarray:
        return self.role == "train"

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.y)


def load_probe_inputs(dataset: str, data_path, hidden_path, correctness_path) -> ProbeInputs:
    """Read one dataset's ``data`` artifact, hidden-states file and ``correctness`` artifact.

    Each is read with :mod:`uqroute.io`'s checked readers. The hidden-states file and the
    correctness table must hold exactly the data's ids (in any order); rows are returned in data
    order. A null ``correct`` becomes NaN (never trained on). A missing, truncated or off-schema
    file, or ids that do not match, raise :class:`uqroute.io.ArtifactInputError` naming the
    dataset and the file; non-finite hidden states raise :class:`ProbeInputError`.
    ``correctness_path=None`` reads no labels (every ``y`` is NaN): rows that are only scored.
    """
    stage = f"probe, dataset {dataset!r}"
    data = read_artifact(data_path, "data", columns=["role"], stage=stage)
    ids = data["id"].to_list()

    h_ids, states, _meta = read_hidden_states(hidden_path, stage=stage)
    rows = pl.DataFrame({"id": [str(i) for i in h_ids], "row": np.arange(len(h_ids))})
    order = align_ids(ids, rows, hidden_path, what="hidden-states", stage=stage, exact=True)["row"].to_numpy()
    x = np.asarray(states)[order].astype(np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ProbeInputError(
            f"dataset {dataset!r}: hidden-states file {hidden_path} has non-finite values for id {ids[row]!r}"
            " (float16 overflow?)"
        )

    if correctness_path is None:  # rows to be scored only: their labels are never read
        return ProbeInputs(dataset, ids, data["role"].to_numpy().astype(str), x, np.full(len(ids), np.nan))
    corr = read_artifact(correctness_path, "correctness", columns=["correct"], stage=stage)
    labels = align_ids(ids, corr, correctness_path, what="correctness", stage=stage, exact=True)["correct"].to_list()
    y = np.array([np.nan if v is None else float(bool(v)) for v in labels], dtype=np.float64)
    return ProbeInputs(dataset, ids, data["role"].to_numpy().astype(str), x, y)
