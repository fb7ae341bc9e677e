"""The one place where every artifact's columns are defined.

Each pipeline artifact (a parquet table written by a rule) is described by an
:class:`Artifact`: its path pattern, and for each column the Arrow type, whether
it may hold nulls, and what it means. ``docs/artifacts.md`` is generated from
this module (``python -m uqroute.schema > docs/artifacts.md``) and a test checks
that the two agree, so the documentation cannot drift from the code.

Writers call :func:`check_frame` before writing; tests call it on the real
artifacts of a pipeline run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

__all__ = [
    "Column",
    "Artifact",
    "ARTIFACTS",
    "check_frame",
    "empty_frame",
    "ArtifactSchemaError",
    "render_markdown",
    "FILES",
    "path_of",
    "Field",
    "ROUTER_FILE",
    "ROUTER_FILE_PATH",
]


class ArtifactSchemaError(ValueError):
    """Raised when a table does not match its documented artifact schema."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType | type
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str
    doc: str
    columns: tuple[Column, ...]
    # Extra columns allowed (e.g. one column per UQ method): a prefix-free rule
    # described in prose, checked by ``extra_dtype`` when set.
    extra_columns_doc: str | None = None
    extra_dtype: pl.DataType | type | None = None
    key: tuple[str, ...] = field(default=("id",))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}


CHOICE = pl.Struct({"label": pl.Utf8, "text": pl.Utf8})

# ---------------------------------------------------------------- datasets
DATA = Artifact(
    name="data",
    path="results/data/{dataset}.parquet",
    doc=(
        "One row per query, in one schema for all 15 datasets (rule `download`). "
        "Holds the evaluation rows (`role` = `eval`) and a seeded subsample of the "
        "training split (`role` = `train`, used only to train the in-domain probe)."
    ),
    columns=(
        Column("id", pl.Utf8, "Stable query id: `{dataset}/{split}/{index}` (CoQA: `coqa/{split}/{story_id}/{turn}`)."),
        Column("dataset", pl.Utf8, "Dataset name as in the config (e.g. `gsm8k`)."),
        Column("domain", pl.Utf8, "`math`, `commonsense`, `conversational` or `problem_solving` (paper Table 2)."),
        Column("task_type", pl.Utf8, "`FF` free-form, `MCQ` multiple choice, `TF` true/false."),
        Column("split", pl.Utf8, "Source split name on the hub (e.g. `test`, `validation`, `train`)."),
        Column("role", pl.Utf8, "`eval` (scored and routed) or `train` (probe training only)."),
        Column("question", pl.Utf8, "The question text, as in the source."),
        Column(
            "context",
            pl.Utf8,
            "Passage or conversation history (BoolQ passage; CoQA story + previous turns); null if none.",
            nullable=True,
        ),
        Column("choices", pl.List(CHOICE), "Options as `{label, text}` with letters A, B, …; empty list for FF/TF."),
        Column(
            "answer",
            pl.Utf8,
            "Gold answer: option letter (MCQ), `True`/`False` (TF), number or LaTeX (math FF), first reference (other FF).",
        ),
        Column("references", pl.List(pl.Utf8), "All acceptable reference answers (FF); `[answer]` otherwise."),
        Column("prompt", pl.Utf8, "Plain user message (no chat template) asking for the answer in the task's format."),
    ),
)

# ---------------------------------------------------------------- generations
GENERATIONS = Artifact(
    name="generations",
    path="results/generations/{model}/{dataset}.parquet",
    doc=(
        "Everything one model produced for one dataset (rules `infer` and `infer_llm`), one row per "
        "query of `results/data/{dataset}.parquet` in the same order (LLMs: the `eval` rows only, "
        "since routing never uses their answers on training rows). SLM evaluation rows carry the "
        "statistics the configured UQ methods need (`uqroute.inference.statistics`: a column of a "
        "statistic no configured method needs is null); SLM training rows and LLM rows carry the "
        "greedy answer only (the other columns are null). Hidden states are stored beside it in "
        "`results/generations/{model}/{dataset}.hidden.safetensors` (see below)."
    ),
    columns=(
        Column("id", pl.Utf8, "Query id (joins `data`)."),
        Column("response", pl.Utf8, "Greedy (temperature 0) response, raw text including any `<think>` block."),
        Column(
            "parsed_answer",
            pl.Utf8,
            "Answer parsed from `response` (think blocks stripped); null when unparsable, and always null when the reply was cut off by the token budget (`finish_reason` `length`): a truncated reply states no final answer.",
            nullable=True,
        ),
        Column("tokens", pl.List(pl.Utf8), "Generated tokens of the greedy response (decoded one by one)."),
        Column(
            "token_logprobs",
            pl.List(pl.Float64),
            "Natural-log probability of each generated token (null entries where an API gives none).",
            nullable=True,
        ),
        Column(
            "token_entropies",
            pl.List(pl.Float64),
            "Entropy (nats) of the next-token distribution at each generated position; null for API models.",
            nullable=True,
        ),
        Column(
            "answer_start",
            pl.Int64,
            "Index into `tokens` of the first token of the final answer: 0 without a reasoning trace, the first token after the last `</think>` otherwise, `len(tokens)` when the reply holds no final answer (an unfinished trace); null where the backend gave no tokens. Token-level UQ methods score `tokens[answer_start:]` (docs/uq.md).",
            nullable=True,
        ),
        Column(
            "option_prob",
            pl.Float64,
            "MCQ/TF: probability of the token that states the chosen option (e.g. `B`, `True`); null for FF or when no option token was found.",
            nullable=True,
        ),
        Column("n_prompt_tokens", pl.Int64, "Prompt length in tokens after the chat template."),
        Column(
            "finish_reason",
            pl.Utf8,
            "`stop` (end of sequence), `length` (hit max_new_tokens: a truncation) or `content_filter` (an API provider's content filter stopped the reply; counted in `quality`).",
        ),
        Column(
            "samples",
            pl.List(pl.Utf8),
            "SLM: m responses sampled at temperature 1.0 (seeded); null for LLMs.",
            nullable=True,
        ),
        Column(
            "sample_answers",
            pl.List(pl.Utf8),
            "Answers parsed from `samples` (null entries where unparsable or where the sample was cut off by its token budget).",
            nullable=True,
        ),
        Column(
            "samples_truncated",
            pl.Int64,
            "SLM: how many of `samples` were cut off by their token budget (their `sample_answers` entries are null).",
            nullable=True,
        ),
        Column(
            "ptrue",
            pl.Float64,
            "SLM: P(True) of the follow-up 'is your answer correct' turn, True/False probabilities normalised to sum to 1.",
            nullable=True,
        ),
        Column(
            "verbal_1s_response", pl.Utf8, "SLM: raw reply to the one-step answer-and-confidence prompt.", nullable=True
        ),
        Column(
            "verbal_1s_answer",
            pl.Utf8,
            "Answer parsed from `verbal_1s_response`; null when unparsable or truncated (`verbal_1s_finish_reason` `length`).",
            nullable=True,
        ),
        Column(
            "verbal_1s_confidence",
            pl.Float64,
            "Confidence in [0, 1] parsed from `verbal_1s_response`; null when unparsable or truncated.",
            nullable=True,
        ),
        Column(
            "verbal_1s_finish_reason",
            pl.Utf8,
            "SLM: `stop` or `length` (the verbalization-1s reply hit its token budget: a truncation).",
            nullable=True,
        ),
        Column(
            "verbal_2s_response",
            pl.Utf8,
            "SLM: raw reply to the follow-up 'how confident are you' turn after the greedy answer.",
            nullable=True,
        ),
        Column(
            "verbal_2s_confidence",
            pl.Float64,
            "Confidence in [0, 1] parsed from `verbal_2s_response`; null when unparsable.",
            nullable=True,
        ),
        Column(
            "verbal_2s_finish_reason",
            pl.Utf8,
            "SLM: `stop` or `length` for the verbal-2s reply (a truncated reply gives no confidence).",
            nullable=True,
        ),
    ),
)

