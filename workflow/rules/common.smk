# Input functions and shared helpers. Paths follow src/uqroute/schema.py.
import json
import os
import re

from uqroute import revisions
from uqroute.data import get_spec
from uqroute.models import weights_identity
from uqroute.schema import path_of
from uqroute.uq import probe_methods

# The config is validated (schema defaults filled in) and checked by uqroute.preflight.check
# in the Snakefile before this file is read, so every key below exists and every name is known.

# revisions_lock: pin every hub model and hub dataset to the commit an earlier run recorded
# (uqroute.revisions; the download jobs check the rest against it).
REVISIONS_LOCK = revisions.read_lock(config["revisions_lock"]) if config.get("revisions_lock") else None
if REVISIONS_LOCK is not None:
    revisions.apply_lock(config, REVISIONS_LOCK, where=f"revisions lock {config['revisions_lock']}")

DATASETS = list(config["datasets"])
SLMS = list(config["slms"])
LLMS = list(config["llms"])
MODELS = config["models"]


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    slm="|".join(map(re.escape, SLMS)),
    llm="|".join(map(re.escape, LLMS)),
    model="|".join(map(re.escape, MODELS)),


def slm_statistics():
    """The SLM statistics the configured UQ methods need (uqroute.inference.statistics): only those are computed."""
    from uqroute.inference import statistics_for

    return statistics_for(cfg("uq")["methods"])


def is_api(model):
    return "api" in MODELS[model]


def model_dir(model):
    """The fetched local model directory, or nothing for API models."""
    return [] if is_api(model) else [path_of("model_dir").format(model=model)]


def local_models():
    """Every model the run uses (SLMs, LLMs, the judge) that has local files (not an API model)."""
    judge = cfg("judge").get("model")
    return [m for m in dict.fromkeys(SLMS + LLMS + ([judge] if judge else [])) if not is_api(m)]


def locked_model(model):
    """The model's entry in the revisions lock (config key revisions_lock), or None."""
    return (REVISIONS_LOCK or {}).get("models", {}).get(model)


def locked_dataset(dataset):
    """The dataset's entry in the revisions lock (config key revisions_lock), or None."""
    return (REVISIONS_LOCK or {}).get("datasets", {}).get(dataset)


def cfg(section):
    """A config section with the schema's defaults filled in (validate() sets them)."""
    return config[section]


def fetch_spec(model):
    """The model's config entry as `fetch_model` gets it. A `local_dir` source also carries
    `local_dir_identity`, a content hash of its files, so that replacing them reruns fetch_model
    (and every job downstream). Hashes are memoised by path, size, inode and mtime."""
    spec = MODELS[model]
    if "local_dir" not in spec:
        return spec
    return {**spec, "local_dir_identity": weights_identity(spec, name=model)}


def download_sources(wildcards):
    """The slice/mirror files a dataset is read from, so that editing them reruns `download`.

    A file that does not exist is left out: the library then raises its own error naming it.
    """
    data = cfg("data")
    source = data["source"]
    if source == "hub":
        return []
    root = data["slices_dir"] if source == "slices" else data["mirror_dir"]
    spec = get_spec(wildcards.dataset)
    files = [os.path.join(root, spec.split_file(s)) for s in (spec.eval_split, spec.train_split) if s]
    return [f for f in files if os.path.exists(f)]


def uq_probes(wildcards):
    """The probe scores of rule `uq`, only when uq.methods selects a probe method (no probe is trained otherwise)."""
    if probe_methods(cfg("uq")["methods"]):
        return path_of("probes").format(slm=wildcards.slm, dataset=wildcards.dataset)
    return []


def all_targets():
    targets = expand(path_of("data"), dataset=DATASETS)
    targets += expand(path_of("generations"), model=SLMS + LLMS, dataset=DATASETS)
    targets += expand(path_of("correctness"), model=SLMS + LLMS, dataset=DATASETS)
    targets += expand(path_of("uq"), slm=SLMS, dataset=DATASETS)
    targets += routing_targets()
    targets.append(path_of("revisions_lock"))
    targets += router_targets()
    return targets


# ---------------------------------------------------------------- cluster resources
# Resource requests of the model-bound rules, from the config section `resources` and
# models.<name>.params_b (see docs/slurm.md). profiles/slurm turns them into sbatch flags
# (gpu + gpu_model -> --gpus=<model>:<n>, mem_mb -> --mem, runtime -> -t). A local
# `--cores N` run ignores gpu, gpu_mem_mb and mem_mb unless they are limited with
# --resources (profiles/local limits gpu to 1), so CPU-only runs are never blocked.
# Requests grow with the attempt number, so a retried job (profile `retries`) that ran out
# of time or host memory asks for more.
import math


