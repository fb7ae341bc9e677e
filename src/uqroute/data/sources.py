"""Where source rows come from: the Hugging Face hub, an offline mirror, or the shipped slices.

All three give the hub's rows as plain dicts with the hub's exact column names, so
one adapter per dataset serves every source:

* ``hub`` — ``datasets.load_dataset(hub_id, config, split=..., revision=...)``.
* ``mirror`` — a directory laid out ``<owner>__<name>/<config>/<split>.parquet``
  (``default`` when the hub dataset has no named config) holding the hub's columns,
  e.g. the offline mirror described in ``../shared/datasets/README.md``.
* ``slices`` — the small real slices shipped in ``data/slices/``, in the mirror's
  layout and read by the same code path.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetError, MissingColumnError, SplitNotFoundError
from .registry import DatasetSpec

SOURCES = ("hub", "mirror", "slices")


def read_split(
    spec: DatasetSpec,
    split: str,
    *,
    source: str,
    mirror_dir: str | Path | None = None,
    slices_dir: str | Path | None = None,
) -> list[dict]:
    """The rows of one split of ``spec`` from ``source``, as dicts with the hub's columns.

    Raises :class:`SplitNotFoundError` when the split does not exist there and
    :class:`MissingColumnError` when a column the adapter reads is absent.
    """
    if source == "hub":
        return _read_hub(spec, split)
    if source == "mirror":
        if not mirror_dir:
            raise DatasetError(f"dataset {spec.name!r}: data.source is 'mirror' but data.mirror_dir is not set")
        return read_parquet_split(spec, split, Path(mirror_dir), what="mirror")
    if source == "slices":
        if not slices_dir:
            raise DatasetError(f"dataset {spec.name!r}: data.source is 'slices' but data.slices_dir is not set")
        return read_parquet_split(spec, split, Path(slices_dir), what="slices")
    raise DatasetError(f"dataset {spec.name!r}: unknown data source {source!r}; use one of {', '.join(SOURCES)}")


def read_parquet_split(spec: DatasetSpec, split: str, root: Path, *, what: str = "mirror") -> list[dict]:
    """Read ``<root>/<owner>__<name>/<config>/<split>.parquet`` (mirror and slices layout)."""
    import pyarrow.parquet as pq

    if not root.is_dir():
        raise SplitNotFoundError(f"dataset {spec.name!r}, split {split!r}: {what} directory {root} does not exist")
    path = root / spec.split_file(split)
    if not path.is_file():
        raise SplitNotFoundError(
            f"dataset {spec.name!r}, split {split!r}: file {path} not found in the {what} ({spec.hub_id}"
            f"{'/' + spec.hub_config if spec.hub_config else ''} split {split!r})"
        )
    present = pq.read_schema(path).names
    for col in spec.columns:
        if col not in present:
            raise MissingColumnError(
                f"dataset {spec.name!r}, split {split!r}: file {path} has no column {col!r} "
                f"(columns: {present}; the adapter reads {list(spec.columns)})"
            )
    return pq.read_table(path, columns=list(spec.columns)).to_pylist()


def _read_hub(spec: DatasetSpec, split: str) -> list[dict]:
    """``datasets.load_dataset`` on the hub id/config/revision (needs network or the HF cache)."""
    import datasets

    where = f"{spec.hub_id}{'/' + spec.hub_config if spec.hub_config else ''}"
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=split, revision=spec.revision)
    except ValueError as e:  # datasets: 'Unknown split "x". Should be one of [...]'
        if "split" in str(e).lower():
            raise SplitNotFoundError(f"dataset {spec.name!r}, split {split!r}: not on the hub ({where}): {e}") from e
        raise
    for col in spec.columns:
        if col not in ds.column_names:
            raise MissingColumnError(
                f"dataset {spec.name!r}, split {split!r}: hub dataset {where} has no column {col!r} "
                f"(columns: {ds.column_names})"
            )
    return ds.select_columns(list(spec.columns)).to_list()