# ---------------------------------------------------------------- correctness
CORRECTNESS = Artifact(
    name="correctness",
    path="results/correctness/{model}/{dataset}.parquet",
    doc=(
        "Whether each greedy response is correct (rule `judge`), for SLMs and LLMs, one row per row "
        "of the generations file. Rules check every answer (option letter, truth value, number, "
        "MATH-500 LaTeX equivalence, SQuAD match for text); the LLM judge decides the answers that "
        "`judge.scope` gives it (`rules`: none; `text`: CoQA and TruthfulQA; `free_form`: every "
        "free-form dataset, math included, as in the paper). A reply cut off by the token budget "
        "is incorrect without any check (docs/judge.md)."
    ),
    columns=(
        Column("id", pl.Utf8, "Query id."),
        Column(
            "correct",
            pl.Boolean,
            "Final label used downstream: false for a truncated reply, else the judge's verdict where it gave one, else the rule; null only when neither could decide.",
            nullable=True,
        ),
        Column(
            "label_source",
            pl.Utf8,
            "Which check produced `correct`: `truncated` (`generations.finish_reason` is `length`: the reply was cut off by the token budget, so it holds no answer), `judge` or `rule`.",
        ),
        Column(
            "rule_correct",
            pl.Boolean,
            "Rule-based check (exact letter/bool/number, LaTeX equivalence, or normalised match / token-F1 ≥ threshold for FF); null for truncated replies and text rows without a reference.",
            nullable=True,
        ),
        Column(
            "judge_correct",
            pl.Boolean,
            "LLM judge verdict; null where the judge was not run or its reply was unparsable.",
            nullable=True,
        ),
        Column(
            "judge_verdict",
            pl.Utf8,
            "`correct`, `incorrect`, `unparsable`, or null where the judge was not run.",
            nullable=True,
        ),
        Column(
            "judge_raw",
            pl.Utf8,
            "The judge's raw reply: the JSON verdict of an API judge, `p(Yes)=… p(No)=…` of a local judge's token choice, or the text of a fallback reply.",
            nullable=True,
        ),
        Column(
            "judge_method",
            pl.Utf8,
            "How the verdict was obtained: `json_schema` (API judge, structured output), `token_choice` (local judge, next-token Yes/No) or `text` (the fallback: free text read by the verdict parser); null where the judge was not run.",
            nullable=True,
        ),
        Column(
            "judge_p_correct",
            pl.Float64,
            "Local judge (`token_choice`): its probability that the answer is correct, p(Yes) / (p(Yes) + p(No)) of its next token; null for other methods and where the judge was not run.",
            nullable=True,
        ),
        Column(
            "verbal_1s_correct",
            pl.Boolean,
            "SLMs: whether the answer stated in the verbalization-1s reply (`generations.verbal_1s_answer`) is correct, decided like `correct` (truncated reply → false; the same rules and, in scope, the same cached judge, shown the reply without its confidence statement); the label verbal_1s confidence is evaluated against (paper §3.1 (4)). Null for LLMs, for training rows (`role` = `train`: nothing evaluates it there, and a paid judge is not asked), and where neither check could decide.",
            nullable=True,
        ),
    ),
)

