"""Rule `judge`: whether each response is correct, by rule checks and an LLM judge.

Paper (Chuang et al., arXiv:2502.04428, §3.1): multiple-choice, true/false and
numeric answers are checked by rules; "for free-form question answering, we use
GPT-4.1 mini to evaluate whether a response is essentially equivalent to the
ground truth answer" (LLM-as-a-judge, Zheng et al., 2023).

Per row of the generations file (every row: ``eval`` rows are scored and routed,
``train`` rows train the in-domain probe):

1. ``rule_correct`` = :func:`uqroute.parsing.is_correct` on the generations file's
   ``parsed_answer`` (not re-parsed), the gold ``answer`` and ``references``, in the
   dataset's ``answer_format``; for ``text`` (CoQA, TruthfulQA) that is SQuAD exact
   match or token F1 ≥ ``judge.f1_threshold`` against the references.
2. The LLM judge runs on every row whose answer format is ``text`` and on every
   row the rule could not decide (``rule_correct`` null), when a judge model is
   configured. All judge prompts go to the backend in one ``generate`` call at
   temperature 0. ``judge_raw`` is the reply, ``judge_verdict`` its parse
   (:func:`~uqroute.judge.verdict.parse_verdict`), ``judge_correct`` the verdict as
   a bool (null when unparsable).
3. ``correct`` = ``judge_correct`` with ``label_source = "judge"`` where the judge
   gave a parsable verdict; otherwise ``correct`` = ``rule_correct`` with
   ``label_source = "rule"`` (this includes rows whose judge verdict was
   ``unparsable``: the verdict is recorded, never guessed, and the rule label is
   used). ``correct`` is null only when neither decided.

Judge calls are cached on disk (``uqroute.inference.api``): an API judge by its
request body, a local judge by a fingerprint of its model files + messages +
generation parameters, so a rerun never recomputes (or pays for) a verdict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ..io import write_parquet
from ..parsing import InvalidGoldError, is_correct, strip_think
from .agreement import rule_judge_agreement
from .prompt import judge_messages
from .verdict import parse_verdict, verdict_to_bool

__all__ = ["run_judge", "rule_labels", "final_labels", "judge_backend", "JudgeInputError"]

log = logging.getLogger(__name__)

DATA_COLUMNS = ("id", "question", "answer", "references")
GENERATION_COLUMNS = ("id", "response", "parsed_answer")


class JudgeInputError(ValueError):
    """The data or generations file of the judge stage is not usable (names the file, row or column)."""



def _read(path, columns: tuple[str, ...], what: str) -> pl.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"judge: {what} file {path} does not exist")
    df = pl.read_parquet(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise JudgeInputError(f"judge: {what} file {path} lacks columns {missing} (has {df.columns})")
    return df


def _joined(data_path, generations_path) -> pl.DataFrame:
    """The generations rows (in their order) with the data columns the checks need."""
    data = _read(data_path, DATA_COLUMNS + ("role",), "data")
    gens = _read(generations_path, GENERATION_COLUMNS, "generations")
    for df, path in ((data, data_path), (gens, generations_path)):
        dup = df.filter(pl.col("id").is_duplicated())
        if dup.height:
            raise JudgeInputError(f"judge: {path} has duplicate id {dup['id'][0]!r}")
    extra = gens.join(data, on="id", how="anti")
    if extra.height:
        raise JudgeInputError(
            f"judge: {generations_path} has id {extra['id'][0]!r} (and {extra.height - 1} more) not in {data_path}; "
            "rerun rule infer for this dataset"
        )
    # SLM generations cover every row (training rows feed the probes); LLM generations cover the
    # evaluation rows only. Either way every evaluation query must have been answered.
    missing = data.filter(pl.col("role") == "eval").join(gens, on="id", how="anti")
    if missing.height:
        raise JudgeInputError(
            f"judge: {generations_path} lacks evaluation id {missing['id'][0]!r} (and {missing.height - 1} more) of {data_path}; "
            "rerun rule infer for this dataset"
        )
    return gens.select(GENERATION_COLUMNS).join(data.select(DATA_COLUMNS), on="id", how="left", maintain_order="left")


def rule_labels(df: pl.DataFrame, answer_format: str, f1_threshold: float, *, dataset: str, path="") -> list[bool | None]:
    """``rule_correct`` for each row of ``df`` (columns ``id``, ``parsed_answer``, ``answer``, ``references``)."""
    out = []
    for row in df.select("id", "parsed_answer", "answer", "references").iter_rows(named=True):
        try:
            out.append(is_correct(row["parsed_answer"], row["answer"], answer_format, row["references"] or [], f1_threshold))
        except InvalidGoldError as err:
            raise JudgeInputError(f"judge: dataset {dataset!r}, {path} id {row['id']!r}: {err}") from None
    return out


def judge_backend(judge_cfg: dict, judge_spec: dict, judge_model_dir, inference_cfg: dict | None, cache_dir=None):
    """The judge's ChatBackend, behind the on-disk cache.

    API judges (``api`` block) are :class:`~uqroute.inference.api.OpenAIChatBackend`,
    which caches every request itself (default ``resources/cache/api/<served model>``).
    Local judges are loaded by :func:`uqroute.inference.load_backend` only on a cache
    miss and wrapped in :class:`~uqroute.inference.api.CachedBackend` keyed by the
    model files' SHA-256, the dtype setting and the device (default cache
    ``resources/cache/judge/<judge model>``; ``$UQROUTE_CACHE_DIR`` replaces ``resources/cache``).
    """
    from ..inference import load_backend
    from ..inference.api import CachedBackend, default_cache_dir, model_fingerprint

    name = judge_cfg.get("model") or "judge"
    cfg = inference_cfg or {}
    if "api" in judge_spec:
        return load_backend(judge_spec, None, cfg, cache_dir=cache_dir, name=name)
    if judge_model_dir is None:
        raise JudgeInputError(f"judge model {name!r} is local but no model directory was given (rule fetch_model)")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir("judge", name)
    import torch

    identity = {
        "model_sha256": model_fingerprint(judge_model_dir, memo_dir=cache_dir),
        "dtype": cfg.get("dtype", "auto"),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "device_map": judge_spec.get("device_map"),
    }
    return CachedBackend(lambda: load_backend(judge_spec, judge_model_dir, cfg, name=name), cache_dir, identity, name=name)


def final_labels(rule: list[bool | None], verdict: list[str | None]) -> tuple[list, list, list]:
    """``(correct, label_source, judge_correct)`` from the rule labels and the judge verdicts.

    A parsable verdict decides (``label_source`` ``judge``); otherwise (judge not run,
    or ``unparsable``) the rule label is used (``label_source`` ``rule``), which may be null.
    """
    if len(rule) != len(verdict):
        raise ValueError(f"{len(rule)} rule labels but {len(verdict)} verdicts")
    judge_correct = [verdict_to_bool(v) for v in verdict]
    correct = [j if j is not None else r for r, j in zip(rule, judge_correct)]
    source = ["judge" if j is not None else "rule" for j in judge_correct]
    return correct, source, judge_correct


def _judge(rows: pl.DataFrame, backend, max_new_tokens: int) -> list[str]:
    """Raw judge replies for ``rows`` (one batched generate call at temperature 0)."""
    convs = [
        judge_messages(r["question"], list(r["references"] or []) or [r["answer"]], strip_think(r["response"]))
        for r in rows.iter_rows(named=True)
    ]
    gens = backend.generate(convs, max_new_tokens=max_new_tokens, temperature=0.0, n=1)
    return [g[0].text for g in gens]


def run_judge(
    model: str,
    dataset: str,
    data_path,
    generations_path,
    out_path,
    agreement_path,
    judge_cfg: dict | None,
    judge_spec: dict | None,
    judge_model_dir,
    inference_cfg: dict | None,
    *,
    cache_dir=None,
) -> pl.DataFrame:
    """Write the ``correctness`` and ``agreement`` artifacts of ``model`` on ``dataset``; returns the correctness table.

    ``judge_spec`` is the judge model's config entry (None: no LLM judge, rules only);
    ``judge_model_dir`` its fetched directory (None for API judges). ``cache_dir``
    overrides the judge cache directory (see :func:`judge_backend`).
    """
    from ..data import get_spec

    judge_cfg = dict(judge_cfg or {})
    fmt = get_spec(dataset).answer_format
    f1_threshold = float(judge_cfg.get("f1_threshold", 0.5))
    max_new_tokens = int(judge_cfg.get("max_new_tokens", 8))

    df = _joined(data_path, generations_path)
    rule = rule_labels(df, fmt, f1_threshold, dataset=dataset, path=generations_path)
    needs_judge = [fmt == "text" or r is None for r in rule]
    n_judge = sum(needs_judge)

    raw: list[str | None] = [None] * df.height
    verdict: list[str | None] = [None] * df.height
    if n_judge and judge_spec is not None:
        idx = [i for i, need in enumerate(needs_judge) if need]
        backend = judge_backend(judge_cfg, judge_spec, judge_model_dir, inference_cfg, cache_dir=cache_dir)
        try:
            replies = _judge(df[idx], backend, max_new_tokens)
        finally:
            backend.close()
        for i, reply in zip(idx, replies):
            raw[i] = reply
            verdict[i] = parse_verdict(reply)
        stats = getattr(backend, "stats", {})
        log.info("judge %s on %s/%s: %d rows judged (%s cached), %d unparsable", judge_cfg.get("model"), model, dataset,
                 n_judge, stats.get("cache_hits", "?"), sum(v == "unparsable" for v in verdict))
    elif n_judge:
        log.warning("%s/%s: %d rows need the LLM judge but no judge model is configured; using rule labels only",
                    model, dataset, n_judge)

    correct, source, judge_correct = final_labels(rule, verdict)

    table = pl.DataFrame(
        {
            "id": df["id"],
            "correct": pl.Series(correct, dtype=pl.Boolean),
            "label_source": pl.Series(source, dtype=pl.Utf8),
            "rule_correct": pl.Series(rule, dtype=pl.Boolean),
            "judge_correct": pl.Series(judge_correct, dtype=pl.Boolean),
            "judge_verdict": pl.Series(verdict, dtype=pl.Utf8),
            "judge_raw": pl.Series(raw, dtype=pl.Utf8),
            "verbal_1s_correct": pl.Series([None] * df.height, dtype=pl.Boolean),  # filled by issue 10 item 4
        }
    )
    n_both, agreement, kappa = rule_judge_agreement(rule, judge_correct)
    agree = pl.DataFrame(
        {
            "model": [model],
            "dataset": [dataset],
            "n_both": pl.Series([n_both], dtype=pl.Int64),
            "agreement": pl.Series([agreement], dtype=pl.Float64),
            "cohen_kappa": pl.Series([kappa], dtype=pl.Float64),
        }
    )
    write_parquet(table, out_path, "correctness")
    write_parquet(agree, agreement_path, "agreement")
    acc = table["correct"].drop_nulls().mean()
    log.info("%s/%s: %d rows, accuracy %s, rule/judge agreement %s (κ %s, n=%d)", model, dataset, table.height,
             f"{acc:.3f}" if acc is not None else "n/a", agreement, kappa, n_both)
    return table
