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

import logging
from pathlib import Path

from .errors import CorruptFileError, DatasetError, MissingColumnError, RowError, SplitNotFoundError
from .registry import DatasetSpec

log = logging.getLogger(__name__)

SOURCES = ("hub", "mirror", "slices")


def read_split(
    spec: DatasetSpec,
    split: str,
    *,
    source: str,
    mirror_dir: str | Path | None = None,
    slices_dir: str | Path | None = None,
    revision: str | None = None,
) -> list[dict]:
    """The rows of one split of ``spec`` from ``source``, as dicts with the hub's columns.

    ``revision`` (hub only): the hub revision to read, e.g. the commit :func:`resolve_hub_commit`
    found; ``None`` = ``spec.revision``. Raises :class:`SplitNotFoundError` when the split does not
    exist there and :class:`MissingColumnError` when a column the adapter reads is absent.
    """
    if source == "hub":
        return _read_hub(spec, split, revision or spec.revision)
    if source == "mirror":
        if not mirror_dir:
            raise DatasetError(f"dataset {spec.name!r}: data.source is 'mirror' but data.mirror_dir is not set")
        return read_parquet_split(spec, split, Path(mirror_dir), what="mirror")
    if source == "slices":
        if not slices_dir:
            raise DatasetError(f"dataset {spec.name!r}: data.source is 'slices' but data.slices_dir is not set")
        return read_parquet_split(spec, split, Path(slices_dir), what="slices")
    raise DatasetError(f"dataset {spec.name!r}: unknown data source {source!r}; use one of {', '.join(SOURCES)}")


def split_location(
    spec: DatasetSpec,
    split: str,
    *,
    source: str,
    mirror_dir: str | Path | None = None,
    slices_dir: str | Path | None = None,
    revision: str | None = None,
) -> str:
    """Where :func:`read_split` reads ``split`` from, for error messages: ``file <path>`` (mirror,
    slices) or ``hub dataset <id>[/<config>] split '<split>' [revision <r>]``."""
    root = {"mirror": mirror_dir, "slices": slices_dir}.get(source)
    if root:
        return f"file {Path(root) / spec.split_file(split)}"
    where = f"{spec.hub_id}{'/' + spec.hub_config if spec.hub_config else ''}"
    rev = revision or spec.revision
    return f"hub dataset {where} split {split!r}{f' revision {rev}' if rev else ''}"


def read_parquet_split(spec: DatasetSpec, split: str, root: Path, *, what: str = "mirror") -> list[dict]:
    """Read ``<root>/<owner>__<name>/<config>/<split>.parquet`` (mirror and slices layout).

    A file that is not readable parquet (truncated, garbage) raises :class:`CorruptFileError`
    naming the dataset, split and file. Text must be text: a binary column (or binary field
    inside a list/struct) is decoded as UTF-8, never turned into the text ``"b'…'"``; a value
    that is not valid UTF-8, in a binary or a string column, raises :class:`RowError` naming the
    dataset, split, row, column and file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not root.is_dir():
        raise SplitNotFoundError(f"dataset {spec.name!r}, split {split!r}: {what} directory {root} does not exist")
    path = root / spec.split_file(split)
    if not path.is_file():
        raise SplitNotFoundError(
            f"dataset {spec.name!r}, split {split!r}: file {path} not found in the {what} ({spec.hub_id}"
            f"{'/' + spec.hub_config if spec.hub_config else ''} split {split!r})"
        )
    try:
        present = pq.read_schema(path).names
        missing = [col for col in spec.columns if col not in present]
        table = None if missing else pq.read_table(path, columns=list(spec.columns))
    except (pa.ArrowException, OSError) as err:
        raise CorruptFileError(
            f"dataset {spec.name!r}, split {split!r}: {what} file {path} cannot be read as parquet "
            f"({type(err).__name__}: {err})"
        ) from None
    if missing:
        raise MissingColumnError(
            f"dataset {spec.name!r}, split {split!r}: file {path} has no column {missing[0]!r} "
            f"(columns: {present}; the adapter reads {list(spec.columns)})"
        )
    columns = [_column_values(table.column(name), name, spec, split, path) for name in table.column_names]
    return [dict(zip(table.column_names, values)) for values in zip(*columns)] if columns else []


def _has_binary(t) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return True
    if getattr(pa.types, "is_binary_view", lambda _: False)(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_binary(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_binary(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _has_binary(t.key_type) or _has_binary(t.item_type)
    return False


def _decode(value, fail):
    """``value`` with every ``bytes`` inside decoded as strict UTF-8 (``fail(problem)`` on error)."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise fail(
                f"binary value is not valid UTF-8 ({err.reason} at byte {err.start}: "
                f"{bytes(value)[max(0, err.start - 10) : err.end + 10]!r})"
            ) from None
    if isinstance(value, list):
        return [_decode(v, fail) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v, fail) for k, v in value.items()}
    return value


def _column_values(col, name: str, spec: DatasetSpec, split: str, path: Path) -> list:
    """A column's values as Python objects, text checked to be UTF-8 (errors name the row)."""

    def fail_at(row: int):
        return lambda problem: RowError(spec.name, split, row, name, f"{problem}, in file {path}")

    try:
        values = col.to_pylist()
    except UnicodeDecodeError:  # a string column holding bytes that are not UTF-8
        for row, scalar in enumerate(col):
            try:
                scalar.as_py()
            except UnicodeDecodeError as err:
                raise fail_at(row)(f"text is not valid UTF-8 ({err.reason} at byte {err.start})") from None
        raise
    if _has_binary(col.type):
        log.warning(
            "dataset %r, split %r: column %r of %s is binary (%s); decoding it as UTF-8",
            spec.name,
            split,
            name,
            path,
            col.type,
        )
        values = [_decode(v, fail_at(row)) for row, v in enumerate(values)]
    return values


def resolve_hub_commit(spec: DatasetSpec, revision: str | None) -> str | None:
    """The commit sha the hub's ``revision`` (a branch, tag or sha; ``None`` = the default branch) of
    ``spec``'s dataset points at now, so that every split is read from that one commit and the
    ``data`` artifact can name it. A 40-hex ``revision`` is returned as is. Offline
    (``HF_HUB_OFFLINE``) or when the hub does not answer: ``None``, with a warning (the rows then
    come from whatever ``datasets`` has cached for ``revision``)."""
    import re

    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    from huggingface_hub import HfApi, constants

    if constants.HF_HUB_OFFLINE:
        log.warning(
            "dataset %r: HF_HUB_OFFLINE is set, so hub revision %r of %s cannot be resolved to a commit; "
            "the data artifact will not name one",
            spec.name,
            revision or "(default branch)",
            spec.hub_id,
        )
        return None
    try:
        return HfApi().dataset_info(spec.hub_id, revision=revision).sha
    except Exception as err:  # network errors, gated/missing repos: reading the rows reports those properly
        log.warning(
            "dataset %r: could not resolve hub revision %r of %s to a commit (%s: %s)",
            spec.name,
            revision or "(default branch)",
            spec.hub_id,
            type(err).__name__,
            err,
        )
        return None


def _read_hub(spec: DatasetSpec, split: str, revision: str | None = None) -> list[dict]:
    """``datasets.load_dataset`` on the hub id/config/revision (needs network or the HF cache)."""
    import datasets

    where = f"{spec.hub_id}{'/' + spec.hub_config if spec.hub_config else ''}"
    try:
        ds = datasets.load_dataset(spec.hub_id, spec.hub_config, split=split, revision=revision)
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