AGREEMENT = Artifact(
    name="agreement",
    path="results/correctness/{model}/{dataset}.agreement.parquet",
    doc=(
        "Agreement between the rule check and the LLM judge on the greedy answers where both gave a label "
        "(rule `judge`), whatever `judge.scope` (with `rules` the judge runs nowhere and `n_both` is 0; "
        "with `free_form` it compares the judge with the numeric/LaTeX rules on math)."
    ),
    key=("model", "dataset"),
    columns=(
        Column("model", pl.Utf8, "Model name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("n_both", pl.Int64, "Rows where both rule and judge gave a label."),
        Column(
            "agreement", pl.Float64, "Fraction of those rows on which they agree; null if n_both = 0.", nullable=True
        ),
        Column(
            "cohen_kappa", pl.Float64, "Cohen's κ (sklearn) between rule and judge; null if undefined.", nullable=True
        ),
    ),
)

QUALITY = Artifact(
    name="quality",
    path="results/correctness/{model}/{dataset}.quality.parquet",
    doc=(
        "How many replies of one model on one dataset were cut off by the token budget or did not parse "
        "(rule `judge`, one row), with the truncated share per statistic (greedy answer, samples, "
        "verbalization-1s, verbalization-2s). Every truncated share above `judge.truncated_warn_fraction` "
        "(default 0.02) and every other fraction above `judge.quality_warn_fraction` (default 0.1) is also "
        "a warning in `logs/judge/{model}/{dataset}.log` and in `warnings`. Counts that do not apply are "
        "null: samples and verbalized replies for LLMs, truncation of the verbalized replies for "
        "generations files without `verbal_1s_finish_reason` / `verbal_2s_finish_reason`."
    ),
    key=("model", "dataset"),
    columns=(
        Column("model", pl.Utf8, "Model name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column(
            "n_rows",
            pl.Int64,
            "Rows of the generations file (SLMs: evaluation and training rows; LLMs: evaluation rows).",
        ),
        Column(
            "n_truncated",
            pl.Int64,
            "Greedy replies with `finish_reason` `length` (labelled incorrect, `label_source` `truncated`).",
        ),
        Column("truncated_fraction", pl.Float64, "n_truncated / n_rows; null when there are no rows.", nullable=True),
        Column(
            "n_unparsable_answers", pl.Int64, "Complete (not truncated) greedy replies whose `parsed_answer` is null."
        ),
        Column("n_samples", pl.Int64, "Sampled replies (SLMs); null for LLMs.", nullable=True),
        Column(
            "n_samples_truncated",
            pl.Int64,
            "Sampled replies cut off by the token budget (sum of `generations.samples_truncated`); null for LLMs and files without that column.",
            nullable=True,
        ),
        Column(
            "samples_truncated_fraction",
            pl.Float64,
            "n_samples_truncated / n_samples; null where either is.",
            nullable=True,
        ),
        Column(
            "n_unparsable_samples",
            pl.Int64,
            "Sampled replies without a parsable answer (null entries of `sample_answers`).",
            nullable=True,
        ),
        Column("n_verbal_1s", pl.Int64, "Verbalization-1s replies (SLMs); null for LLMs.", nullable=True),
        Column(
            "n_verbal_1s_truncated",
            pl.Int64,
            "Verbalization-1s replies cut off by the token budget; null when the generations file does not record it.",
            nullable=True,
        ),
        Column(
            "verbal_1s_truncated_fraction",
            pl.Float64,
            "n_verbal_1s_truncated / n_verbal_1s; null where either is.",
            nullable=True,
        ),
        Column(
            "n_unparsable_verbal_1s_answers",
            pl.Int64,
            "Complete verbalization-1s replies without a parsable answer.",
            nullable=True,
        ),
        Column(
            "n_unparsable_verbal_1s_confidences",
            pl.Int64,
            "Complete verbalization-1s replies without a parsable confidence (dropped for `verbal_1s`).",
            nullable=True,
        ),
        Column("n_verbal_2s", pl.Int64, "Verbalization-2s replies (SLMs); null for LLMs.", nullable=True),
        Column(
            "n_verbal_2s_truncated",
            pl.Int64,
            "Verbalization-2s replies cut off by the token budget; null when the generations file does not record it.",
            nullable=True,
        ),
        Column(
            "verbal_2s_truncated_fraction",
            pl.Float64,
            "n_verbal_2s_truncated / n_verbal_2s; null where either is.",
            nullable=True,
        ),
        Column(
            "n_unparsable_verbal_2s_confidences",
            pl.Int64,
            "Complete verbalization-2s replies without a parsable confidence (dropped for `verbal_2s`).",
            nullable=True,
        ),
        Column("n_judged", pl.Int64, "Answers (greedy and verbalization-1s) sent to the LLM judge."),
        Column(
            "n_unparsable_verdicts", pl.Int64, "Judge replies whose verdict was `unparsable` (the rule label was used)."
        ),
        Column(
            "n_verdict_fallbacks",
            pl.Int64,
            "Judged answers whose verdict was read from free text (`judge_method` `text`): the judge gave no structured verdict.",
        ),
        Column(
            "n_judge_unsure",
            pl.Int64,
            "Token-choice verdicts (local judge) with p(correct) in [0.4, 0.6]; null when no verdict was a token choice.",
            nullable=True,
        ),
        Column(
            "n_content_filtered",
            pl.Int64,
            "Greedy replies with `finish_reason` `content_filter` (an API provider's filter stopped them; their text is parsed and labelled like any other).",
        ),
        Column(
            "warnings",
            pl.List(pl.Utf8),
            "The warnings issued: one message per fraction above `judge.quality_warn_fraction`.",
        ),
    ),
)

# ---------------------------------------------------------------- probes
PROBES = Artifact(
    name="probes",
    path="results/probes/{slm}/{dataset}.parquet",
    doc=(
        "Probe confidences for the evaluation rows (rule `probe`). Weights are saved as "
        "`results/probes/{slm}/{dataset}.{trained_probe,ood_probe}.safetensors`."
    ),
    columns=(
        Column("id", pl.Utf8, "Query id (eval rows only)."),
        Column("trained_probe", pl.Float64, "In-domain probe's P(correct)."),
        Column(
            "trained_probe_scheme",
            pl.Utf8,
            "`train_split` (trained on the dataset's training rows) or `crossfit` (K-fold on the eval rows), or `constant` (one-class labels).",
        ),
        Column(
            "ood_probe",
            pl.Float64,
            "Leave-one-dataset-out probe's P(correct), trained on every other dataset of the run.",
        ),
    ),
)

PROXY_PROBE = Artifact(
    name="proxy_probe",
    path="results/probes/{slm}/proxy/{dataset}.parquet",
    doc=(
        "Leak-free OOD-probe confidences for the proxy study (rule `proxy_probe`, paper §4.2): one probe per pair of "
        "datasets, trained on every labelled row of the run's *other* datasets (neither of the two), scoring the "
        "evaluation rows of both. When one of the pair is a routing target, the other's rows enter its proxy pool with "
        "these scores, so the pool carries no information from the target. One file per SLM and dataset `{dataset}` "
        "holds the pairs that dataset owns (`uqroute.routing.proxy_probe_owner`, a balanced round-robin: 7 pairs of "
        "the paper's 15 datasets); a pair is the rows whose `dataset` and `other` are its two datasets. Weights: "
        "`results/probes/{slm}/proxy/{dataset}.ood_probe.safetensors`, one probe per pair named `{a}+{b}` "
        "(`uqroute.probes.load_probe(path, name)`)."
    ),
    key=("dataset", "other", "id"),
    columns=(
        Column("dataset", pl.Utf8, "The dataset the row belongs to (one of the pair)."),
        Column("other", pl.Utf8, "The pair's other dataset, also left out of the probe's training."),
        Column("id", pl.Utf8, "Query id (eval rows of `dataset`)."),
        Column("ood_probe", pl.Float64, "P(correct) from the probe trained without `dataset` and `other`."),
    ),
)

# ---------------------------------------------------------------- uq
UQ = Artifact(
    name="uq",
    path="results/uq/{slm}/{dataset}.parquet",
    doc=(
        "One confidence per UQ method for each evaluation query (rule `uq`); higher = more confident. "
        "A null means the method could not score that query (e.g. unparsable verbalized confidence: "
        "the paper drops those queries for that method)."
    ),
    columns=(Column("id", pl.Utf8, "Query id (eval rows only)."),),
    extra_columns_doc="One Float64 column per UQ method, named as in `uqroute.uq.METHODS` (see docs/uq.md).",
    extra_dtype=pl.Float64,
)

# ---------------------------------------------------------------- routing
# One file per SLM (rule `routing`, one job per SLM), so a failed SLM leaves the others'
# results in place. Read every SLM at once with a glob, e.g.
# ``polars.read_parquet("results/routing/*/auc.parquet")``.
_SETTING = (
    "`partial_in_domain` (sources: every other dataset of the run), `out_of_domain` (sources: the run's datasets of other "
    "domains; with `routing.out_of_domain`) or the name of an out-of-domain shift from `routing.shifts`."
)

AUC = Artifact(
    name="auc",
    path="results/routing/{slm}/auc.parquet",
    doc=(
        "Uncertainty–correctness alignment per (slm, dataset, method) (rule `routing`). Each method is scored "
        "against the correctness of the answer its confidence is about (`uqroute.uq.METHODS[m].answer`): "
        "`correctness.correct` for the greedy answer, `correctness.verbal_1s_correct` for verbalization-1s."
    ),
    key=("slm", "dataset", "method"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method."),
        Column(
            "label",
            pl.Utf8,
            "The `correctness` column the confidence is evaluated against (`correct` or `verbal_1s_correct`).",
        ),
        Column("n", pl.Int64, "Queries with both a confidence and a correctness label."),
        Column("slm_accuracy", pl.Float64, "Mean correctness of the SLM on those queries."),
        Column(
            "roc_auc",
            pl.Float64,
            "ROC-AUC of confidence against correctness (sklearn); null when one class.",
            nullable=True,
        ),
        Column("roc_auc_lo", pl.Float64, "Lower end of the 95% bootstrap CI of roc_auc.", nullable=True),
        Column("roc_auc_hi", pl.Float64, "Upper end of the 95% bootstrap CI of roc_auc.", nullable=True),
        Column(
            "prr",
            pl.Float64,
            "Prediction rejection ratio (Malinin et al.: rejected queries count as correct); null when undefined.",
            nullable=True,
        ),
        Column(
            "prr_polygraph",
            pl.Float64,
            "LM-Polygraph's normalised PredictionRejectionArea (`prr_normalized`: rejected queries are discarded); null when undefined. See docs/routing.md.",
            nullable=True,
        ),
        Column("aurac", pl.Float64, "Area under the rejection–accuracy curve.", nullable=True),
    ),
)

CURVES = Artifact(
    name="curves",
    path="results/routing/{slm}/curves.parquet",
    doc="Routing curves in long format (rule `routing`): accuracy of the SLM+LLM system against the routed fraction.",
    key=("slm", "llm", "dataset", "method", "curve", "ratio"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column(
            "method",
            pl.Utf8,
            "UQ method (`random`, `random_mc` and `upper` rows carry the method they sit beside: they use the same queries).",
        ),
        Column(
            "curve",
            pl.Utf8,
            "`uq` (route the least confident), `random` (expected), `random_mc` (Monte-Carlo mean), `upper` (route exactly the SLM's errors first).",
        ),
        Column("ratio", pl.Float64, "Routing ratio r: fraction of queries sent to the LLM."),
        Column("accuracy", pl.Float64, "System accuracy at r."),
        Column("accuracy_sd", pl.Float64, "Monte-Carlo standard deviation (random_mc only).", nullable=True),
    ),
)

PROXY = Artifact(
    name="proxy",
    path="results/routing/{slm}/proxy.parquet",
    doc="Proxy routing data results (paper §4.1–4.2, App. E, G) per (slm, llm, target, method, setting, k, seed) (rule `routing`).",
    key=("slm", "llm", "target", "method", "setting", "k", "seed"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("target", pl.Utf8, "Target (held-out) dataset."),
        Column("method", pl.Utf8, "UQ method."),
        Column("setting", pl.Utf8, _SETTING),
        Column("sources", pl.List(pl.Utf8), "Datasets pooled into the proxy data."),
        Column("k", pl.Float64, "Fraction of each bin sampled (0.1 = the paper's k = 10%)."),
        Column("seed", pl.Int64, "Sampling seed."),
        Column("n_proxy", pl.Int64, "Rows in the proxy routing data."),
        Column(
            "rms",
            pl.Float64,
            "RMS over the ratio grid between the proxy curve at the requested ratio r and the oracle (`uq`) curve at r: what a user's budget buys.",
        ),
        Column(
            "rms_realised",
            pl.Float64,
            "RMS between the oracle curve and the proxy curve drawn against the fraction actually routed (its points joined by straight lines).",
        ),
        Column("rms_random", pl.Float64, "RMS between the expected random-routing curve and the oracle curve."),
        Column("budget_error", pl.Float64, "Mean |realised routed fraction − r| over the grid."),
        Column(
            "w1",
            pl.Float64,
            "Wasserstein-1 distance between the pooled source and the target confidence distributions (scipy).",
        ),
        Column(
            "pool_note",
            pl.Utf8,
            "Why the pool could not be cut into `routing.bins` bins (one value, range too small, fewer rows than bins); null otherwise.",
            nullable=True,
        ),
    ),
)

ROUTING_SUMMARY = Artifact(
    name="routing_summary",
    path="results/routing/{slm}/summary.parquet",
    doc="Per oracle routing curve summaries from RouteLLM (rule `routing`).",
    key=("slm", "llm", "dataset", "method"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method."),
        Column("slm_accuracy", pl.Float64, "Accuracy with nothing routed."),
        Column("llm_accuracy", pl.Float64, "Accuracy with everything routed."),
        Column(
            "apgr",
            pl.Float64,
            "Average performance gap recovered (after RouteLLM): mean over the grid points r of (acc(r) − acc_slm)/(acc_llm − acc_slm); null when acc_llm = acc_slm.",
            nullable=True,
        ),
        Column(
            "cpt50",
            pl.Float64,
            "First grid ratio r recovering 50% of the gap (no interpolation); null if never.",
            nullable=True,
        ),
        Column(
            "cpt80",
            pl.Float64,
            "First grid ratio r recovering 80% of the gap (no interpolation); null if never.",
            nullable=True,
        ),
        Column(
            "apgr_routellm",
            pl.Float64,
            "RouteLLM's own APGR: trapezoid area of the curve over the realised fraction of LLM calls (⌈r·n⌉/n), normalised by the SLM's and LLM's areas; null when acc_llm = acc_slm.",
            nullable=True,
        ),
        Column(
            "cpt50_routellm",
            pl.Float64,
            "RouteLLM's own CPT(50%): numpy.interp of the 50%-gap accuracy over the curve's (accuracy, realised call fraction) points (assumes an increasing curve); a fraction, not RouteLLM's percent; null when acc_llm = acc_slm.",
            nullable=True,
        ),
        Column(
            "cpt80_routellm",
            pl.Float64,
            "RouteLLM's own CPT(80%), as cpt50_routellm; null when acc_llm = acc_slm.",
            nullable=True,
        ),
    ),
)

RELATIVE_ACCURACY = Artifact(
    name="relative_accuracy",
    path="results/routing/{slm}/relative_accuracy.parquet",
    doc=(
        "SLM and LLM accuracy on the most confident queries (paper Figure 3, rule `routing`): "
        "the ⌈x·n⌉ least-confident queries are excluded (ties averaged)."
    ),
    key=("slm", "llm", "dataset", "method", "excluded"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method."),
        Column("excluded", pl.Float64, "Fraction x of lowest-confidence queries excluded (0 ≤ x < 1)."),
        Column("n_kept", pl.Int64, "Queries kept: n − ⌈x·n⌉."),
        Column("slm_accuracy", pl.Float64, "SLM accuracy on the kept queries."),
        Column("llm_accuracy", pl.Float64, "LLM accuracy on the kept queries."),
        Column(
            "relative_accuracy", pl.Float64, "slm_accuracy / llm_accuracy; null when llm_accuracy = 0.", nullable=True
        ),
    ),
)

PROXY_CURVES = Artifact(
    name="proxy_curves",
    path="results/routing/{slm}/proxy_curves.parquet",
    doc=(
        "Proxy-threshold routing curves on each target at the configured k (paper Figures 6–7, "
        "rule `routing`), one row per routing ratio and sampling seed."
    ),
    key=("slm", "llm", "target", "method", "setting", "seed", "ratio"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("target", pl.Utf8, "Target (held-out) dataset."),
        Column("method", pl.Utf8, "UQ method."),
        Column("setting", pl.Utf8, _SETTING),
        Column("k", pl.Float64, "Fraction of each bin sampled (routing.k)."),
        Column("seed", pl.Int64, "Sampling seed."),
        Column("ratio", pl.Float64, "Requested routing ratio r."),
        Column(
            "threshold",
            pl.Float64,
            "Tie-aware threshold t(r): the r-quantile of the proxy confidences; −inf at r = 0, +inf at r = 1.",
        ),
        Column(
            "q", pl.Float64, "Fraction of queries with confidence exactly t(r) that are routed (tie-aware thresholds)."
        ),
        Column(
            "realised_ratio",
            pl.Float64,
            "Expected fraction of target queries routed: P(c < t) + q·P(c = t) on the target.",
        ),
        Column("accuracy", pl.Float64, "Target system accuracy at that routing (expectation over the tied fraction)."),
        Column("oracle_accuracy", pl.Float64, "Oracle (`uq`) curve of the target at r."),
    ),
)

HOLDOUT = Artifact(
    name="holdout",
    path="results/routing/{slm}/holdout.parquet",
    doc=(
        'The hold-out sets (the proxy routing data itself, paper §4.1: "we open-source a hold-out set"), one row '
        "per (slm, method, setting, target, k, seed), self-contained so that a router can be built from one row "
        "without the pipeline: the sampled source rows and the tie-aware thresholds they imply for every ratio of "
        "the grid. Route a new query with confidence c at ratio r with `uqroute.routing.route_fraction(c, t, q)` "
        "(1 if c < t, q if c = t, else 0); `uqroute.routing.tie_aware_thresholds(confidence, ratio)` recomputes "
        "(threshold, q) from the rows. List columns of one row are aligned: `source_dataset`/`id`/`confidence`/"
        "`slm_correct` per sampled row (ascending confidence), `ratio`/`threshold`/`q` per grid ratio; "
        "`df.explode([...])` gives long tables."
    ),
    key=("slm", "method", "setting", "target", "k", "seed"),
    columns=(
        Column("slm", pl.Utf8, "SLM whose confidences these are."),
        Column("method", pl.Utf8, "UQ method."),
        Column("setting", pl.Utf8, _SETTING),
        Column("target", pl.Utf8, "The dataset this hold-out set was evaluated on (never among the sources)."),
        Column("sources", pl.List(pl.Utf8), "Datasets pooled into the hold-out set."),
        Column("k", pl.Float64, "Fraction of each bin sampled."),
        Column("seed", pl.Int64, "Sampling seed."),
        Column(
            "bins", pl.Int64, "Bins the pool was cut into (routing.bins, or 1 for a degenerate pool; see pool_note)."
        ),
        Column("pool_size", pl.Int64, "Scored source rows in the pool."),
        Column(
            "pool_note", pl.Utf8, "Why the pool could not be cut into routing.bins bins; null otherwise.", nullable=True
        ),
        Column("source_dataset", pl.List(pl.Utf8), "Source dataset of each sampled row."),
        Column("id", pl.List(pl.Utf8), "Query id of each sampled row (joins `data`, `uq`, `correctness`)."),
        Column("confidence", pl.List(pl.Float64), "The SLM's confidence for each sampled row (ascending)."),
        Column(
            "slm_correct",
            pl.List(pl.Boolean),
            "The SLM's correctness for each sampled row (the method's own label column; null entries where unlabelled). Not used for thresholds.",
        ),
        Column("ratio", pl.List(pl.Float64), "The routing-ratio grid (routing.ratio_step)."),
        Column(
            "threshold", pl.List(pl.Float64), "Tie-aware threshold t(r) for each ratio: −inf at r = 0, +inf at r = 1."
        ),
        Column("q", pl.List(pl.Float64), "Fraction of queries with confidence exactly t(r) to route, for each ratio."),
    ),
)

# ---------------------------------------------------------------- routers (rule `router`)
ROUTER_HOLDOUT = Artifact(
    name="router_holdout",
    path="results/routers/{slm}/holdout.parquet",
    doc=(
        "The hold-out sets a deployable router is calibrated on (rule `router_holdout`, docs/router.md): the "
        "`holdout` format with setting `pooled`, i.e. the proxy routing data drawn exactly as in the routing "
        "evaluation (`routing.bins`, `router.k` or `routing.k`, every seed of `routing.seeds`) from the confidences "
        "of **every** dataset of the run (no target left out, `target` null), one row per (slm, method, seed) "
        "for the methods of `router.methods`. `uqroute calibrate --holdout` reads this file or any `holdout` file."
    ),
    key=("slm", "method", "setting", "target", "k", "seed"),
    columns=tuple(
        Column(
            "target",
            pl.Utf8,
            "Null for the pooled setting (no dataset left out); in a `holdout` file, the dataset left out.",
            nullable=True,
        )
        if c.name == "target"
        else Column("setting", pl.Utf8, "`pooled` (sources: every dataset of the run).")
        if c.name == "setting"
        else c
        for c in HOLDOUT.columns
    ),
)

ROUTING_WARNINGS = Artifact(
    name="routing_warnings",
    path="results/routing/{slm}/warnings.parquet",
    doc=(
        "Everything the `routing` job for one SLM dropped, could not compute, or computed from a degenerate "
        "input, so it is recorded beside the results rather than only in the log. `results/routing/status.md` "
        "counts them per SLM."
    ),
    key=("slm", "dataset", "method", "setting", "kind", "message"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column(
            "dataset",
            pl.Utf8,
            "Dataset (the target, for proxy entries); null when the entry is about several.",
            nullable=True,
        ),
        Column("method", pl.Utf8, "UQ method; null when the entry is about every method.", nullable=True),
        Column("setting", pl.Utf8, "Proxy setting; null outside the proxy study.", nullable=True),
        Column(
            "kind",
            pl.Utf8,
            "`dropped_rows`, `one_class`, `no_scores`, `degenerate_pool`, `no_sources` or `failed` (an error in this method's evaluation; the other methods' results are complete).",
        ),
        Column("message", pl.Utf8, "What happened, with counts."),
    ),
)


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        DATA,
        GENERATIONS,
        CORRECTNESS,
        AGREEMENT,
        QUALITY,
        PROBES,
        PROXY_PROBE,
        UQ,
        AUC,
        CURVES,
        RELATIVE_ACCURACY,
        PROXY,
        PROXY_CURVES,
        ROUTING_SUMMARY,
        HOLDOUT,
        ROUTING_WARNINGS,
        ROUTER_HOLDOUT,
    )
}

