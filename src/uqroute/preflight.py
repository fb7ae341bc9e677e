"""The start-up checks of a config: every mistake the schema cannot see, found before any job starts.

The top layer of the library: it asks each stage for the problems in its part of a validated config
(each stage's ``config_problems(config)``, reached through its package's public face) and reports
them all at once, each naming its key, under the config file's name:

* ``uqroute.data`` — ``datasets`` names, ``data.mirror_dir``;
* ``uqroute.models`` — models used but not defined, API models as SLMs, model sources
  (``local_dir``, ``gguf.path``, ``gguf_metadata``, ``backend``), ``inference.hidden_layer``
  against an SLM's ``num_hidden_layers`` where its ``config.json`` is on disk;
* ``uqroute.uq`` — ``uq.methods`` names, probe methods with fewer than two datasets;
* ``uqroute.routing`` — the ``routing`` section (proxy methods, shifts, tables, …);
* ``uqroute.router`` — the ``router`` section (methods, SLMs, LLM, operating point, mode, …).

The Snakefile calls :func:`check` right after validating the config; ``python -m uqroute.preflight
my.yaml`` runs the same checks without Snakemake. Neither imports scikit-learn, torch or
transformers (tests/test_layers.py checks it), so a dry run starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .settings import ConfigCheckError, ConfigError, load_yaml, validate

__all__ = ["problems", "check", "main"]


def problems(config: Mapping, *, workdir: str | os.PathLike = ".") -> list[str]:
    """Every problem the stages find in a validated config (defaults filled), each naming its key,
    in the order data, models, UQ methods, routing, router. ``workdir`` is where relative paths in
    the config start (Snakemake's working directory)."""
    from . import data, models, router, routing, uq

    found: list[str] = []
    found += data.config_problems(config, workdir=workdir)
    found += models.config_problems(config, workdir=workdir)
    found += uq.config_problems(config)
    found += routing.config_problems(config)
    found += router.config_problems(config)
    return found


def check(config: Mapping, *, workdir: str | os.PathLike = ".", where: str = "config") -> None:
    """Raise :class:`uqroute.settings.ConfigCheckError` listing every problem of :func:`problems`;
    its message begins with ``where``, the config file's name."""
    found = problems(config, workdir=workdir)
    if found:
        raise ConfigCheckError(found, where=where)


def main(argv: list[str] | None = None) -> int:
    """``python -m uqroute.preflight CONFIG.yaml [--workdir DIR]``: check a config file without Snakemake.

    Loads it (a YAML error names the file and line, which ``snakemake --configfile`` does not),
    validates it against the schema (the error names the key) and runs :func:`check` with
    relative paths resolved from ``--workdir`` (default: the current directory, as for Snakemake).
    Prints what it found; exit status 0 when the config is usable, 1 otherwise.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m uqroute.preflight", description=main.__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    try:
        loaded = load_yaml(args.config)
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {args.config}: the top level must be a mapping of keys, got {type(loaded).__name__}"
            )
        config = validate(loaded, where=str(args.config))
        check(config, workdir=args.workdir, where=str(args.config))
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{args.config}: valid; {len(config['datasets'])} dataset(s), SLMs {config['slms']}, LLMs {config['llms']}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests/test_configs.py
    raise SystemExit(main())
