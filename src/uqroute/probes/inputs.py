"""Loading one dataset's probe inputs: hidden states, roles and correctness labels, aligned by id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..io import read_hidden_states

__all__ = ["ProbeInputs", "ProbeInputError", "load_probe_inputs"]


class ProbeInputError(ValueError):
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


def _require(path, what: str, dataset: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"probe inputs for dataset {dataset!r}: {what} file {path} does not exist")
    return path


def _diff(expected: list[str], got: list[str]) -> str:
    e, g = set(expected), set(got)
    missing = [i for i in expected if i not in g][:3]
    extra = [i for i in got if i not in e][:3]
    parts = []
    if missing:
        parts.append(f"{len(e - g)} data id(s) missing, e.g. {missing}")
    if extra:
        parts.append(f"{len(g - e)} id(s) not in the data, e.g. {extra}")
    return "; ".join(parts)


def _dup(ids: list[str]) -> str | None:
    seen = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


def load_probe_inputs(dataset: str, data_path, hidden_path, correctness_path) -> ProbeInputs:
    """Read one dataset's ``data`` artifact, hidden-states file and ``correctness`` artifact.

    The hidden-states file and the correctness table must hold exactly the data's ids
    (in any order); rows are returned in data order. A null ``correct`` becomes NaN
    (never trained on). Raises :class:`ProbeInputError` / ``FileNotFoundError`` naming the
    file otherwise.
    """
    data = pl.read_parquet(_require(data_path, "data", dataset), columns=["id", "role"])
    ids = data["id"].to_list()
    if (d := _dup(ids)) is not None:
        raise ProbeInputError(f"dataset {dataset!r}: data file {data_path} holds id {d!r} more than once")

    h_ids, states, _meta = read_hidden_states(_require(hidden_path, "hidden-states", dataset))
    h_ids = [str(i) for i in h_ids]
    if (d := _dup(h_ids)) is not None:
        raise ProbeInputError(f"dataset {dataset!r}: hidden-states file {hidden_path} holds id {d!r} more than once")
    if set(h_ids) != set(ids):
        raise ProbeInputError(
            f"dataset {dataset!r}: the ids in hidden-states file {hidden_path} do not match data file "
            f"{data_path}: {_diff(ids, h_ids)}"
        )
    pos = {i: k for k, i in enumerate(h_ids)}
    x = np.asarray(states)[[pos[i] for i in ids]].astype(np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ProbeInputError(
            f"dataset {dataset!r}: hidden-states file {hidden_path} has non-finite values for id {ids[row]!r}"
            " (float16 overflow?)"
        )

    corr = pl.read_parquet(_require(correctness_path, "correctness", dataset))
    if "id" not in corr.columns or "correct" not in corr.columns:
        raise ProbeInputError(f"dataset {dataset!r}: correctness file {correctness_path} lacks `id`/`correct` columns")
    c_ids = corr["id"].to_list()
    if (d := _dup(c_ids)) is not None:
        raise ProbeInputError(f"dataset {dataset!r}: correctness file {correctness_path} holds id {d!r} more than once")
    if set(c_ids) != set(ids):
        raise ProbeInputError(
            f"dataset {dataset!r}: the ids in correctness file {correctness_path} do not match data file "
            f"{data_path}: {_diff(ids, c_ids)}"
        )
    label = dict(zip(c_ids, corr["correct"].to_list()))
    y = np.array([np.nan if label[i] is None else float(bool(label[i])) for i in ids], dtype=np.float64)
    return ProbeInputs(dataset, ids, data["role"].to_numpy().astype(str), x, y)
