# Input functions and shared helpers. Paths follow src/uqroute/schema.py.
import json
import re

DATASETS = list(config["datasets"])
SLMS = list(config["slms"])
LLMS = list(config["llms"])
MODELS = config["models"]

for _m in SLMS + LLMS + ([config["judge"]["model"]] if config.get("judge", {}).get("model") else []):
    if _m not in MODELS:
        raise ValueError(f"config: model {_m!r} is used in slms/llms/judge but not defined under `models` (defined: {sorted(MODELS)})")


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),
    slm="|".join(map(re.escape, SLMS)),
    llm="|".join(map(re.escape, LLMS)),
    model="|".join(map(re.escape, MODELS)),


def is_api(model):
    return "api" in MODELS[model]


def model_dir(model):
    """The fetched local model directory, or nothing for API models."""
    return [] if is_api(model) else [f"resources/models/{model}"]


def cfg(section):
    """A config section with the schema's defaults filled in (validate() sets them)."""
    return config.get(section, {})


def all_targets():
    targets = expand("results/data/{dataset}.parquet", dataset=DATASETS)
    targets += expand("results/generations/{model}/{dataset}.parquet", model=SLMS + LLMS, dataset=DATASETS)
    targets += expand("results/correctness/{model}/{dataset}.parquet", model=SLMS + LLMS, dataset=DATASETS)
    targets += expand("results/uq/{slm}/{dataset}.parquet", slm=SLMS, dataset=DATASETS)
    targets += routing_targets()
    return targets
