"""Synthetic upstream artifacts (data, uq, correctness) for tests, benchmarks and demos.

Writes schema-valid tables through :mod:`uqroute.io` with the pipeline's path layout under
``root``. Confidences follow the paper's observation (§4.4, Insight ①) that their
distribution depends on the SLM and the method much more than on the dataset:
c = sigmoid(offset[slm, method] + strength[method]·(2s − 1) + noise), where s is the label of
the answer the method scores (``correct``, or ``verbal_1s_correct`` for verbalization-1s,
drawn independently of ``correct`` so that a test can tell the two apart). Every file's rows
are in a different random order, so only a join by id reads them correctly.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import polars as pl

from .. import io
from ..schema import ARTIFACTS
from .config import proxy_probe_jobs

__all__ = ["write_synthetic", "write_synthetic_proxy_probes", "synthetic_paths", "DOMAINS"]

DOMAINS = {
    "gsm8k": "math",
    "aqua": "math",
    "multiarith": "math",
    "svamp": "math",
    "math500": "math",
    "boolq": "commonsense",
    "commonsenseqa": "commonsense",
    "hellaswag": "commonsense",
    "openbookqa": "commonsense",
    "piqa": "commonsense",
    "socialiqa": "commonsense",
    "truthfulqa": "commonsense",
    "winogrande": "commonsense",
    "coqa": "conversational",
    "mmlu": "problem_solving",
}


def _seed(*parts) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


def synthetic_paths(root, slms, llms, datasets):
    """(uq_paths, correctness_paths, data_paths) in expand() order, as the `routing` rule passes them."""
    root = Path(root)
    uq = [str(root / ARTIFACTS["uq"].path.format(slm=s, dataset=d)) for s in slms for d in datasets]
    corr = [
        str(root / ARTIFACTS["correctness"].path.format(model=m, dataset=d))
        for m in list(slms) + list(llms)
        for d in datasets
    ]
    data = [str(root / ARTIFACTS["data"].path.format(dataset=d)) for d in datasets]
    return uq, corr, data


def _data_frame(dataset: str, ids: list[str], domain: str) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "id": ids,
            "dataset": [dataset] * n,
            "domain": [domain] * n,
            "task_type": ["MCQ"] * n,
            "split": ["test"] * n,
            "role": ["eval"] * n,
            "question": [f"q{i}" for i in range(n)],
            "context": [None] * n,
            "choices": [[{"label": "A", "text": "a"}, {"label": "B", "text": "b"}]] * n,
            "answer": ["A"] * n,
            "references": [["A"]] * n,
            "prompt": [f"q{i}" for i in range(n)],
        },
        schema=ARTIFACTS["data"].polars_schema(),
    )


def _shuffled(df: pl.DataFrame, *seed_parts) -> pl.DataFrame:
    """The rows in a random (seeded) order: readers must join by id, never by position."""
    return df[np.random.default_rng(_seed("rows", *seed_parts)).permutation(df.height)]


def write_synthetic(
    root,
    *,
    slms,
    llms,
    datasets,
    methods,
    n: int = 200,
    seed: int = 0,
    domains: dict | None = None,
    null_confidence: float = 0.0,
    domain_shift: dict | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Write data, uq and correctness artifacts under ``root``; return the rule's input path lists.

    ``null_confidence`` is the fraction of null confidences in methods whose name starts with
    ``verbal`` (as unparsable verbalized confidences). ``domain_shift`` maps a domain to a value
    added to the logit of every confidence of its datasets (a confidence distribution shift
    between domains, as out-of-domain proxy data meets on real data).
    """
    from ..uq import METHODS

    domains = {**DOMAINS, **(domains or {})}
    uq_paths, corr_paths, data_paths = synthetic_paths(root, slms, llms, datasets)
    strength = {m: np.random.default_rng(_seed(seed, m)).uniform(0.0, 2.0) for m in methods}
    for d, path in zip(datasets, data_paths):
        ids = [f"{d}/test/{i}" for i in range(n)]
        io.write_parquet(_shuffled(_data_frame(d, ids, domains.get(d, "commonsense")), seed, "data", d), path, "data")
    labels = {}
    for model in list(slms) + list(llms):
        for d in datasets:
            rng = np.random.default_rng(_seed(seed, model, d))
            acc = rng.uniform(0.3, 0.7) if model in slms else rng.uniform(0.6, 0.95)
            correct = rng.random(n) < acc
            verbal = (rng.random(n) < rng.uniform(0.3, 0.7)) if model in slms else None  # its own answer, its own label
            labels[(model, d)] = {"greedy": correct, "verbal_1s": verbal}
            df = pl.DataFrame(
                {
                    "id": [f"{d}/test/{i}" for i in range(n)],
                    "correct": correct,
                    "label_source": ["rule"] * n,
                    "rule_correct": correct,
                    "judge_correct": [None] * n,
                    "judge_verdict": [None] * n,
                    "judge_raw": [None] * n,
                    "judge_method": [None] * n,
                    "judge_p_correct": [None] * n,
                    "verbal_1s_correct": verbal if verbal is not None else [None] * n,
                },
                schema=ARTIFACTS["correctness"].polars_schema(),
            )
            io.write_parquet(
                _shuffled(df, seed, model, d),
                Path(root) / ARTIFACTS["correctness"].path.format(model=model, dataset=d),
                "correctness",
            )
    for slm in slms:
        for d in datasets:
            cols = {"id": [f"{d}/test/{i}" for i in range(n)]}
            for m in methods:
                s = labels[(slm, d)][METHODS[m].answer if m in METHODS else "greedy"]
                rng = np.random.default_rng(_seed(seed, slm, d, m))
                offset = np.random.default_rng(_seed(seed, slm, m)).normal(0, 1)
                z = (
                    offset
                    + strength[m] * (2 * s - 1)
                    + rng.normal(0, 1, n)
                    + (domain_shift or {}).get(domains.get(d, "commonsense"), 0.0)
                )
                c = 1 / (1 + np.exp(-z))
                if m.startswith("verbal"):
                    c = np.round(c, 1)  # verbalized confidences are coarse: many ties
                    c[rng.random(n) < null_confidence] = np.nan
                cols[m] = pl.Series(c).fill_nan(None)
            io.write_parquet(
                _shuffled(pl.DataFrame(cols), seed, "uq", slm, d),
                Path(root) / ARTIFACTS["uq"].path.format(slm=slm, dataset=d),
                "uq",
            )
    return uq_paths, corr_paths, data_paths