#: The other files the rules write or read, by name (path patterns with the rules' wildcards):
#: the artifact paths are ``ARTIFACTS[name].path``; these are documented in prose (below, docs/slurm.md).
FILES: dict[str, str] = {
    "hidden_states": "results/generations/{model}/{dataset}.hidden.safetensors",
    "trained_probe_weights": "results/probes/{slm}/{dataset}.trained_probe.safetensors",
    "ood_probe_weights": "results/probes/{slm}/{dataset}.ood_probe.safetensors",
    "proxy_probe_weights": "results/probes/{slm}/proxy/{dataset}.ood_probe.safetensors",
    "revisions_lock": "results/revisions.lock.yaml",
    "model_download": "resources/downloads/{model}.json",
    "model_dir": "resources/models/{model}",
    "router_probe_weights": "results/routers/{slm}/{method}.safetensors",
    "router_file": "results/routers/{slm}/{method}.json",
}


def path_of(name: str, **rename: str) -> str:
    """The path pattern of an artifact (:data:`ARTIFACTS`) or file (:data:`FILES`), with wildcards renamed:
    ``path_of("generations", model="slm")`` → ``results/generations/{slm}/{dataset}.parquet``."""
    pattern = ARTIFACTS[name].path if name in ARTIFACTS else FILES[name]
    for old, new in rename.items():
        if "{" + old + "}" not in pattern:
            raise KeyError(f"path of {name!r} has no wildcard {{{old}}}: {pattern}")
        pattern = pattern.replace("{" + old + "}", "{" + new + "}")
    return pattern


