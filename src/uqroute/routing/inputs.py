"""Read and align the routing stage's inputs (data, uq, correctness) by query id.

Every file is read with :func:`uqroute.io.read_artifact` and aligned with
:func:`uqroute.io.align_ids`, so a missing, corrupt or inconsistent file raises
:class:`RoutingInputError` (an :class:`uqroute.io.ArtifactInputError`) naming the file and ids.
Rows are put in ascending id order, so no result depends on the row order of any file.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .. import io

__all__ = ["RoutingInputError", "Cell", "RoutingInputs", "load_inputs", "label_column"]

STAGE = "routing"


class RoutingInputError(io.ArtifactInputError):
    """An input artifact of the routing stage is missing, malformed or inconsistent (names the file)."""


def label_column(method: str) -> str:
    """The ``correctness`` column a method's confidence is evaluated against (its answer's label).

    ``uqroute.uq.METHODS[method].answer`` names the answer ("greedy" or "verbal_1s") and
    ``uqroute.uq.registry.ANSWER_LABELS`` its correctness column.
    """
    from ..uq import ANSWER_LABELS, METHODS

    if method not in METHODS:
        raise KeyError(method)
    return ANSWER_LABELS[METHODS[method].answer]


@dataclass
class Cell:
    """One (SLM, dataset): confidences per method and correctness labels, rows in id order."""

    ids: np.ndarray
    conf: dict[str, np.ndarray]  # method → float array, NaN for null
    labels: dict[str, np.ndarray]  # correctness column (`correct`, `verbal_1s_correct`) → float 0/1, NaN for null
    llm: dict[str, np.ndarray] = field(default_factory=dict)  # LLM → float 0/1 (`correct`), NaN for null
    paths: dict[str, str] = field(default_factory=dict)  # "uq" → path, for messages

    @property
    def slm(self) -> np.ndarray:
        """The greedy answer's correctness (``correctness.correct``)."""
        return self.labels["correct"]


@dataclass
class RoutingInputs:
    slms: list[str]
    llms: list[str]
    datasets: list[str]
    domains: dict[str, str]
    methods: list[str]
    cells: dict[tuple[str, str], Cell]
    label_of: dict[str, str] = field(default_factory=dict)  # method → correctness column
    #: leak-free OOD-probe scores for the proxy pools: (slm, dataset, other held-out dataset) → scores of
    #: ``dataset``'s eval rows in the cell's id order (``proxy_probe`` artifacts); None when none were given
    leak_free: dict[tuple[str, str, str], np.ndarray] | None = None


def _match(paths: Sequence[str], keys: list[tuple[str, ...]], what: str) -> dict[tuple[str, ...], str]:
    """Pair expand()-ordered ``paths`` with ``keys``, checking each path ends in ``…/a/b.parquet``."""
    paths = [str(p) for p in paths]
    if len(paths) != len(keys):
        raise RoutingInputError(f"{STAGE}: {len(paths)} {what} paths for {len(keys)} expected ({keys[:3]}…)")
    out = {}
    for key, p in zip(keys, paths):
        parts = Path(p).with_suffix("").parts[-len(key) :]
        if tuple(parts) != tuple(key):
            raise RoutingInputError(
                f"{STAGE}: {what} path {p} does not belong to {'/'.join(key)} (inputs must follow expand() order)"
            )
        out[key] = p
    return out


def _bools(df: pl.DataFrame, col: str) -> np.ndarray:
    return df[col].cast(pl.Float64).to_numpy().astype(np.float64)


