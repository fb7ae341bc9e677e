"""The start-up checks of a config's datasets and data source (called by :mod:`uqroute.preflight`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .registry import DATASETS

__all__ = ["config_problems"]


def config_problems(config: Mapping, *, workdir: str | os.PathLike = ".") -> list[str]:
    """The mistakes in a validated config's ``datasets`` and ``data`` sections, each naming its key:

    * ``datasets``: a name that is not one of the 15 datasets;
    * ``data.mirror_dir``: unset or not a directory with ``data.source: mirror`` (relative paths
      start at ``workdir``, Snakemake's working directory).
    """
    workdir = Path(workdir)
    problems: list[str] = []
    unknown = [d for d in config.get("datasets") or [] if d not in DATASETS]
    if unknown:
        problems.append(f"datasets: unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    data = config.get("data") or {}
    if data.get("source") == "mirror":
        value = data.get("mirror_dir")
        if not value:
            problems.append("data.mirror_dir: data.source is 'mirror' but data.mirror_dir is not set")
        elif not (workdir / os.path.expanduser(str(value))).is_dir():
            problems.append(
                f"data.mirror_dir: {value!r} is not a directory (relative paths start at {workdir.resolve()})"
            )
    return problems