HIDDEN_STATES_DOC = """\
### hidden states — `results/generations/{model}/{dataset}.hidden.safetensors`

Written by rule `infer` for SLMs. A safetensors file (no pickle) with one tensor
`hidden_states` of shape `(n_queries, hidden_size)` in float16: the hidden state of
the configured layer (default: the eighth-to-last transformer layer, as in the
paper) at the last prompt token, i.e. the representation from which the greedy
answer is generated. Row *i* belongs to query id `ids[i]`; the file's metadata
holds `ids` (a JSON list), `layer` (the absolute layer index into
`output_hidden_states`, 0 = embeddings), `model` and `dataset`. Read it with
`uqroute.io.read_hidden_states(path)` → `(ids, array, metadata)`.
"""


# ---------------------------------------------------------------- the router file (JSON)
@dataclass(frozen=True)
class Field:
    """One field of a JSON file: dotted path, JSON type (``string``, ``integer``, ``number``, ``boolean``,
    ``array``, ``object``), meaning, and whether it may be null."""

    path: str
    type: str
    doc: str
    nullable: bool = False


ROUTER_FILE_PATH = FILES["router_file"]
ROUTER_FILE_DOC = (
    "A calibrated router (rule `router`, or `uqroute calibrate`; docs/router.md), read by `uqroute serve --router` "
    "and `uqroute.router.Router.from_file`. JSON; thresholds of −∞ (LLM-call fraction 0: route nothing) and +∞ "
    "(fraction 1: route everything) are written as null. `uqroute.router.check_router_file` checks a file against "
    "this table (every field present with its type, none other)."
)
ROUTER_FILE: tuple[Field, ...] = (
    Field("format", "string", "`uqroute-router`."),
    Field("version", "integer", "File format version (1)."),
    Field("created_by", "string", "`rule router` or `uqroute calibrate`."),
    Field("slm", "string", "The SLM (model name of the config) that answers and scores requests."),
    Field("method", "string", "The UQ method whose confidence decides (`uqroute.uq.METHODS`)."),
    Field(
        "llm",
        "string",
        "The LLM whose measured accuracy calibrated the predicted accuracy curve (a name; null when only a constant accuracy was given).",
        nullable=True,
    ),
    Field("slm_model", "object", "Where the SLM's weights are."),
    Field(
        "slm_model.model_dir",
        "string",
        "The fetched SLM directory (relative paths start at the directory `uqroute serve` runs in; `--slm-dir` overrides).",
        nullable=True,
    ),
    Field(
        "slm_model.weights",
        "string",
        "The weights identity (`uqroute.models.weights_identity`) the hold-out confidences were computed with.",
        nullable=True,
    ),
    Field(
        "inference",
        "object",
        "The settings of the SLM pass that computes the confidence (the pipeline's `inference` section).",
    ),
    Field("inference.hidden_layer", "integer", "Hidden-state layer of the probe input (`inference.hidden_layer`)."),
    Field("inference.num_samples", "integer", "Samples per request for consistency methods."),
    Field("inference.sample_temperature", "number", "Their temperature."),
    Field(
        "inference.sample_max_new_tokens",
        "integer",
        "Their token budget, capped at the request's answer budget (null: the answer budget).",
        nullable=True,
    ),
    Field("inference.verbal_max_new_tokens", "integer", "Budget of verbalized-confidence replies."),
    Field(
        "inference.max_tokens", "integer", "SLM answer budget for requests without `max_tokens` (`router.max_tokens`)."
    ),
    Field("inference.seed", "integer", "Seed of the samples (per request: seeded by the seed and the request id)."),
    Field("inference.dtype", "string", "Model dtype (`inference.dtype`)."),
    Field(
        "inference.statistics",
        "array",
        "The statistics of the SLM pass the method needs (`uqroute.inference.statistics_for`): `greedy`, `hidden`, `samples`, `ptrue`, `verbal_1s`, `verbal_2s`.",
    ),
    Field("probe", "object", "Probe methods: the probe that scores the hidden state; null otherwise.", nullable=True),
    Field(
        "probe.path",
        "string",
        "Its safetensors file (`uqroute.probes.save_probe` format), relative to the router file's folder.",
    ),
    Field("probe.sha256", "string", "SHA-256 of that file (checked when the router loads)."),
    Field("probe.training_datasets", "array", "Datasets it was trained on."),
    Field(
        "holdout",
        "object",
        "The hold-out set the router was calibrated on (one `holdout`/`router_holdout` row per seed).",
    ),
    Field("holdout.file", "string", "The hold-out parquet file it was read from.", nullable=True),
    Field("holdout.slm", "string", "Its `slm`."),
    Field("holdout.method", "string", "Its `method`."),
    Field("holdout.setting", "string", "Its `setting` (`pooled` for routers built by rule `router`)."),
    Field("holdout.target", "string", "Its `target` (null for `pooled`).", nullable=True),
    Field("holdout.sources", "array", "Datasets pooled into it."),
    Field("holdout.k", "number", "Fraction of each bin sampled."),
    Field("holdout.bins", "integer", "Bins of the pool."),
    Field("holdout.pool_size", "integer", "Scored rows in the pool."),
    Field(
        "holdout.pool_note", "string", "Why the pool could not be binned as configured; null otherwise.", nullable=True
    ),
    Field("holdout.seeds", "array", "The seeds (one hold-out set each)."),
    Field("holdout.served_seed", "integer", "The seed whose thresholds are served (`router.seed`; default the first)."),
    Field("holdout.n", "integer", "Rows in the served seed's hold-out set."),
    Field(
        "holdout.confidence",
        "array",
        "The served seed's hold-out confidences, ascending (the reference of the live W1 distance).",
    ),
    Field("holdout.source_dataset", "array", "Source dataset of each of those rows."),
    Field(
        "grid",
        "object",
        "Thresholds of the served seed for every LLM-call fraction of the grid (`routing.ratio_step`).",
    ),
    Field("grid.ratio", "array", "LLM-call fractions 0, δ, …, 1."),
    Field(
        "grid.threshold",
        "array",
        "Tie-aware threshold t(r) (`uqroute.routing.tie_aware_thresholds`): a request with confidence c < t goes to the LLM, one with c = t with probability q.",
    ),
    Field("grid.q", "array", "The tied fraction q(r)."),
    Field("curve", "object", "Predicted accuracy of the routed system on the hold-out rows (docs/router.md)."),
    Field("curve.accuracy_mean", "array", "Per grid fraction: mean over seeds of mean_i[(1 − π_i) s_i + π_i l_i]."),
    Field(
        "curve.accuracy_sd", "array", "Per grid fraction: standard deviation over seeds (ddof 1; null with one seed)."
    ),
    Field("curve.accuracy_by_seed", "array", "Per seed (order of `holdout.seeds`): the curve."),
    Field("curve.slm_accuracy", "number", "Predicted accuracy at fraction 0 (the SLM alone), mean over seeds."),
    Field("curve.llm_accuracy", "number", "Predicted accuracy at fraction 1 (the LLM alone), mean over seeds."),
    Field(
        "curve.llm_labels",
        "string",
        "`per query` (the LLM's correctness joined by id; its dataset accuracy where unlabelled) or `constant` (one accuracy given).",
    ),
    Field(
        "curve.llm_accuracy_by_source",
        "object",
        "The LLM's measured accuracy per source dataset (null for `constant`).",
        nullable=True,
    ),
    Field("operating_point", "object", "The operating point served."),
    Field("operating_point.target", "object", "What was asked: `{llm_fraction: r}` or `{llm_accuracy_share: s}`."),
    Field(
        "operating_point.llm_fraction",
        "number",
        "The LLM-call fraction served (for a share: the smallest grid fraction whose mean predicted accuracy reaches s × `curve.llm_accuracy`).",
    ),
    Field(
        "operating_point.threshold",
        "number",
        "Its tie-aware threshold on the served seed (null: −∞ at fraction 0, +∞ at 1).",
        nullable=True,
    ),
    Field("operating_point.q", "number", "Its tied fraction."),
    Field("operating_point.predicted_accuracy", "number", "Predicted accuracy at that fraction, mean over seeds."),
    Field(
        "operating_point.predicted_accuracy_sd",
        "number",
        "Its standard deviation over seeds (null with one seed).",
        nullable=True,
    ),
    Field(
        "operating_point.predicted_accuracy_share",
        "number",
        "`predicted_accuracy` / `curve.llm_accuracy` (null when that is 0).",
        nullable=True,
    ),
    Field("serving", "object", "How the served threshold behaves and is watched."),
    Field(
        "serving.mode",
        "string",
        "`fixed` (the calibrated threshold throughout) or `tracking` (the calibrated one until `min_samples` live confidences, then the tie-aware `llm_fraction`-quantile of the last `window` live confidences).",
    ),
    Field(
        "serving.window",
        "integer",
        "Live window in requests (tracking quantile, realised LLM-call fraction, W1 to the hold-out confidences).",
    ),
    Field(
        "serving.min_samples",
        "integer",
        "The tracking warm-up N: live confidences after which the tracking threshold takes over (earlier once the calibrated threshold is shown wrong: `serving.warmup`). Chosen at calibration as min(`holdout.n`, `serving.window`), the size at which the live quantile is as certain as the hold-out's, unless `router.min_samples` / `--min-samples` set it.",
    ),
    Field(
        "serving.drift_margin",
        "number",
        "Warn when the realised LLM-call fraction over the window is farther than this from `operating_point.llm_fraction`.",
    ),
    Field(
        "serving.warmup",
        "object",
        'The warm-up\'s choice and the budget error to expect (`uqroute.router.tracking.warmup_plan`; docs/router.md, "The warm-up").',
    ),
    Field("serving.warmup.source", "string", "`auto` (N from the hold-out's size) or `set` (N given)."),
    Field(
        "serving.warmup.drift_min_samples",
        "integer",
        "k_min = ⌈r(1 − r)/`drift_margin`²⌉ (at most N): from this many live confidences on, the warm-up ends as soon as the calibrated threshold's fraction over them lies outside ± `z` · sqrt(r(1 − r)(1/k + 1/`holdout.n`)) of r. Also the decisions the drift warning waits for.",
    ),
    Field("serving.warmup.alpha", "number", "Two-sided level of that test and of the bands."),
    Field("serving.warmup.z", "number", "Its normal quantile (1.96 for 0.05)."),
    Field(
        "serving.warmup.fraction_sd_warmup",
        "number",
        "Expected standard deviation of the realised LLM-call fraction over the first N requests on hold-out-like traffic: sqrt(r(1 − r)(1/`holdout.n` + 1/N)).",
    ),
    Field("serving.warmup.band_warmup", "number", "`z` × `fraction_sd_warmup`: the ± band for the first N requests."),
    Field(
        "serving.warmup.fraction_sd_tracking",
        "number",
        "After the warm-up, with a full window: sqrt(r(1 − r)/`serving.window`).",
    ),
    Field("serving.warmup.band_tracking", "number", "`z` × `fraction_sd_tracking`."),
)