def model_params_b(model):
    """Billions of parameters of `model` (models.<name>.params_b); 0 when not given (base requests only)."""
    return float(MODELS[model].get("params_b", 0)) if model else 0.0


def runs_locally(model):
    """True when a job runs `model` itself (a fetched model), False for API models and for no model (None)."""
    return bool(model) and not is_api(model)


def model_engine(model):
    """The engine of a local model: models.<name>.backend, else inference.backend (`transformers` or `vllm`)."""
    return MODELS[model].get("backend") or cfg("inference")["backend"]


def model_env(model):
    """The conda env of a job that runs `model`: envs/vllm.yaml on the vLLM engine, else envs/torch.yaml."""
    return "../../envs/vllm.yaml" if runs_locally(model) and model_engine(model) == "vllm" else "../../envs/torch.yaml"


def model_gpus(model):
    """GPUs for a job that runs `model`: resources.gpus_per_job for local models (on the vLLM engine at least
    inference.vllm.tensor_parallel_size); 0 for API models or None."""
    if not runs_locally(model):
        return 0
    n = int(cfg("resources")["gpus_per_job"])
    if model_engine(model) == "vllm":
        n = max(n, int(cfg("inference")["vllm"]["tensor_parallel_size"]))
    return n


def model_gpu_model(model):
    """GPU type name (resources.gpu_model), or "" (= any type) when unset or when no GPU is requested."""
    return (cfg("resources")["gpu_model"] or "") if model_gpus(model) else ""


def model_gpu_mem_mb(model):
    """GPU memory the model needs in all: resources.gpu_mem_per_b_mb × params_b (0 without GPUs)."""
    if not model_gpus(model):
        return 0
    return math.ceil(cfg("resources")["gpu_mem_per_b_mb"] * model_params_b(model))


def model_mem_mb(model, attempt=1):
    """Host memory in MB: mem_mb_base + mem_mb_per_b × params_b for local models, else mem_mb_base; × attempt."""
    res = cfg("resources")
    per_b = res["mem_mb_per_b"] * model_params_b(model) if runs_locally(model) else 0
    return math.ceil((res["mem_mb_base"] + per_b) * attempt)


def model_runtime_min(model, attempt=1):
    """Wall time in minutes: (runtime_min_base + runtime_min_per_b × params_b) × max_new_tokens_scale × attempt.

    Only the base time counts for API models (served elsewhere) and for jobs without a model (None).
    """
    res = cfg("resources")
    per_b = res["runtime_min_per_b"] * model_params_b(model) if runs_locally(model) else 0
    scale = float(MODELS[model]["max_new_tokens_scale"]) if model else 1.0
    return math.ceil((res["runtime_min_base"] + per_b) * scale * attempt)


# Priorities only order jobs that wait for a free core (on a cluster: the submission order).
# Longest first: a model conversion gates every inference job of its model; an LLM job is a larger
# model's; within a role, a larger answer budget means longer replies (the demo's 1.5B on SVAMP
# takes 4 min, on the multiple-choice datasets 1-2; README, Demo timing).
FETCH_PRIORITY = 2  # above every inference job (those lie in [0, 2))


def inference_priority(model, dataset, role):
    """Priority of an inference job: LLM jobs above SLM jobs whatever the budgets, then by the answer budget.

    The role is the integer part (LLM 1, SLM 0) and the budget b the fraction b / (b + 1), which grows
    with b and stays below 1, so no budget (scaled by a reasoning model's max_new_tokens_scale) can lift
    an SLM job above an LLM job.
    """
    from uqroute.inference import budgets

    spec = get_spec(dataset)
    answer = budgets(cfg("inference"), MODELS[model], spec.task_type, spec.domain)["answer"]
    return (1 if role == "llm" else 0) + answer / (answer + 1)


def judge_model_name():
    """The judge's model name (judge.model), or None when correctness is rule-based only."""
    return cfg("judge").get("model")  # optional: no judge model = rule checks only


def judge_model_dir():
    """The fetched judge model directory (input of rule judge), or nothing for API judges / rules only."""
    model = judge_model_name()
    return model_dir(model) if model else []
