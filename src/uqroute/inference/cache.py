"""The on-disk response cache every backend can sit behind: a slow or paid call is never made twice.

* :class:`ResponseCache` — a directory of JSON records, one file per key, written atomically;
* :func:`cache_key` — SHA-256 of a canonical JSON payload;
* :class:`CachedBackend` — the cache in front of any :class:`~.base.ChatBackend` (the local
  transformers judge uses it), keyed by an identity of the model (:func:`model_fingerprint`:
  SHA-256 of the model files) plus the messages and every generation parameter;
* :func:`default_cache_dir` — ``$UQROUTE_CACHE_DIR/<kind>/<name>`` or ``resources/cache/<kind>/<name>``.

The OpenAI-compatible backend (:mod:`.api`) keys its own records by the request body.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence

from ..io import atomic_path
from .base import Conversation, Generation, check_generation_args, normalise_messages

__all__ = [
    "CACHE_FORMAT",
    "CachedBackend",
    "ResponseCache",
    "cache_key",
    "default_cache_dir",
    "model_fingerprint",
]

log = logging.getLogger(__name__)

#: Bumped whenever the meaning of a cached record changes; old entries then miss.
CACHE_FORMAT = 1

def cache_key(payload: dict) -> str:
    """SHA-256 of ``payload`` as canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _safe_name(name: str) -> str:
    """A model name as one path component (``Qwen/Qwen3-32B`` → ``Qwen__Qwen3-32B``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__")).strip(".")
    if not safe:
        raise ValueError(f"model name {name!r} gives an empty cache directory name")
    return safe


def default_cache_dir(kind: str, name: str) -> Path:
    """``$UQROUTE_CACHE_DIR/<kind>/<name>`` if that variable is set, else ``resources/cache/<kind>/<name>``.

    ``resources/cache`` is relative to the working directory (the Snakemake
    workdir) and is not a rule output, so it survives reruns.
    """
    root = os.environ.get("UQROUTE_CACHE_DIR") or "resources/cache"
    return Path(root) / kind / _safe_name(name)


class ResponseCache:
    """A directory of JSON records, one file per key: ``<root>/<key[:2]>/<key>.json``.

    Writes go through :func:`uqroute.io.atomic_path` (temporary file + rename), so
    concurrent threads or jobs never see a partial record; the last writer of the
    same key wins, harmlessly, since equal keys mean equal requests.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The stored record, or ``None`` on a miss (an unreadable record counts as a miss, with a warning)."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            log.warning("cache record %s is not valid JSON (%s); it will be recomputed", path, err)
            return None
        if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT:
            log.warning("cache record %s has another format; it will be recomputed", path)
            return None
        return record

    def put(self, key: str, record: dict) -> None:
        record = {"format": CACHE_FORMAT, **record}
        text = json.dumps(record, ensure_ascii=False, sort_keys=True)
        with atomic_path(self.path(key), suffix=".json") as tmp:
            tmp.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------ key and client