def render_router_file() -> str:
    """The router file's section of ``docs/artifacts.md``."""
    out = [
        f"## router file — `{ROUTER_FILE_PATH}`",
        "",
        ROUTER_FILE_DOC,
        "",
        "| field | JSON type | nullable | meaning |",
        "|---|---|---|---|",
    ]
    out += [f"| `{f.path}` | {f.type} | {'yes' if f.nullable else 'no'} | {f.doc} |" for f in ROUTER_FILE]
    return "\n".join(out) + "\n"


def same_dtype(actual: pl.DataType, expected) -> bool:
    """True when a column of dtype ``actual`` matches the documented ``expected`` (all-null columns match)."""
    if actual == pl.Null:  # a column that is entirely null reads back as Null
        return True
    if expected == pl.Utf8:
        return actual in (pl.Utf8, pl.String)
    if isinstance(expected, pl.List) and isinstance(actual, pl.List):
        # a list column that is entirely null reads back as List(Null)
        return actual.inner == pl.Null or same_dtype(actual.inner, expected.inner)
    return actual == expected


def check_frame(df: pl.DataFrame, artifact: str | Artifact, *, where: str = "") -> pl.DataFrame:
    """Check that ``df`` matches the documented schema of ``artifact``.

    Columns must appear in the documented order (extra per-method columns, where
    allowed, follow). Non-nullable columns must hold no nulls and the key must be
    unique. Returns ``df`` so that writers can chain it.
    """
    art = ARTIFACTS[artifact] if isinstance(artifact, str) else artifact
    label = f"{art.name} artifact" + (f" ({where})" if where else "")
    cols = df.columns
    expected = art.names
    if cols[: len(expected)] != expected:
        missing = [c for c in expected if c not in cols]
        raise ArtifactSchemaError(
            f"{label}: columns {cols} do not match the documented {expected}"
            + (f"; missing {missing}" if missing else "")
        )
    extra = cols[len(expected) :]
    if extra and art.extra_columns_doc is None:
        raise ArtifactSchemaError(f"{label}: undocumented columns {extra}")
    for c in art.columns:
        if not same_dtype(df.schema[c.name], c.dtype):
            raise ArtifactSchemaError(f"{label}: column {c.name!r} has type {df.schema[c.name]}, documented {c.dtype}")
        if not c.nullable and df[c.name].null_count():
            row = df.with_row_index().filter(pl.col(c.name).is_null())["index"][0]
            raise ArtifactSchemaError(f"{label}: column {c.name!r} is null in row {row} but may not be")
    if art.extra_dtype is not None:
        for name in extra:
            if not same_dtype(df.schema[name], art.extra_dtype):
                raise ArtifactSchemaError(
                    f"{label}: column {name!r} has type {df.schema[name]}, documented {art.extra_dtype}"
                )
    if df.height and df.select(art.key).is_duplicated().any():
        raise ArtifactSchemaError(f"{label}: key {art.key} is not unique")
    return df


