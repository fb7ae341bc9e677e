#!/usr/bin/env python
"""Rule-vs-judge agreement on the TruthfulQA slice: the local judge's token choice vs its text fallback.

In one run, on the TruthfulQA slice shipped in data/slices (validation, 40 rows):

1. an answering model (default SmolLM2-135M-Instruct, the demo SLM) answers every question
   greedily (``run_inference``, role ``llm``: greedy answers only);
2. the local judge (default Qwen2.5-Coder-0.5B-Instruct) labels each answer twice, through
   ``run_judge``: by its **token choice** (p(Yes) vs p(No) of its next token, the default for a
   local judge) and by its **text fallback** (its free-text reply read by ``parse_verdict``);
3. prints, for each, the rows where rule and judge both gave a label, their agreement and Cohen's
   κ (``quality``/``agreement`` artifacts), the unparsable verdicts, and for the token choice how
   many verdicts were unsure (p(correct) in [0.4, 0.6]) and the distribution of p(correct).

Models are fetched with ``fetch_model`` (cached conversions under ``$UQROUTE_CACHE``). Run from the
repository root (a heavy command: it loads two real models)::

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_judge_agreement.py
    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_judge_agreement.py --limit 10   # a quick check
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answerer", default="smollm2-135m", help="model (config/config.yaml) that answers")
    ap.add_argument("--judge", default="qwen2.5-coder-0.5b", help="local judge model (config/config.yaml)")
    ap.add_argument("--limit", type=int, default=None, help="evaluation rows (default: the whole slice)")
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args()

    import uqroute.judge.run as judge_run
    from uqroute.data import build_dataset
    from uqroute.judge import run_judge
    from uqroute.models import fetch_model

    models = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]
    work = Path(args.work or tempfile.mkdtemp(prefix="judge-agreement-"))
    work.mkdir(parents=True, exist_ok=True)
    dirs = {m: fetch_model(m, models[m], work / "models" / m) for m in (args.answerer, args.judge)}
    data = work / "truthfulqa.parquet"
    build_dataset(
        "truthfulqa",
        data,
        seed=0,
        source="slices",
        slices_dir=str(REPO / "data" / "slices"),
        eval_limit=args.limit,
        train_limit=0,
    )
    gens = work / f"{args.answerer}.truthfulqa.gen.parquet"
    if not gens.exists():
        from uqroute.inference import run_inference

        t0 = time.perf_counter()
        run_inference(
            args.answerer, models[args.answerer], dirs[args.answerer], str(data), str(gens), None, "llm", {}, 0
        )
        print(f"answers by {args.answerer}: {time.perf_counter() - t0:.0f} s")

    cfg = {"model": args.judge, "scope": "text"}
    spec = models[args.judge]
    results = {}
    for method in ("token_choice", "text"):
        out = work / f"{method}.correct.parquet"
        backend_of = judge_run.judge_backend
        if method == "text":  # the same judge, its replies read as text (the fallback)
            judge_run.judge_backend = lambda *a, _of=backend_of, **k: (
                _of(*a, **k).text
            )  # a CachedBackend: no token choice
        try:
            t0 = time.perf_counter()
            table = run_judge(
                args.answerer,
                "truthfulqa",
                str(data),
                str(gens),
                out,
                work / f"{method}.agree.parquet",
                cfg,
                spec,
                dirs[args.judge],
                {},
                quality_path=work / f"{method}.quality.parquet",
                cache_dir=work / "judge-cache",
            )
            seconds = time.perf_counter() - t0
        finally:
            judge_run.judge_backend = backend_of
        agree = pl.read_parquet(work / f"{method}.agree.parquet").row(0, named=True)
        quality = pl.read_parquet(work / f"{method}.quality.parquet").row(0, named=True)
        results[method] = (table, agree, quality, seconds)

    n = results["token_choice"][0].height
    print(f"\nTruthfulQA slice, {n} rows; answers by {args.answerer}, judge {args.judge}")
    print(f"rule says correct on {results['token_choice'][0]['rule_correct'].sum()} of {n}")
    print(
        f"{'method':<13} {'n_both':>6} {'agreement':>9} {'kappa':>7} {'unparsable':>10} {'fallbacks':>9} "
        f"{'unsure':>6} {'judge yes':>9} {'seconds':>7}"
    )
    for method, (table, agree, q, seconds) in results.items():
        kappa = "n/a" if agree["cohen_kappa"] is None else f"{agree['cohen_kappa']:.3f}"
        ag = "n/a" if agree["agreement"] is None else f"{agree['agreement']:.3f}"
        unsure = "-" if q["n_judge_unsure"] is None else str(q["n_judge_unsure"])
        print(
            f"{method:<13} {agree['n_both']:>6} {ag:>9} {kappa:>7} {q['n_unparsable_verdicts']:>10} "
            f"{q['n_verdict_fallbacks']:>9} {unsure:>6} {table['judge_correct'].sum():>9} {seconds:>7.1f}"
        )
    p = results["token_choice"][0]["judge_p_correct"].drop_nulls()
    if p.len():
        print(
            f"p(correct): min {p.min():.3f}, median {p.median():.3f}, max {p.max():.3f}; "
            f"quartiles {p.quantile(0.25):.3f} / {p.quantile(0.75):.3f}"
        )
    print(f"(artifacts under {work})")


if __name__ == "__main__":
    main()