def load_inputs(
    uq_paths, correctness_paths, data_paths, *, slms, llms, datasets, proxy_probe_paths=None
) -> RoutingInputs:
    """Read and align every input; paths are lists in ``expand()`` order (model outer, dataset inner).

    The uq table of (SLM, dataset) must hold exactly the dataset's eval ids; every correctness
    table must cover them. Methods are the uq tables' columns; each must be a registered UQ
    method (its label column is looked up in the registry). ``proxy_probe_paths`` are
    ``proxy_probe`` artifacts (``results/probes/{slm}/proxy/{dataset}.parquet``, the pairs one dataset
    owns): each pair must hold exactly the eval ids of both its datasets, and no pair may be in two
    files; None leaves ``leak_free`` unset.
    """
    slms, llms, datasets = list(slms), list(llms), list(datasets)
    uq = _match(uq_paths, list(itertools.product(slms, datasets)), "uq")
    corr = _match(correctness_paths, list(itertools.product(slms + llms, datasets)), "correctness")
    data = _match(data_paths, [(d,) for d in datasets], "data")
    domains, eval_ids = {}, {}
    for d in datasets:
        path = data[(d,)]
        df = _read(path, "data", ["domain", "role"]).filter(pl.col("role") == "eval")
        doms = df["domain"].unique().sort().to_list()
        if len(doms) != 1:
            raise RoutingInputError(
                f"{STAGE}: data file {path} has {len(doms)} domains {doms} among its eval rows; expected one"
            )
        domains[d], eval_ids[d] = doms[0], sorted(df["id"].to_list())
    cells, methods, label_of = {}, [], {}
    for (slm, d), path in uq.items():
        df = _align(eval_ids[d], _read(path, "uq"), path, "uq", exact=True)
        conf = {}
        for m in df.columns[1:]:
            if m not in label_of:
                try:
                    label_of[m] = label_column(m)
                except KeyError:
                    from ..uq import METHODS

                    raise RoutingInputError(
                        f"{STAGE}: uq file {path} has column {m!r}, which is not a registered UQ method "
                        f"(known: {sorted(METHODS)})"
                    ) from None
            x = df[m].cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)
            if np.isinf(x).any():
                row = int(np.flatnonzero(np.isinf(x))[0])
                raise RoutingInputError(f"{STAGE}: uq file {path} column {m!r} is infinite for id {df['id'][row]!r}")
            conf[m] = x
            if m not in methods:
                methods.append(m)
        want = sorted({label_of[m] for m in conf} | {"correct"})
        c = _align(eval_ids[d], _read(corr[(slm, d)], "correctness", want), corr[(slm, d)], "correctness")
        cell = Cell(
            ids=np.array(eval_ids[d], dtype=object),
            conf=conf,
            labels={col: _bools(c, col) for col in want},
            paths={"uq": path},
        )
        for llm in llms:
            c = _align(eval_ids[d], _read(corr[(llm, d)], "correctness", ["correct"]), corr[(llm, d)], "correctness")
            cell.llm[llm] = _bools(c, "correct")
        cells[(slm, d)] = cell
    leak_free = None if proxy_probe_paths is None else _leak_free(proxy_probe_paths, slms, datasets, eval_ids)
    return RoutingInputs(slms, llms, datasets, domains, methods, cells, label_of, leak_free)


def _leak_free(paths, slms, datasets, eval_ids) -> dict[tuple[str, str, str], np.ndarray]:
    """Read ``proxy_probe`` artifacts: (slm, dataset, other) → scores in ``eval_ids[dataset]`` order.
    A file holds the pairs one dataset owns; a pair found in two files is an error naming both."""
    out, found_in = {}, {}
    for path in map(str, paths):
        slm = Path(path).parent.parent.name  # results/probes/{slm}/proxy/{dataset}.parquet
        if slm not in slms:
            raise RoutingInputError(f"{STAGE}: proxy-probe file {path} belongs to no SLM of this job ({slms})")
        df = _read(path, "proxy_probe")
        for (d, other), part in df.group_by(["dataset", "other"], maintain_order=True):
            if d not in datasets or other not in datasets:
                raise RoutingInputError(
                    f"{STAGE}: proxy-probe file {path} holds datasets {d!r}/{other!r}, not both of the run ({datasets})"
                )
            if (slm, d, other) in found_in:
                raise RoutingInputError(
                    f"{STAGE}: proxy-probe files {found_in[(slm, d, other)]} and {path} both hold the scores of "
                    f"{d!r} from the probe without {d!r} and {other!r}"
                )
            found_in[(slm, d, other)] = path
            rows = _align(eval_ids[d], part.select("id", "ood_probe"), path, "proxy_probe", exact=True)
            out[(slm, d, other)] = rows["ood_probe"].cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)
    return out


def _read(path: str, artifact: str, columns: list[str] | None = None) -> pl.DataFrame:
    try:
        return io.read_artifact(path, artifact, columns=columns, stage=STAGE)
    except io.ArtifactInputError as err:
        raise RoutingInputError(str(err)) from None


def _align(ids, df: pl.DataFrame, path: str, what: str, exact: bool = False) -> pl.DataFrame:
    try:
        return io.align_ids(ids, df, path, what=what, stage=STAGE, exact=exact)
    except io.ArtifactInputError as err:
        raise RoutingInputError(str(err)) from None
