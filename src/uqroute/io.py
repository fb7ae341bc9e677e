"""Both halves of the artifact contract: atomic writing and checked reading.

Writing: every file a rule writes appears atomically: it is written to a temporary file in
the same directory and moved into place with ``os.replace`` only when complete, so
a killed job never leaves a partial artifact that Snakemake (or a user) could
mistake for a finished one (:func:`write_parquet`, :func:`atomic_path`).

Provenance: every parquet file :func:`write_parquet` writes carries, in its key-value metadata
(key ``uqroute.provenance``, a JSON object), the package version and git commit that wrote it, the
versions of the packages that computed it (:data:`PACKAGES`), the config values the rule ran with
and their hash, and the identities of the models and datasets it derives from (:func:`provenance`,
:func:`read_provenance`). It holds no timestamp, so a rerun with the same code, packages, config and
inputs writes the same bytes; the time it was written goes to a sidecar file beside it,
``<file>.provenance.json`` (:func:`read_provenance` adds it as ``written_at``).

Reading: :func:`read_artifact` reads a parquet artifact and checks it against its
documented schema (``uqroute.schema``); :func:`align_ids` puts another artifact's rows
in the order of a list of query ids. Both raise :class:`ArtifactInputError`, whose
message names the file (and the ids) at fault.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from .schema import ARTIFACTS, ArtifactSchemaError, check_frame

#: The file a finished directory artifact (a fetched model directory, ``uqroute.models.sources``) holds:
#: written last, so a directory without it is unfinished. Its JSON names the model and its weights' identity.
DIR_MARKER = ".uqroute-complete.json"


class ArtifactInputError(ValueError):
    """An input artifact that is missing, unreadable, off its documented schema, or that does not
    fit the other inputs (ids). The message names the file and, where it applies, the ids."""


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


def write_parquet(
    df: pl.DataFrame, path: str | os.PathLike, artifact: str | None = None, *, provenance: dict | None = None
) -> None:
    """Check ``df`` against ``artifact``'s documented schema (if given), then write it atomically.

    The file's metadata holds the provenance record (:func:`read_provenance`): ``provenance`` as
    built by :func:`provenance` (a plain dict is completed the same way); without it, the package
    version and git commit only.
    """
    if artifact is not None:
        check_frame(df, artifact, where=str(path))
    record = _complete(provenance)
    if artifact is not None:
        record["artifact"] = artifact
    with atomic_path(path, suffix=".parquet") as tmp:
        df.write_parquet(tmp, statistics=False, metadata={PROVENANCE_KEY: json.dumps(record, sort_keys=True)})
    _write_sidecar(path)


def _sidecar(path) -> Path:
    return Path(f"{path}{SIDECAR_SUFFIX}")


def _write_sidecar(path) -> None:
    """The time ``path`` was written, beside it (not inside: the artifact's bytes stay deterministic)."""
    import datetime

    stat = Path(path).stat()
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_text(json.dumps({"written_at": stamp, "size": stat.st_size}, sort_keys=True) + "\n", _sidecar(path))


# ------------------------------------------------------------------ provenance

#: parquet key-value metadata key of the provenance record
PROVENANCE_KEY = "uqroute.provenance"
#: suffix of the sidecar file that records when an artifact was written
SIDECAR_SUFFIX = ".provenance.json"
#: the distributions whose installed versions every provenance record names (those not installed are left out)
PACKAGES = (
    "polars",
    "pyarrow",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "transformers",
    "accelerate",
    "safetensors",
    "gguf",
    "datasets",
    "openai",
    "math-verify",
    "vllm",
    "snakemake",
)


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    """``{distribution: version}`` of the installed :data:`PACKAGES` (read from their metadata; nothing is imported)."""
    from importlib import metadata

    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """``{"uqroute_version", "git_commit", "git_dirty"}`` of the library that runs.

    ``git_commit`` is the commit of the checkout ``src/uqroute`` lives in (None outside a git
    checkout, or without git); ``git_dirty`` is True when tracked files under ``src/``,
    ``workflow/``, ``envs/`` or the ``Snakefile`` differ from it (None when unknown).
    """
    import subprocess

    from . import __version__

    root = Path(__file__).resolve().parents[2]
    commit = dirty = None
    if (root / ".git").exists():
        try:
            head = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30
            )
            if head.returncode == 0:
                commit = head.stdout.strip()
                status = subprocess.run(
                    [
                        "git",
                        "-C",
                        str(root),
                        "status",
                        "--porcelain",
                        "--untracked-files=no",
                        "--",
                        "src",
                        "workflow",
                        "envs",
                        "Snakefile",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            pass
    return {"uqroute_version": __version__, "git_commit": commit, "git_dirty": dirty}


def provenance(config=None, *, models: dict | None = None, datasets: dict | None = None, inputs=()) -> dict:
    """The provenance record of an artifact, for :func:`write_parquet`.

    * ``config``: the config values the artifact was made with (a rule's ``params``); stored as
      ``config`` (the values, JSON; non-JSON values as text) and ``config_sha256`` (:func:`fingerprint`).
    * ``models``: ``{model name: weights identity}`` (``uqroute.models.weights_identity``: the
      resolved hub commit, or the sha256 of a GGUF/PyPI/local model).
    * ``datasets``: ``{dataset name: {source, hub, config, revision, commit | files}}`` (what
      ``uqroute.data.build_dataset`` records: the resolved hub commit, or each source file's sha256).
    * ``inputs``: files the artifact was made from. The ``models`` and ``datasets`` of every parquet
      input are carried over, and a model directory written by ``fetch_model`` adds its identity,
      so an artifact names every model and dataset it derives from, however many stages back.
    """
    record = {"models": {}, "datasets": {}}
    for path in inputs:
        p = Path(path)
        if p.suffix == ".parquet" and p.is_file():
            found = read_provenance(p)
            _merge(record["models"], found.get("models") or {})
            _merge(record["datasets"], found.get("datasets") or {})
        elif p.is_dir():
            if (p / DIR_MARKER).is_file():  # a finished model directory (uqroute.models.sources)
                marker = json.loads((p / DIR_MARKER).read_text())
                if marker.get("model") and marker.get("weights_identity"):
                    _merge(record["models"], {marker["model"]: marker["weights_identity"]})
    _merge(record["models"], models or {})
    _merge(record["datasets"], datasets or {})
    if config is not None:
        record["config"] = json.loads(json.dumps(config, sort_keys=True, default=str))
        record["config_sha256"] = fingerprint(config)
    return record


def _merge(into: dict, new: dict) -> None:
    """Add ``new`` to ``into``; a name seen with two different values keeps both (a sorted list): the
    inputs were made from different versions, which the record must not hide."""
    for name, value in new.items():
        if name not in into or into[name] == value:
            into[name] = value
            continue
        old = into[name] if isinstance(into[name], list) else [into[name]]
        values = old + [v for v in (value if isinstance(value, list) else [value]) if v not in old]
        into[name] = sorted(values, key=lambda v: json.dumps(v, sort_keys=True))


def _complete(record: dict | None) -> dict:
    out = {"models": {}, "datasets": {}, **(record or {})}
    out.update(code_version())
    out["packages"] = package_versions()
    return out


def read_provenance(path: str | os.PathLike) -> dict:
    """The provenance record of a parquet artifact written by uqroute (``{}`` when it has none).

    Keys: ``uqroute_version``, ``git_commit``, ``git_dirty`` (the code that wrote it), ``packages``
    (``{distribution: version}``, :data:`PACKAGES`), ``artifact`` (its name in ``uqroute.schema``),
    ``config`` and ``config_sha256`` (the config values it was made with, and their hash), ``written_at``
    (UTC time, from the sidecar file; absent without one), ``models`` (``{name: weights identity}``) and ``datasets`` (``{name: {source, …, commit
    or files}}``) of everything it derives from; a generations artifact also has ``engine`` (which engine
    generated it: ``uqroute.inference.run``). A missing or unreadable file raises
    :class:`ArtifactInputError` naming it.
    """
    p = Path(path)
    kind = artifact_of_path(path)
    label = f"{kind + ' ' if kind else ''}file {path}"
    if not p.is_file():
        raise ArtifactInputError(f"{label} does not exist")
    try:
        meta = pl.read_parquet_metadata(p)
    except Exception as err:  # polars raises several types for files that are not parquet
        raise ArtifactInputError(f"{label} cannot be read as parquet ({type(err).__name__}: {err})") from None
    text = meta.get(PROVENANCE_KEY)
    if not text:
        return {}
    try:
        record = json.loads(text)
    except ValueError as err:
        raise ArtifactInputError(f"{label} has unreadable {PROVENANCE_KEY} metadata ({err})") from None
    side = _sidecar(p)
    if side.is_file():
        try:
            stamp = json.loads(side.read_text())
        except ValueError:
            stamp = {}
        if stamp.get("size") == p.stat().st_size and stamp.get(
            "written_at"
        ):  # a sidecar of another version of the file is ignored
            record["written_at"] = stamp["written_at"]
    return record


@functools.cache
def _artifact_patterns() -> list[tuple[str, re.Pattern]]:

    out = []
    for name, art in ARTIFACTS.items():
        parts = re.split(r"\{[^}]*\}", art.path)
        out.append((sum(map(len, parts)), name, re.compile("[^/]+".join(re.escape(x) for x in parts) + "$")))
    return [(name, pattern) for _, name, pattern in sorted(out, key=lambda x: -x[0])]  # most specific first


def artifact_of_path(path: str | os.PathLike) -> str | None:
    """The name of the artifact (``uqroute.schema.ARTIFACTS``) whose path pattern ``path`` ends
    with, or ``None``; used to name the culprit in errors about a file read by path."""
    text = Path(path).as_posix()
    for name, pattern in _artifact_patterns():
        if pattern.search(text):
            return name
    return None


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


def read_hidden_states(path, *, stage: str = ""):
    """Read a hidden-states file → ``(ids, array float16 (n, d), metadata dict)``.

    A missing, truncated or foreign file raises :class:`ArtifactInputError` naming ``stage`` and the file.
    """
    from safetensors import safe_open

    label = f"{stage + ': ' if stage else ''}hidden-states file {path}"
    if not Path(path).is_file():
        raise ArtifactInputError(f"{label} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            arr = f.get_tensor("hidden_states") if "hidden_states" in keys else None
    except Exception as err:  # safetensors raises its own error type (and OSError) for truncated/garbage files
        raise ArtifactInputError(f"{label} cannot be read as safetensors ({type(err).__name__}: {err})") from None
    if arr is None or "ids" not in meta:
        raise ArtifactInputError(
            f"{label} is not a uqroute hidden-states file (no `hidden_states` tensor or `ids` metadata)"
        )
    try:
        ids = json.loads(meta["ids"])
    except ValueError as err:
        raise ArtifactInputError(f"{label}: its `ids` metadata is not JSON ({err})") from None
    if arr.ndim != 2 or len(ids) != arr.shape[0]:
        raise ArtifactInputError(f"{label}: {len(ids)} ids for a tensor of shape {tuple(arr.shape)}")
    return ids, arr, meta


# ------------------------------------------------------------------ reading


def _dup(ids: list) -> object | None:
    seen = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


def read_artifact(path: str | os.PathLike, artifact: str, *, columns=None, stage: str = "") -> pl.DataFrame:
    """Read a parquet artifact and check it against its documented schema.

    ``columns`` (optional) reads only those documented columns (plus the key), which must
    exist with their documented types; without it the whole table is checked with
    :func:`uqroute.schema.check_frame`. The key must be unique. Every failure (missing
    file, truncated or corrupt parquet, missing column, wrong type, duplicate key) raises
    :class:`ArtifactInputError` naming ``stage``, the artifact and the file.
    """
    art = ARTIFACTS[artifact]
    label = f"{stage + ': ' if stage else ''}{artifact} file {path}"
    p = Path(path)
    if not p.is_file():
        raise ArtifactInputError(f"{label} does not exist")
    want = None
    if columns is not None:
        want = list(dict.fromkeys([*art.key, *columns]))
    try:
        df = pl.read_parquet(p, columns=want) if want is None else _read_columns(p, want, label)
    except ArtifactInputError:
        raise
    except Exception as err:  # polars/arrow raise several types for truncated or corrupt files
        raise ArtifactInputError(f"{label} cannot be read as parquet ({type(err).__name__}: {err})") from None
    try:
        if want is None:
            check_frame(df, art, where=str(path))
        else:
            _check_columns(df, art, label)
    except ArtifactSchemaError as err:
        raise ArtifactInputError(f"{stage + ': ' if stage else ''}{err}") from None
    return df


def _read_columns(path: Path, want: list[str], label: str) -> pl.DataFrame:
    have = pl.read_parquet_schema(path)
    missing = [c for c in want if c not in have]
    if missing:
        raise ArtifactInputError(f"{label} lacks column(s) {missing} (has {list(have)})")
    return pl.read_parquet(path, columns=want)


def _check_columns(df: pl.DataFrame, art, label: str) -> None:
    from .schema import same_dtype

    documented = {c.name: c for c in art.columns}
    for name in df.columns:
        c = documented.get(name)
        expected = c.dtype if c is not None else art.extra_dtype
        if expected is not None and not same_dtype(df.schema[name], expected):
            raise ArtifactInputError(f"{label}: column {name!r} has type {df.schema[name]}, documented {expected}")
        if c is not None and not c.nullable and df[name].null_count():
            row = df.with_row_index().filter(pl.col(name).is_null())["index"][0]
            raise ArtifactInputError(f"{label}: column {name!r} is null in row {row} but may not be")
    if df.height and df.select(list(art.key)).is_duplicated().any():
        dup = df.filter(df.select(list(art.key)).is_duplicated()).row(0)
        raise ArtifactInputError(f"{label}: key {art.key} is not unique (e.g. {dup[: len(art.key)]})")


def align_ids(ids, df: pl.DataFrame, path, *, what: str, stage: str = "", exact: bool = False) -> pl.DataFrame:
    """The rows of ``df`` in the order of ``ids`` (joined on ``id``).

    Every id must be in ``df``; with ``exact=True`` ``df`` may hold no other ids either.
    ``df``'s ids must be unique. Otherwise :class:`ArtifactInputError` names the file
    (``what`` file ``path``), how many ids are missing or extra, and a few of them.
    """
    ids = [str(i) for i in ids]
    label = f"{stage + ': ' if stage else ''}{what} file {path}"
    if (d := _dup(ids)) is not None:
        raise ArtifactInputError(f"{label}: the expected ids hold {d!r} more than once")
    got = df["id"].to_list()
    if (d := _dup(got)) is not None:
        raise ArtifactInputError(f"{label} holds id {d!r} more than once")
    have, want = set(got), set(ids)
    missing = [i for i in ids if i not in have]
    extra = [i for i in got if i not in want] if exact else []
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} expected id(s), e.g. {missing[:3]}")
        if extra:
            parts.append(f"holds {len(extra)} unexpected id(s), e.g. {extra[:3]}")
        raise ArtifactInputError(f"{label} " + "; ".join(parts))
    return pl.DataFrame({"id": ids}, schema={"id": df.schema["id"]}).join(
        df, on="id", how="left", maintain_order="left"
    )