def _hash_files(root: Path, listing: tuple) -> str:
    h = hashlib.sha256()
    for rel, size, *_ in listing:
        h.update(f"{rel}\0{size}\0".encode())
        with open(root / rel, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def model_fingerprint(model_dir: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 over every file of a model directory (relative paths, sizes and contents).

    Identifies a local model for :class:`CachedBackend` keys independently of where
    the directory lives. Hashing gigabytes takes seconds, so with ``memo_dir`` the
    result is remembered there under a key made of each file's path, size, inode
    and mtime (as ``git`` does for its index): an unchanged directory is not re-read.
    Hidden files (e.g. ``fetch_model``'s completion marker) are left out.
    """
    root = Path(model_dir).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    listing = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = p.stat()
            listing.append((rel.as_posix(), st.st_size, st.st_ino, st.st_mtime_ns))
    if not listing:
        raise FileNotFoundError(f"model directory {model_dir} holds no files")
    listing = tuple(listing)
    memo = None
    if memo_dir is not None:
        memo = Path(memo_dir) / "fingerprints" / f"{cache_key({'root': str(root), 'files': listing})}.sha256"
        with contextlib.suppress(OSError):
            value = memo.read_text().strip()
            if re.fullmatch(r"[0-9a-f]{64}", value):
                return value
    value = _hash_files(root, listing)
    if memo is not None:
        with atomic_path(memo) as tmp:
            tmp.write_text(value + "\n")
    return value


def _generation_from_dict(d: dict) -> Generation:
    fields = {f.name for f in dataclasses.fields(Generation)}
    return Generation(**{k: v for k, v in d.items() if k in fields})


class CachedBackend:
    """Put a :class:`ResponseCache` in front of any ChatBackend (e.g. the local transformers one).

    Each conversation is one cache entry keyed by ``identity`` (what determines the
    model's output: e.g. ``{"model_sha256": model_fingerprint(dir), "dtype": "float32"}``),
    the messages and every generation parameter. The uncached conversations of a
    call go to the wrapped backend in **one** ``generate`` call, so its batching is kept.

    ``backend`` may be a ChatBackend or a zero-argument callable returning one; a
    callable is only called on the first cache miss, so a fully cached rerun never
    loads the model.

    Sampling (``temperature > 0``) is cached too, so a rerun returns the same samples;
    note that a backend whose seeds depend on a conversation's position in the batch
    (as the transformers backend's do) can give different samples when only part of
    a batch was cached.
    """

    def __init__(self, backend, cache_dir: str | os.PathLike, identity: dict, *, name: str | None = None):
        self._backend = backend
        self.name = name or getattr(backend, "name", None) or "backend"
        self.identity = dict(identity)
        self.cache = ResponseCache(cache_dir)
        self.stats = {"cache_hits": 0, "requests": 0}

    @property
    def backend(self):
        """The wrapped backend (built now if it was given as a factory)."""
        if callable(self._backend) and not hasattr(self._backend, "generate"):
            self._backend = self._backend()
        return self._backend

    def generate(
        self,
        conversations: Sequence[Conversation],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        top_logprobs: int = 0,
    ) -> list[list[Generation]]:
        check_generation_args(max_new_tokens, temperature, n, top_logprobs)
        params = {"max_new_tokens": max_new_tokens, "temperature": float(temperature), "n": n,
                  "seed": seed, "top_logprobs": top_logprobs}
        msgs = [normalise_messages(c, i) for i, c in enumerate(conversations)]
        keys = [cache_key({"format": CACHE_FORMAT, "identity": self.identity, "messages": m, "params": params})
                for m in msgs]
        found: dict[str, list[Generation]] = {}
        todo: dict[str, list[dict]] = {}
        for key, m in zip(keys, msgs):
            if key in found or key in todo:
                continue
            record = self.cache.get(key)
            if record is not None:
                found[key] = [_generation_from_dict(g) for g in record["generations"]]
                self.stats["cache_hits"] += 1
            else:
                todo[key] = m
        if todo:
            log.info("%s: generating for %d conversations (%d cached)", self.name, len(todo), len(found))
            fresh = self.backend.generate(
                list(todo.values()), max_new_tokens=max_new_tokens, temperature=temperature,
                n=n, seed=seed, top_logprobs=top_logprobs,
            )
            if len(fresh) != len(todo):
                raise RuntimeError(f"{self.name}: backend returned {len(fresh)} results for {len(todo)} conversations")
            for (key, m), gens in zip(todo.items(), fresh):
                self.cache.put(key, {"identity": self.identity, "messages": m, "params": params,
                                     "generations": [dataclasses.asdict(g) for g in gens]})
                found[key] = list(gens)
                self.stats["requests"] += 1
        return [found[k] for k in keys]

    def close(self) -> None:
        if hasattr(self._backend, "generate"):
            self._backend.close()
