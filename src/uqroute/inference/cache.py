"""The on-disk response cache every backend can sit behind: a slow or paid call is never made twice.

* :class:`ResponseCache` — a directory of JSON records, one file per key, written atomically;
* :func:`cache_key` — SHA-256 of a canonical JSON payload;
* :class:`CachedBackend` — the cache in front of any :class:`~.base.ChatBackend` (the local
  transformers judge uses it), keyed by an identity of the model (:func:`model_fingerprint`:
  SHA-256 of the model files) plus the messages and every generation parameter;
* :func:`default_cache_dir` — ``$UQROUTE_CACHE_DIR/<kind>/<name>`` or ``resources/cache/<kind>/<name>``;
* :func:`check_generations` — what a cached or fresh list of generations must look like.

Nothing invalid is stored: a backend's generations are checked (:func:`check_generations`) before
they are cached, and a record read back is checked again (its stored request against the current
one, and its generations); a bad record is reported with its key and file and computed again.

The OpenAI-compatible backend (:mod:`.api`) keys its own records by endpoint and request body.
See docs/reliability.md for what is cached, keyed by what.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_path
from .base import FINISH_REASONS, Conversation, Generation, check_generation_args, normalise_messages

__all__ = [
    "CACHE_FORMAT",
    "CachedBackend",
    "ResponseCache",
    "cache_key",
    "check_generations",
    "default_cache_dir",
    "model_fingerprint",
]

log = logging.getLogger(__name__)

#: Bumped whenever the meaning of a cached record changes; old entries then miss.
CACHE_FORMAT = 1


def _is_number(x) -> bool:
    """A real number that is not NaN (``-inf`` is a valid log-probability)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and not math.isnan(x)


def _check_number_list(values, what: str) -> None:
    if values is None:
        return
    if not isinstance(values, list):
        raise ValueError(f"{what} is a {type(values).__name__}, not a list")
    for j, v in enumerate(values):
        if not _is_number(v):
            raise ValueError(f"{what}[{j}] is {v!r}, not a number")


def check_generations(gens, n: int) -> list[Generation]:
    """``gens`` if it is ``n`` well-formed :class:`Generation` objects, else ``ValueError`` saying what is wrong.

    Well-formed: ``text`` a string, ``tokens`` a list of strings, ``token_logprobs`` and
    ``token_entropies`` ``None`` or lists of numbers (no ``None``, no NaN) as long as ``tokens``,
    ``top_logprobs`` ``None`` or one ``{token: number}`` dict per token, ``finish_reason``
    one of :data:`FINISH_REASONS` (``stop``, ``length``, ``content_filter``), ``n_prompt_tokens`` an integer >= 0.
    """
    if not isinstance(gens, (list, tuple)):
        raise ValueError(f"expected a list of {n} generations, got a {type(gens).__name__}")
    if len(gens) != n:
        raise ValueError(f"{len(gens)} generations where n={n} were asked for")
    for i, g in enumerate(gens):
        where = f"generation {i}"
        if not isinstance(g, Generation):
            raise ValueError(f"{where} is a {type(g).__name__}, not a Generation")
        if not isinstance(g.text, str):
            raise ValueError(f"{where}: text is {g.text!r}, not a string")
        if not isinstance(g.tokens, list) or not all(isinstance(t, str) for t in g.tokens):
            raise ValueError(f"{where}: tokens are not a list of strings")
        for name in ("token_logprobs", "token_entropies"):
            values = getattr(g, name)
            _check_number_list(values, f"{where}: {name}")
            if values is not None and len(values) != len(g.tokens):
                raise ValueError(f"{where}: {len(values)} {name} for {len(g.tokens)} tokens")
        if g.top_logprobs is not None:
            if not isinstance(g.top_logprobs, list) or len(g.top_logprobs) != len(g.tokens):
                raise ValueError(f"{where}: top_logprobs is not one dict per token")
            for j, top in enumerate(g.top_logprobs):
                if not isinstance(top, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in top.items()):
                    raise ValueError(f"{where}: top_logprobs[{j}] is not a {{token: log-prob}} dict")
        if g.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"{where}: finish_reason is {g.finish_reason!r}, not one of {', '.join(map(repr, FINISH_REASONS))}"
            )
        if not isinstance(g.n_prompt_tokens, int) or isinstance(g.n_prompt_tokens, bool) or g.n_prompt_tokens < 0:
            raise ValueError(f"{where}: n_prompt_tokens is {g.n_prompt_tokens!r}")
    return list(gens)


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


