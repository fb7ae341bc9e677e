#!/usr/bin/env python
"""Peak resident memory of the demo's local inference jobs, against the `mem_mb` they declare.

Each job is `uqroute.inference.run_inference` exactly as rule `infer` (SLMs) or `infer_llm` (LLMs)
calls it, with the demo config's `inference` section and seed, on one dataset's `data` artifact
built from the shipped slices with the demo's `data` limits. Each runs in its own child process;
the peak is that child's `ru_maxrss` (`os.wait4`), so nothing of this process is counted. The
declared figure is the workflow's formula (`workflow/rules/common.smk`, `model_mem_mb`):
`resources.mem_mb_base + resources.mem_mb_per_b × params_b`, first attempt.

Run from the repository root, one heavy job at a time::

    flock /tmp/uqroute-heavy.lock .venv/bin/python benchmarks/mem_inference.py            # both demo models
    flock /tmp/uqroute-heavy.lock .venv/bin/python benchmarks/mem_inference.py --jobs smollm2-135m:slm
    ... --dataset commonsenseqa --no-pack        # another dataset; plain nn.Linear (inference.pack_weights false)
    ... --load-only                              # the model load and prepacking only

The models must be fetched (`snakemake resources/models/<name>`, or the demo run once): their
converted directories are looked up in the uqroute cache (`uqroute.models.cached_model_dir`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHILD = r"""
import json, sys
a = json.loads(sys.argv[1])
if a["load_only"]:
    from uqroute.inference.transformers_backend import TransformersBackend
    TransformersBackend(a["model_dir"], progress=False, dtype=a["cfg"]["dtype"], pack_weights=a["cfg"]["pack_weights"])
    sys.exit(0)
from uqroute.inference import run_inference
run_inference(model=a["model"], spec=a["spec"], model_dir=a["model_dir"], data_path=a["data"], out_path=a["out"],
              hidden_path=a["hidden"], role=a["role"], cfg=a["cfg"], seed=a["seed"], statistics=a["statistics"])
"""


def declared_mem_mb(config: dict, model: str) -> int:
    """`model_mem_mb(model, 1)` of workflow/rules/common.smk for a local model."""
    from uqroute.settings import defaults

    res = {**defaults("resources"), **(config.get("resources") or {})}
    return math.ceil(res["mem_mb_base"] + res["mem_mb_per_b"] * float(config["models"][model].get("params_b", 0)))


def main() -> None:
    import yaml

    from uqroute.data import build_dataset
    from uqroute.models import cached_model_dir
    from uqroute.settings import defaults

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--dataset", default="svamp", help="the demo's longest replies (math budget)")
    p.add_argument("--jobs", nargs="*", help="model:role pairs (default: every demo SLM as slm, every LLM as llm)")
    p.add_argument("--no-pack", action="store_true", help="inference.pack_weights false")
    p.add_argument(
        "--load-only", action="store_true", help="only load the model (and prepack its weights), as the job does first"
    )
    args = p.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())
    jobs = (
        [tuple(j.split(":")) for j in args.jobs]
        if args.jobs
        else ([(m, "slm") for m in config["slms"]] + [(m, "llm") for m in config["llms"]])
    )
    cfg = {**defaults("inference"), **config.get("inference", {})}
    if args.no_pack:
        cfg["pack_weights"] = False
    data_cfg = {**config.get("data", {})}
    data_cfg["slices_dir"] = str(ROOT / (data_cfg.get("slices_dir") or "data/slices"))
    print(
        f"dataset {args.dataset}; data {data_cfg.get('eval_limit')} eval + {data_cfg.get('train_limit')} train rows; "
        f"pack_weights {cfg.get('pack_weights', True)}{'; loading the model only' if args.load_only else ''}",
        flush=True,
    )
    print(f"{'model':<22}{'role':<6}{'peak RSS MB':>12}{'declared mem_mb':>17}{'peak/declared':>15}{'seconds':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.parquet"
        build_dataset(args.dataset, data, seed=config.get("seed", 0), **data_cfg)
        for model, role in jobs:
            spec = config["models"][model]
            a = {
                "model": model,
                "spec": spec,
                "model_dir": str(cached_model_dir(model, spec)),
                "data": str(data),
                "out": str(Path(tmp) / f"{model}.parquet"),
                "hidden": str(Path(tmp) / f"{model}.hidden") if role == "slm" else None,
                "role": role,
                "cfg": cfg,
                "seed": config.get("seed", 0),
                "statistics": None,
                "load_only": args.load_only,
            }
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(a)],
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            err = proc.stderr.read().decode()
            if status:
                sys.exit(f"{model} ({role}) failed:\n{err[-3000:]}")
            peak = usage.ru_maxrss / 1024  # kB on Linux
            declared = declared_mem_mb(config, model)
            print(
                f"{model:<22}{role:<6}{peak:>12.0f}{declared:>17}{peak / declared:>15.2f}{time.perf_counter() - t0:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