def write_synthetic_proxy_probes(root, *, slms, pairs, datasets, n: int = 200, seed: int = 0) -> list[str]:
    """Write the ``proxy_probe`` artifacts of ``pairs`` per SLM, one per owner dataset as rule ``proxy_probe``
    groups them (:func:`uqroute.routing.proxy_probe_jobs` over the run's ``datasets``): random leak-free
    ``ood_probe`` scores for the ``n`` eval ids of both datasets of each pair, as :func:`write_synthetic`
    names them; return their paths."""
    paths = []
    for slm in slms:
        for owner, owned in proxy_probe_jobs(pairs, datasets).items():
            frames = []
            for a, b in owned:
                rng = np.random.default_rng(_seed(seed, "proxy_probe", slm, a, b))
                parts = [
                    pl.DataFrame(
                        {
                            "dataset": [d] * n,
                            "other": [o] * n,
                            "id": [f"{d}/test/{i}" for i in range(n)],
                            "ood_probe": rng.random(n),
                        },
                        schema=ARTIFACTS["proxy_probe"].polars_schema(),
                    )
                    for d, o in ((a, b), (b, a))
                ]
                frames.append(_shuffled(pl.concat(parts), seed, "proxy_probe", slm, a, b))
            path = Path(root) / ARTIFACTS["proxy_probe"].path.format(slm=slm, dataset=owner)
            io.write_parquet(pl.concat(frames), path, "proxy_probe")
            paths.append(str(path))
    return paths