def model_fingerprint(model_dir: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 over every file of a model directory (relative paths, sizes and contents).

    Identifies a local model for :class:`CachedBackend` keys independently of where the
    directory lives: :func:`uqroute.models.tree_sha256`, memoised under ``memo_dir``
    (default ``$UQROUTE_CACHE``) by each file's path, size, inode and mtime. Hidden files
    (e.g. ``fetch_model``'s completion marker) are left out.
    """
    from ..models import tree_sha256

    return tree_sha256(model_dir, memo_dir=memo_dir)


def _generation_from_dict(d) -> Generation:
    if not isinstance(d, dict):
        raise ValueError(f"a generation is stored as a {type(d).__name__}, not an object")
    fields = {f.name for f in dataclasses.fields(Generation)}
    try:
        return Generation(**{k: v for k, v in d.items() if k in fields})
    except TypeError as err:  # a required field is missing
        raise ValueError(f"a stored generation is incomplete ({err})") from None


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """The tqdm bar of a cached backend's requests: ``initial`` answered from the cache, the rest to come."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="req", leave=False, disable=not enabled, dynamic_ncols=True
    )


class CachedBackend:
    """Put a :class:`ResponseCache` in front of any ChatBackend (e.g. the local transformers one).

    Each conversation is one cache entry keyed by ``identity`` (what determines the
    model's output: e.g. ``{"model_sha256": model_fingerprint(dir), "dtype": "float32"}``),
    the messages and every generation parameter. The uncached conversations of a
    call go to the wrapped backend in ``generate`` calls of ``chunk_size`` conversations
    (large enough to keep its batching), each chunk cached as soon as it is done, so a
    killed run keeps every finished chunk and its rerun generates only the rest.

    ``backend`` may be a ChatBackend or a zero-argument callable returning one; a
    callable is only called on the first cache miss, so a fully cached rerun never
    loads the model.

    Nothing invalid is cached: the wrapped backend's generations are checked
    (:func:`check_generations`: ``n`` per conversation, well-formed) first; the valid ones
    are stored, and an invalid one raises an error naming the conversation. A record read
    back must hold the same identity, messages and parameters and ``n`` valid generations;
    otherwise it is reported (warning with key and file) and computed again.

    Sampling (``temperature > 0``) is cached too, so a rerun returns the same samples;
    note that a backend whose seeds depend on a conversation's position in the batch
    (as the transformers backend's do) can give different samples when only part of
    a batch was cached.

    ``progress`` shows a tqdm bar per call (cached conversations count as done at once); every
    call logs how many conversations came from the cache and how many were generated, and
    ``stats`` keeps the totals (``cache_hits``, ``requests``).
    """

    def __init__(
        self,
        backend,
        cache_dir: str | os.PathLike,
        identity: dict,
        *,
        name: str | None = None,
        progress: bool = True,
        chunk_size: int = 128,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        self._backend = backend
        self.name = name or getattr(backend, "name", None) or "backend"
        self.identity = dict(identity)
        self.cache = ResponseCache(cache_dir)
        self.stats = {"cache_hits": 0, "requests": 0}
        self.progress = progress

    @property
    def backend(self):
        """The wrapped backend (built now if it was given as a factory)."""
        if callable(self._backend) and not hasattr(self._backend, "generate"):
            self._backend = self._backend()
        return self._backend

    def _cached(self, key: str, expected: dict, n: int) -> list[Generation] | None:
        """The valid generations stored under ``key``, or ``None`` (a miss; a bad record is reported)."""
        record = self.cache.get(key)
        if record is None:
            return None
        try:
            for field, value in expected.items():
                if record.get(field) != json.loads(json.dumps(value)):  # as it reads back from JSON
                    raise ValueError(f"its {field} differ from this request's")
            stored = record.get("generations")
            if not isinstance(stored, list):
                raise ValueError("it holds no list of generations")
            return check_generations([_generation_from_dict(g) for g in stored], n)
        except ValueError as err:
            log.warning(
                "%s: cache record %s (key %s) is invalid: %s; it is computed again",
                self.name,
                self.cache.path(key),
                key,
                err,
            )
            return None

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
        params = {
            "max_new_tokens": max_new_tokens,
            "temperature": float(temperature),
            "n": n,
            "seed": seed,
            "top_logprobs": top_logprobs,
        }
        msgs = [normalise_messages(c, i) for i, c in enumerate(conversations)]
        keys = [
            cache_key({"format": CACHE_FORMAT, "identity": self.identity, "messages": m, "params": params})
            for m in msgs
        ]
        found: dict[str, list[Generation]] = {}
        todo: dict[str, list[dict]] = {}
        for key, m in zip(keys, msgs):
            if key in found or key in todo:
                continue
            gens = self._cached(key, {"identity": self.identity, "messages": m, "params": params}, n)
            if gens is not None:
                found[key] = gens
            else:
                todo[key] = m
        hits = len(found)
        self.stats["cache_hits"] += hits
        with progress_bar(hits + len(todo), hits, f"{self.name}: cached + generated", self.progress) as bar:
            if todo:
                log.info("%s: generating for %d conversations (%d cached)", self.name, len(todo), hits)
            items = list(todo.items())
            for start in range(0, len(items), self.chunk_size):
                chunk = items[start : start + self.chunk_size]
                fresh = self.backend.generate(
                    [m for _, m in chunk],
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    n=n,
                    seed=seed,
                    top_logprobs=top_logprobs,
                )
                if not isinstance(fresh, list) or len(fresh) != len(chunk):
                    raise RuntimeError(
                        f"{self.name}: backend returned {len(fresh) if isinstance(fresh, list) else fresh!r} results "
                        f"for {len(chunk)} conversations; they were not cached"
                    )
                bad = []
                for (key, m), gens in zip(chunk, fresh):
                    try:
                        gens = check_generations(gens, n)
                    except ValueError as err:
                        bad.append(f"conversation {keys.index(key)}: {err}")
                        continue
                    self.cache.put(
                        key,
                        {
                            "identity": self.identity,
                            "messages": m,
                            "params": params,
                            "generations": [dataclasses.asdict(g) for g in gens],
                        },
                    )
                    found[key] = gens
                    self.stats["requests"] += 1
                    bar.update(1)
                if bad:
                    raise RuntimeError(
                        f"{self.name}: the backend returned invalid generations, which were not cached: "
                        + "; ".join(bad[:5])
                        + (f" (and {len(bad) - 5} more)" if len(bad) > 5 else "")
                    )
        log.info("%s: %d conversations: %d from the cache, %d generated", self.name, hits + len(todo), hits, len(todo))
        return [found[k] for k in keys]

    def close(self) -> None:
        if hasattr(self._backend, "generate"):
            self._backend.close()