def empty_frame(artifact: str) -> pl.DataFrame:
    return pl.DataFrame(schema=ARTIFACTS[artifact].polars_schema())


def _fmt_dtype(dt) -> str:
    s = str(dt)
    return s.replace("String", "Utf8")


def render_markdown() -> str:
    """The artifact reference, as committed in ``docs/artifacts.md``."""
    out = [
        "# Artifacts",
        "",
        "Every table the pipeline writes, with its columns. Generated from `src/uqroute/schema.py`",
        "by `python -m uqroute.schema > docs/artifacts.md`; `tests/test_schema.py` fails if this file",
        "is stale, and the pipeline tests check the real artifacts against the same definitions.",
        "All tables are parquet; open them with `polars.read_parquet` or `pandas.read_parquet`.",
        "",
    ]
    for art in ARTIFACTS.values():
        out += [f"## {art.name} — `{art.path}`", "", art.doc, "", f"Key: {', '.join(f'`{k}`' for k in art.key)}.", ""]
        out += ["| column | type | nullable | meaning |", "|---|---|---|---|"]
        for c in art.columns:
            out.append(f"| `{c.name}` | {_fmt_dtype(c.dtype)} | {'yes' if c.nullable else 'no'} | {c.doc} |")
        if art.extra_columns_doc:
            out.append(f"| *(more)* | {_fmt_dtype(art.extra_dtype)} | yes | {art.extra_columns_doc} |")
        out.append("")
    out.append(HIDDEN_STATES_DOC)
    out.append(render_router_file())
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
