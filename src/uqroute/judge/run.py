"""Rule `judge`: whether each response is correct, by rule checks and an LLM judge.

Paper (Chuang et al., arXiv:2502.04428, §3.1): "for free-form question answering, we use
GPT-4.1 mini to evaluate whether a response is essentially equivalent to the ground truth
answer" (LLM-as-a-judge, Zheng et al., 2023), and its Table 2 counts the math datasets
(GSM8K, MultiArith, SVAMP, MATH-500) as free-form. How multiple-choice and true/false answers
were checked the paper does not say; here they are checked by rules.

Per row of the generations file (every row: ``eval`` rows are scored and routed,
``train`` rows train the in-domain probe), for two answers: the greedy ``response`` and, for
SLMs, the answer of the verbalization-1s reply (``verbal_1s_answer``):

0. A reply cut off by the token budget (``finish_reason == "length"``; for the verbal-1s reply
   ``verbal_1s_finish_reason`` when the generations file has it) is a truncation, not an
   answer: ``correct`` is False with ``label_source = "truncated"``; neither the rule nor the
   judge looks at it.
1. ``rule_correct`` = :func:`uqroute.parsing.is_correct` on the generations file's
   ``parsed_answer`` (not re-parsed), the gold ``answer`` and ``references``, in the
   dataset's ``answer_format``; for ``text`` (CoQA, TruthfulQA) that is SQuAD exact
   match or token F1 ≥ ``judge.f1_threshold`` against the references.
2. The LLM judge runs on the rows that ``judge.scope`` (:data:`SCOPES`) gives it and that have
   a reference answer, when a judge model is configured: ``rules`` none, ``text`` the
   ``text``-format datasets, ``free_form`` every free-form dataset, math included (the
   paper's). All distinct judge prompts go to the backend in one call at temperature 0, and the
   verdict is a choice, not prose (:mod:`.ask`): an API judge answers a JSON schema with one enum
   field (``response_format``), a local judge chooses between its next tokens ``Yes`` and ``No``
   (``judge_p_correct`` is its probability of ``Yes``); only a judge that supports neither is read
   from text (:func:`~uqroute.judge.verdict.parse_verdict`, counted as a fallback).
   ``judge_raw`` is the reply, ``judge_verdict`` the verdict, ``judge_method`` how it was
   obtained, ``judge_correct`` the verdict as a bool (null when unparsable).
3. ``correct`` = ``judge_correct`` with ``label_source = "judge"`` where the judge
   gave a parsable verdict; otherwise ``correct`` = ``rule_correct`` with
   ``label_source = "rule"`` (this includes rows whose judge verdict was
   ``unparsable``: the verdict is recorded, never guessed, and the rule label is
   used). ``correct`` is null only when neither decided. ``verbal_1s_correct`` is decided
   the same way for the verbal-1s answer of the evaluation rows (null for LLM rows, which have
   no such reply, and for training rows, where nothing uses it).

Besides ``correctness``, the stage writes ``agreement`` (rule vs judge on the greedy answers:
agreement and Cohen's κ, whatever the scope; the verbal-1s answers' are logged) and ``quality``
(per (model, dataset): truncated replies and everything that did not parse — answers, samples,
verbalized confidences, judge verdicts — the verdicts read from text (fallbacks) and the local
judge's unsure verdicts, with a warning in the job log above ``judge.quality_warn_fraction``).

Judge calls are cached on disk (``uqroute.inference.api``): an API judge by its
request body, a local judge by a fingerprint of its model files + messages +
generation parameters, so a rerun never recomputes (or pays for) a verdict, and a prompt that
occurs twice in one run (the verbal-1s answer equal to the greedy one) is asked once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from ..io import ArtifactInputError, align_ids, read_artifact, write_parquet
from ..parsing import (
    CONTENT_FILTER,
    InvalidGoldError,
    final_answer_text,
    is_correct,
    is_truncated,
    strip_verbal_confidence,
)
from ..schema import check_frame
from .agreement import rule_judge_agreement
from .ask import TEXT, TOKEN_CHOICE, UNSURE, Judged, TokenChoiceJudge, ask_verdicts
from .verdict import UNPARSABLE, verdict_to_bool

__all__ = [
    "run_judge",
    "rule_labels",
    "final_labels",
    "judge_backend",
    "judge_in_scope",
    "quality_row",
    "JudgeInputError",
    "SCOPES",
    "DEFAULT_SCOPE",
    "TRUNCATED_SOURCE",
]

log = logging.getLogger(__name__)

#: ``judge.scope``: which answers the LLM judge decides (the rest are decided by rules).
SCOPES = ("rules", "text", "free_form")
DEFAULT_SCOPE = "text"
#: ``label_source`` of a reply cut off by the token budget.
TRUNCATED_SOURCE = "truncated"
#: ``judge.quality_warn_fraction`` default.
DEFAULT_WARN_FRACTION = 0.1
#: ``judge.truncated_warn_fraction`` default: the share of replies a token budget may cut off before
#: the ``quality`` table warns (reasoning budgets are set so that it stays at or below 2 %).
DEFAULT_TRUNCATED_WARN_FRACTION = 0.02

DATA_COLUMNS = ("id", "role", "question", "choices", "answer", "references")
GENERATION_COLUMNS = (
    "id",
    "response",
    "parsed_answer",
    "tokens",
    "finish_reason",
    "samples",
    "sample_answers",
    "verbal_1s_response",
    "verbal_1s_answer",
    "verbal_1s_confidence",
    "verbal_2s_response",
    "verbal_2s_confidence",
)
#: Generations columns used when present (added by newer inference; older artifacts lack them).
OPTIONAL_GENERATION_COLUMNS = (
    "answer_start",
    "verbal_1s_finish_reason",
    "verbal_2s_finish_reason",
    "samples_truncated",
)


class JudgeInputError(ArtifactInputError):
    """The data or generations file of the judge stage is not usable (names the file, row or column)."""


def judge_in_scope(scope: str, answer_format: str, task_type: str) -> bool:
    """Whether ``judge.scope`` gives a dataset's answers to the LLM judge.

    ``rules``: never; ``text``: ``answer_format == "text"`` (CoQA, TruthfulQA); ``free_form``:
    every free-form dataset (``task_type == "FF"``: also GSM8K, MultiArith, SVAMP, MATH-500, as in
    the paper's Table 2).
    """
    if scope not in SCOPES:
        raise ValueError(f"judge.scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == "rules":
        return False
    if scope == "text":
        return answer_format == "text"
    return task_type == "FF"


def _read_generations(path) -> pl.DataFrame:
    try:
        have = set(pl.read_parquet_schema(path))
    except Exception:  # missing or unreadable: read_artifact below names the file
        have = set()
    columns = GENERATION_COLUMNS + tuple(c for c in OPTIONAL_GENERATION_COLUMNS if c in have)
    return read_artifact(path, "generations", columns=columns, stage="judge")


def _joined(data_path, generations_path) -> pl.DataFrame:
    """The generations rows (in their order) with the data columns the checks need."""
    try:
        data = read_artifact(data_path, "data", columns=DATA_COLUMNS, stage="judge")
        gens = _read_generations(generations_path)
    except ArtifactInputError as err:
        raise JudgeInputError(str(err)) from None
    try:
        rows = align_ids(gens["id"], data, data_path, what="data", stage="judge")
    except ArtifactInputError as err:
        raise JudgeInputError(
            f"{err}: generations file {generations_path} answers queries that the data file does not "
            "hold; rerun rule infer for this dataset"
        ) from None
    # SLM generations cover every row (training rows feed the probes); LLM generations cover the
    # evaluation rows only. Either way every evaluation query must have been answered.
    try:
        align_ids(
            data.filter(pl.col("role") == "eval")["id"], gens, generations_path, what="generations", stage="judge"
        )
    except ArtifactInputError as err:
        raise JudgeInputError(f"{err} (evaluation rows of {data_path}); rerun rule infer for this dataset") from None
    return pl.concat([gens, rows.drop("id")], how="horizontal")


def rule_labels(
    df: pl.DataFrame,
    answer_format: str,
    f1_threshold: float,
    *,
    dataset: str,
    path="",
    column: str = "parsed_answer",
    skip=None,
) -> list[bool | None]:
    """``rule_correct`` for each row of ``df`` (columns ``id``, ``column``, ``answer``, ``references``);
    None where ``skip`` (a list of bools) is True."""
    out = []
    skip = skip or [False] * df.height
    for row, s in zip(df.select("id", column, "answer", "references").iter_rows(named=True), skip):
        if s:
            out.append(None)
            continue
        try:
            out.append(is_correct(row[column], row["answer"], answer_format, row["references"] or [], f1_threshold))
        except InvalidGoldError as err:
            raise JudgeInputError(f"judge: dataset {dataset!r}, {path} id {row['id']!r}: {err}") from None
    return out


def judge_backend(judge_cfg: dict, judge_spec: dict, judge_model_dir, inference_cfg: dict | None, cache_dir=None):
    """The judge's backend, behind the on-disk cache.

    API judges (``api`` block) are :class:`~uqroute.inference.api.OpenAIChatBackend`,
    which caches every request itself (default ``resources/cache/api/<served model>``) and asks
    for structured verdicts (:mod:`.ask`). Local judges are a :class:`~uqroute.judge.ask.TokenChoiceJudge`
    (``Yes``/``No`` next-token choice): the model is loaded by :func:`uqroute.inference.load_backend`
    only on a cache miss, and every choice is cached keyed by the model files' SHA-256, the dtype
    setting and the device (default cache ``resources/cache/judge/<judge model>``;
    ``$UQROUTE_CACHE_DIR`` replaces ``resources/cache``).
    """
    from ..inference import default_cache_dir, load_backend, model_fingerprint

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
    # a local judge runs on our engine in the torch env: the vLLM engine is for rules infer / infer_llm only
    local = {**judge_spec, "backend": "transformers"}
    cfg = {**cfg, "backend": "transformers"}
    return TokenChoiceJudge(
        lambda: load_backend(local, judge_model_dir, cfg, name=name),
        cache_dir,
        identity,
        name=name,
        thinking=not judge_spec.get("reasoning"),
    )


def final_labels(
    rule: list[bool | None], verdict: list[str | None], truncated: list[bool] | None = None
) -> tuple[list, list, list]:
    """``(correct, label_source, judge_correct)`` from the rule labels and the judge verdicts.

    A truncated reply is incorrect (``label_source`` ``truncated``); otherwise a parsable verdict
    decides (``judge``); otherwise (judge not run, or ``unparsable``) the rule label is used
    (``rule``), which may be null.
    """
    if len(rule) != len(verdict):
        raise ValueError(f"{len(rule)} rule labels but {len(verdict)} verdicts")
    truncated = truncated if truncated is not None else [False] * len(rule)
    if len(truncated) != len(rule):
        raise ValueError(f"{len(rule)} rule labels but {len(truncated)} truncation flags")
    judge_correct = [verdict_to_bool(v) for v in verdict]
    correct, source = [], []
    for r, j, t in zip(rule, judge_correct, truncated):
        if t:
            correct.append(False)
            source.append(TRUNCATED_SOURCE)
        elif j is not None:
            correct.append(j)
            source.append("judge")
        else:
            correct.append(r)
            source.append("rule")
    return correct, source, judge_correct


def _references(row: dict) -> list[str]:
    refs = [str(r) for r in (row["references"] or []) if r is not None and str(r).strip()]
    if not refs and row["answer"] is not None and str(row["answer"]).strip():
        refs = [str(row["answer"])]
    return refs


def _shown_greedy(df: pl.DataFrame) -> list[str]:
    """The greedy reply as the judge sees it: without its reasoning trace; empty when the tokens say
    the trace never closed (``answer_start == len(tokens)``)."""
    out = []
    has_start = "answer_start" in df.columns
    for row in df.iter_rows(named=True):
        if (
            has_start
            and row["answer_start"] is not None
            and row["tokens"] is not None
            and row["answer_start"] >= len(row["tokens"])
        ):
            out.append("")
        else:
            out.append(final_answer_text(row["response"]))
    return out


def _recorded(df: pl.DataFrame, column: str) -> bool:
    """Whether the generations file records ``column`` (older files lack it, or hold only nulls)."""
    return column in df.columns and df[column].null_count() < df.height


def _flags(df: pl.DataFrame, column: str | None) -> list[bool]:
    if column is None or column not in df.columns:
        return [False] * df.height
    return [is_truncated(v) for v in df[column].to_list()]


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
    quality_path=None,
    cache_dir=None,
    provenance: dict | None = None,
) -> pl.DataFrame:
    """Write the ``correctness``, ``agreement`` and (with ``quality_path``) ``quality`` artifacts of
    ``model`` on ``dataset``; returns the correctness table.

    ``judge_spec`` is the judge model's config entry (None: no LLM judge, rules only);
    ``judge_model_dir`` its fetched directory (None for API judges). ``cache_dir``
    overrides the judge cache directory (see :func:`judge_backend`). ``judge_cfg`` keys:
    ``model``, ``scope`` (:data:`SCOPES`, default ``text``), ``f1_threshold`` (0.5),
    ``max_new_tokens`` (8: a text verdict's budget; a structured one gets at least
    :data:`~uqroute.judge.ask.STRUCTURED_MIN_TOKENS`), ``quality_warn_fraction`` (0.1),
    ``truncated_warn_fraction`` (0.02).
    """
    from ..data import get_spec

    judge_cfg = dict(judge_cfg or {})
    spec = get_spec(dataset)
    fmt, task_type = spec.answer_format, spec.task_type
    scope = judge_cfg.get("scope") or DEFAULT_SCOPE
    in_scope = judge_in_scope(scope, fmt, task_type)
    f1_threshold = float(judge_cfg.get("f1_threshold", 0.5))
    max_new_tokens = int(judge_cfg.get("max_new_tokens", 8))
    warn_fraction = float(judge_cfg.get("quality_warn_fraction", DEFAULT_WARN_FRACTION))
    truncated_warn = float(judge_cfg.get("truncated_warn_fraction", DEFAULT_TRUNCATED_WARN_FRACTION))

    df = _joined(data_path, generations_path)
    n = df.height
    rows = df.select("id", "question", "choices", "answer", "references").to_dicts()
    refs = [_references(r) for r in rows]
    truncated = _flags(df, "finish_reason")
    v1_reply = [r is not None for r in df["verbal_1s_response"].to_list()]
    v1_cut = [h and t for h, t in zip(v1_reply, _flags(df, "verbal_1s_finish_reason"))]
    # the verbal-1s answer is labelled on evaluation rows only: nothing uses it on training rows
    # (the probes learn `correct`), and a paid judge would be asked for nothing
    has_v1 = [h and role == "eval" for h, role in zip(v1_reply, df["role"].to_list())]
    v1_truncated = [h and t for h, t in zip(has_v1, v1_cut)]

    rule = rule_labels(df, fmt, f1_threshold, dataset=dataset, path=generations_path, skip=truncated)
    v1_rule = rule_labels(
        df,
        fmt,
        f1_threshold,
        dataset=dataset,
        path=generations_path,
        column="verbal_1s_answer",
        skip=[not h or t for h, t in zip(has_v1, v1_truncated)],
    )

    # judge requests: (which answer, row, (question, references, shown answer))
    requests: list[tuple[str, int, tuple[str, list[str], str]]] = []
    if in_scope:
        shown = _shown_greedy(df)
        for i in range(n):
            if not truncated[i] and refs[i]:
                requests.append(("greedy", i, (rows[i]["question"], refs[i], shown[i])))
        v1_text = df["verbal_1s_response"].to_list()
        for i in range(n):
            if has_v1[i] and not v1_truncated[i] and refs[i]:
                choices = [dict(c) for c in (rows[i]["choices"] or [])] or None
                shown_v1 = strip_verbal_confidence(v1_text[i], fmt, choices)
                requests.append(("verbal_1s", i, (rows[i]["question"], refs[i], shown_v1)))

    judged: list[Judged] = []
    raw = {"greedy": [None] * n, "verbal_1s": [None] * n}
    verdict = {"greedy": [None] * n, "verbal_1s": [None] * n}
    p_correct: list[float | None] = [None] * n
    method: list[str | None] = [None] * n
    if requests and judge_spec is not None:
        backend = judge_backend(judge_cfg, judge_spec, judge_model_dir, inference_cfg, cache_dir=cache_dir)
        try:
            judged = ask_verdicts(backend, [item for _, _, item in requests], max_new_tokens)
        finally:
            backend.close()
        for (which, i, _), j in zip(requests, judged):
            raw[which][i] = j.raw
            verdict[which][i] = j.verdict
            if which == "greedy":
                p_correct[i], method[i] = j.p_correct, j.method
        stats = getattr(backend, "stats", {})
        log.info(
            "judge %s (scope %s) on %s/%s: %d answers judged (%s cached), %d unparsable verdicts, %d read from text",
            judge_cfg.get("model"),
            scope,
            model,
            dataset,
            len(requests),
            stats.get("cache_hits", "?"),
            sum(j.verdict == UNPARSABLE for j in judged),
            sum(j.method == TEXT for j in judged),
        )
    elif requests:
        log.warning(
            "%s/%s: %d answers need the LLM judge (judge.scope %s) but no judge model is configured; "
            "using rule labels only",
            model,
            dataset,
            len(requests),
            scope,
        )
        requests = []

    correct, source, judge_correct = final_labels(rule, verdict["greedy"], truncated)
    v1_correct, _, v1_judge_correct = final_labels(v1_rule, verdict["verbal_1s"], v1_truncated)
    v1_correct = [c if h else None for c, h in zip(v1_correct, has_v1)]

    table = pl.DataFrame(
        {
            "id": df["id"],
            "correct": pl.Series(correct, dtype=pl.Boolean),
            "label_source": pl.Series(source, dtype=pl.Utf8),
            "rule_correct": pl.Series(rule, dtype=pl.Boolean),
            "judge_correct": pl.Series(judge_correct, dtype=pl.Boolean),
            "judge_verdict": pl.Series(verdict["greedy"], dtype=pl.Utf8),
            "judge_raw": pl.Series(raw["greedy"], dtype=pl.Utf8),
            "judge_method": pl.Series(method, dtype=pl.Utf8),
            "judge_p_correct": pl.Series(p_correct, dtype=pl.Float64),
            "verbal_1s_correct": pl.Series(v1_correct, dtype=pl.Boolean),
        }
    )
    n_both, agreement, kappa = rule_judge_agreement(rule, judge_correct)
    agree = pl.DataFrame(
        [{"model": model, "dataset": dataset, "n_both": n_both, "agreement": agreement, "cohen_kappa": kappa}],
        schema=_schema("agreement"),
    )
    v1_both, v1_agreement, v1_kappa = rule_judge_agreement(v1_rule, v1_judge_correct)
    quality = quality_row(
        model,
        dataset,
        df,
        truncated=truncated,
        v1_truncated=v1_cut,
        judged=judged,
        warn_fraction=warn_fraction,
        truncated_warn_fraction=truncated_warn,
    )
    for message in quality["warnings"][0]:
        log.warning("%s", message)

    # every table is checked before any is written, so a schema error leaves none of them behind
    for frame, artifact in ((table, "correctness"), (agree, "agreement"), (quality, "quality")):
        check_frame(frame, artifact, where=f"judge {model}/{dataset}")
    write_parquet(table, out_path, "correctness", provenance=provenance)
    write_parquet(agree, agreement_path, "agreement", provenance=provenance)
    if quality_path is not None:
        write_parquet(quality, quality_path, "quality", provenance=provenance)
    acc = table["correct"].drop_nulls().mean()
    log.info(
        "%s/%s: %d rows, accuracy %s, %d truncated, rule/judge agreement %s (κ %s, n=%d, scope %s)",
        model,
        dataset,
        table.height,
        f"{acc:.3f}" if acc is not None else "n/a",
        sum(truncated),
        agreement,
        kappa,
        n_both,
        scope,
    )
    if any(has_v1):
        log.info(
            "%s/%s: verbalization-1s answers: accuracy %s, rule/judge agreement %s (κ %s, n=%d)",
            model,
            dataset,
            table["verbal_1s_correct"].drop_nulls().mean(),
            v1_agreement,
            v1_kappa,
            v1_both,
        )
    return table


def _schema(artifact: str) -> dict:
    from ..schema import ARTIFACTS

    return ARTIFACTS[artifact].polars_schema()


def _fraction(count, total) -> float | None:
    return None if count is None or not total else count / total


def quality_row(
    model: str,
    dataset: str,
    df: pl.DataFrame,
    *,
    truncated: list[bool],
    v1_truncated: list[bool],
    judged: list[Judged],
    warn_fraction: float = DEFAULT_WARN_FRACTION,
    truncated_warn_fraction: float = DEFAULT_TRUNCATED_WARN_FRACTION,
) -> pl.DataFrame:
    """The one-row ``quality`` table: how many replies were truncated or did not parse.

    ``df`` holds the generations columns (:data:`GENERATION_COLUMNS`); ``truncated`` /
    ``v1_truncated`` flag the greedy and verbal-1s replies cut off by the token budget;
    ``judged`` are the judge's verdicts (one per judged answer: :class:`~uqroute.judge.ask.Judged`); those
    read from text are fallbacks, and a token-choice verdict with ``p_correct`` in
    :data:`~uqroute.judge.ask.UNSURE` is unsure. Counts that do not apply
    (no samples or verbalized replies: LLM rows; no ``verbal_*_finish_reason`` or
    ``samples_truncated`` column) are null. The truncated share is given per statistic (greedy
    answer, samples, verbalization-1s, verbalization-2s). ``warnings`` lists a message for every
    truncated share above ``truncated_warn_fraction`` and every other fraction above
    ``warn_fraction``.
    """
    n = df.height
    parsed = df["parsed_answer"].to_list()
    n_trunc = sum(truncated)
    n_unparsable = sum(1 for p, t in zip(parsed, truncated) if p is None and not t)

    samples = [a for a in df["sample_answers"].to_list() if a is not None]
    n_samples = sum(len(a) for a in samples) if samples else None
    n_bad_samples = sum(x is None for a in samples for x in a) if samples else None
    n_samples_trunc = (
        int(df["samples_truncated"].fill_null(0).sum()) if n_samples and _recorded(df, "samples_truncated") else None
    )

    has_v1 = [r is not None for r in df["verbal_1s_response"].to_list()]
    n_v1 = sum(has_v1) or None
    v1_known = _recorded(df, "verbal_1s_finish_reason")
    n_v1_trunc = sum(v1_truncated) if (n_v1 and v1_known) else None
    ok_v1 = [h and not t for h, t in zip(has_v1, v1_truncated)]
    n_v1_ans = sum(1 for ok, a in zip(ok_v1, df["verbal_1s_answer"].to_list()) if ok and a is None) if n_v1 else None
    n_v1_conf = (
        sum(1 for ok, c in zip(ok_v1, df["verbal_1s_confidence"].to_list()) if ok and c is None) if n_v1 else None
    )

    has_v2 = [r is not None for r in df["verbal_2s_response"].to_list()]
    n_v2 = sum(has_v2) or None
    v2_trunc = [h and t for h, t in zip(has_v2, _flags(df, "verbal_2s_finish_reason"))]
    n_v2_trunc = sum(v2_trunc) if (n_v2 and _recorded(df, "verbal_2s_finish_reason")) else None
    n_v2_conf = (
        sum(1 for h, t, c in zip(has_v2, v2_trunc, df["verbal_2s_confidence"].to_list()) if h and not t and c is None)
        if n_v2
        else None
    )

    n_judged = len(judged)
    n_bad_verdicts = sum(j.verdict == UNPARSABLE for j in judged)
    n_fallbacks = sum(j.method == TEXT for j in judged)
    chosen = [j.p_correct for j in judged if j.method == TOKEN_CHOICE]
    n_chosen = len(chosen) or None
    n_unsure = sum(p is not None and UNSURE[0] <= p <= UNSURE[1] for p in chosen) if chosen else None
    n_filtered = sum(r == CONTENT_FILTER for r in df["finish_reason"].to_list()) if "finish_reason" in df.columns else 0

    where = f"{model}/{dataset}"
    budget = "raise the answer budget (inference.max_new_tokens, or the model's own max_new_tokens)"
    cut = "truncated_warn_fraction"
    checks = [
        (
            n_trunc,
            n,
            cut,
            "greedy replies were cut off by the token budget (finish_reason 'length'); they count as "
            f"incorrect (label_source 'truncated'): {budget}",
        ),
        (n_unparsable, n - n_trunc, None, "complete greedy replies gave no parsable answer (counted incorrect)"),
        (
            n_samples_trunc,
            n_samples,
            cut,
            "sampled replies were cut off by the token budget (no answer): raise "
            "inference.sample_max_new_tokens or the answer budget",
        ),
        (n_bad_samples, n_samples, None, "sampled replies gave no parsable answer"),
        (
            n_v1_trunc,
            n_v1,
            cut,
            "verbalization-1s replies were cut off by the token budget (the answer budget plus "
            f"inference.verbal_max_new_tokens): {budget}",
        ),
        (n_v1_ans, (n_v1 or 0) - (n_v1_trunc or 0), None, "verbalization-1s replies gave no parsable answer"),
        (
            n_v1_conf,
            (n_v1 or 0) - (n_v1_trunc or 0),
            None,
            "verbalization-1s replies gave no parsable confidence (those queries are dropped for verbal_1s)",
        ),
        (
            n_v2_trunc,
            n_v2,
            cut,
            "verbalization-2s replies were cut off by the token budget: raise inference.verbal_max_new_tokens",
        ),
        (
            n_v2_conf,
            (n_v2 or 0) - (n_v2_trunc or 0),
            None,
            "verbalization-2s replies gave no parsable confidence (those queries are dropped for verbal_2s)",
        ),
        (n_bad_verdicts, n_judged, None, "judge verdicts were unparsable (the rule label was used)"),
        (
            n_fallbacks,
            n_judged,
            None,
            "judge verdicts were read from free text, a fallback: the judge gave no "
            "structured verdict (JSON schema or Yes/No token choice)",
        ),
        (n_unsure, n_chosen, None, f"judge verdicts were unsure (p(correct) within [{UNSURE[0]:g}, {UNSURE[1]:g}])"),
        (
            n_filtered,
            n,
            None,
            "greedy replies were stopped by the API provider's content filter (finish_reason 'content_filter')",
        ),
    ]
    warnings = []
    for count, total, key, what in checks:
        frac = _fraction(count, total)
        limit, name = (
            (truncated_warn_fraction, "judge.truncated_warn_fraction")
            if key
            else (warn_fraction, "judge.quality_warn_fraction")
        )
        if frac is not None and frac > limit:
            warnings.append(f"{where}: {count} of {total} ({frac:.0%}) {what} [above {name} {limit:g}]")
    row = {
        "model": model,
        "dataset": dataset,
        "n_rows": n,
        "n_truncated": n_trunc,
        "truncated_fraction": _fraction(n_trunc, n),
        "n_unparsable_answers": n_unparsable,
        "n_samples": n_samples,
        "n_samples_truncated": n_samples_trunc,
        "samples_truncated_fraction": _fraction(n_samples_trunc, n_samples),
        "n_unparsable_samples": n_bad_samples,
        "n_verbal_1s": n_v1,
        "n_verbal_1s_truncated": n_v1_trunc,
        "verbal_1s_truncated_fraction": _fraction(n_v1_trunc, n_v1),
        "n_unparsable_verbal_1s_answers": n_v1_ans,
        "n_unparsable_verbal_1s_confidences": n_v1_conf,
        "n_verbal_2s": n_v2,
        "n_verbal_2s_truncated": n_v2_trunc,
        "verbal_2s_truncated_fraction": _fraction(n_v2_trunc, n_v2),
        "n_unparsable_verbal_2s_confidences": n_v2_conf,
        "n_judged": n_judged,
        "n_unparsable_verdicts": n_bad_verdicts,
        "n_verdict_fallbacks": n_fallbacks,
        "n_judge_unsure": n_unsure,
        "n_content_filtered": n_filtered,
        "warnings": warnings,
    }
    return pl.DataFrame([row], schema=_schema("quality"))
