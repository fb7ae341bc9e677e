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
        Column("context", pl.Utf8, "Passage or conversation history (BoolQ passage; CoQA story + previous turns); null if none.", nullable=True),
        Column("choices", pl.List(CHOICE), "Options as `{label, text}` with letters A, B, …; empty list for FF/TF."),
        Column("answer", pl.Utf8, "Gold answer: option letter (MCQ), `True`/`False` (TF), number or LaTeX (math FF), first reference (other FF)."),
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
        "since routing never uses their answers on training rows). SLM rows carry every "
        "statistic the UQ methods need; LLM rows carry the greedy answer only (the other "
        "columns are null). Hidden states are stored beside it in "
        "`results/generations/{model}/{dataset}.hidden.safetensors` (see below)."
    ),
    columns=(
        Column("id", pl.Utf8, "Query id (joins `data`)."),
        Column("response", pl.Utf8, "Greedy (temperature 0) response, raw text including any `<think>` block."),
        Column("parsed_answer", pl.Utf8, "Answer parsed from `response` (think blocks stripped); null when unparsable, and always null when the reply was cut off by the token budget (`finish_reason` `length`): a truncated reply states no final answer.", nullable=True),
        Column("tokens", pl.List(pl.Utf8), "Generated tokens of the greedy response (decoded one by one)."),
        Column("token_logprobs", pl.List(pl.Float64), "Natural-log probability of each generated token (null entries where an API gives none).", nullable=True),
        Column("token_entropies", pl.List(pl.Float64), "Entropy (nats) of the next-token distribution at each generated position; null for API models.", nullable=True),
        Column("option_prob", pl.Float64, "MCQ/TF: probability of the token that states the chosen option (e.g. `B`, `True`); null for FF or when no option token was found.", nullable=True),
        Column("n_prompt_tokens", pl.Int64, "Prompt length in tokens after the chat template."),
        Column("finish_reason", pl.Utf8, "`stop` (end of sequence) or `length` (hit max_new_tokens: a truncation)."),
        Column("samples", pl.List(pl.Utf8), "SLM: m responses sampled at temperature 1.0 (seeded); null for LLMs.", nullable=True),
        Column("sample_answers", pl.List(pl.Utf8), "Answers parsed from `samples` (null entries where unparsable or where the sample was cut off by its token budget).", nullable=True),
        Column("samples_truncated", pl.Int64, "SLM: how many of `samples` were cut off by their token budget (their `sample_answers` entries are null).", nullable=True),
        Column("ptrue", pl.Float64, "SLM: P(True) of the follow-up 'is your answer correct' turn, True/False probabilities normalised to sum to 1.", nullable=True),
        Column("verbal_1s_response", pl.Utf8, "SLM: raw reply to the one-step answer-and-confidence prompt.", nullable=True),
        Column("verbal_1s_answer", pl.Utf8, "Answer parsed from `verbal_1s_response`; null when unparsable or truncated (`verbal_1s_finish_reason` `length`).", nullable=True),
        Column("verbal_1s_confidence", pl.Float64, "Confidence in [0, 1] parsed from `verbal_1s_response`; null when unparsable or truncated.", nullable=True),
        Column("verbal_1s_finish_reason", pl.Utf8, "SLM: `stop` or `length` (the verbalization-1s reply hit its token budget: a truncation).", nullable=True),
        Column("verbal_2s_response", pl.Utf8, "SLM: raw reply to the follow-up 'how confident are you' turn after the greedy answer.", nullable=True),
        Column("verbal_2s_confidence", pl.Float64, "Confidence in [0, 1] parsed from `verbal_2s_response`; null when unparsable.", nullable=True),
    ),
)

# ---------------------------------------------------------------- correctness
CORRECTNESS = Artifact(
    name="correctness",
    path="results/correctness/{model}/{dataset}.parquet",
    doc=(
        "Whether each greedy response is correct (rule `judge`), for SLMs and LLMs. "
        "MCQ/TF/numeric math use rule checks, MATH-500 LaTeX equivalence, free-form "
        "answers the LLM judge."
    ),
    columns=(
        Column("id", pl.Utf8, "Query id."),
        Column("correct", pl.Boolean, "Final label used downstream (judge where it applies, else rule); null only when neither could decide.", nullable=True),
        Column("label_source", pl.Utf8, "`rule` or `judge`: which check produced `correct`."),
        Column("rule_correct", pl.Boolean, "Rule-based check (exact letter/bool/number, LaTeX equivalence, or normalised match / token-F1 ≥ threshold for FF); null if not applicable.", nullable=True),
        Column("judge_correct", pl.Boolean, "LLM judge verdict; null where the judge was not run or its reply was unparsable.", nullable=True),
        Column("judge_verdict", pl.Utf8, "`correct`, `incorrect`, `unparsable`, or null where the judge was not run.", nullable=True),
        Column("judge_raw", pl.Utf8, "The judge's raw reply.", nullable=True),
        Column("verbal_1s_correct", pl.Boolean, "SLMs: whether the answer stated in the verbalization-1s reply (`generations.verbal_1s_answer`) is correct, by the same checks; the label verbal_1s confidence is evaluated against (paper §3.1 (4)). Null for LLMs, and where neither check could decide.", nullable=True),
    ),
)

AGREEMENT = Artifact(
    name="agreement",
    path="results/correctness/{model}/{dataset}.agreement.parquet",
    doc="Agreement between the rule check and the LLM judge on rows where both gave a label (rule `judge`).",
    key=("model", "dataset"),
    columns=(
        Column("model", pl.Utf8, "Model name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("n_both", pl.Int64, "Rows where both rule and judge gave a label."),
        Column("agreement", pl.Float64, "Fraction of those rows on which they agree; null if n_both = 0.", nullable=True),
        Column("cohen_kappa", pl.Float64, "Cohen's κ (sklearn) between rule and judge; null if undefined.", nullable=True),
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
        Column("trained_probe_scheme", pl.Utf8, "`train_split` (trained on the dataset's training rows) or `crossfit` (K-fold on the eval rows), or `constant` (one-class labels)."),
        Column("ood_probe", pl.Float64, "Leave-one-dataset-out probe's P(correct), trained on every other dataset of the run."),
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
AUC = Artifact(
    name="auc",
    path="results/routing/auc.parquet",
    doc="Uncertainty–correctness alignment per (slm, dataset, method) (rule `routing`).",
    key=("slm", "dataset", "method"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method."),
        Column("n", pl.Int64, "Queries with both a confidence and a correctness label."),
        Column("slm_accuracy", pl.Float64, "Mean correctness of the SLM on those queries."),
        Column("roc_auc", pl.Float64, "ROC-AUC of confidence against correctness (sklearn); null when one class.", nullable=True),
        Column("roc_auc_lo", pl.Float64, "Lower end of the 95% bootstrap CI of roc_auc.", nullable=True),
        Column("roc_auc_hi", pl.Float64, "Upper end of the 95% bootstrap CI of roc_auc.", nullable=True),
        Column("prr", pl.Float64, "Prediction rejection ratio (Malinin et al.); null when undefined.", nullable=True),
        Column("aurac", pl.Float64, "Area under the rejection–accuracy curve.", nullable=True),
    ),
)

CURVES = Artifact(
    name="curves",
    path="results/routing/curves.parquet",
    doc="Routing curves in long format (rule `routing`): accuracy of the SLM+LLM system against the routed fraction.",
    key=("slm", "llm", "dataset", "method", "curve", "ratio"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method (`random` and `oracle_upper` rows carry the method they sit beside)."),
        Column("curve", pl.Utf8, "`uq` (route the least confident), `random` (expected), `random_mc` (Monte-Carlo mean), `upper` (route exactly the SLM's errors first)."),
        Column("ratio", pl.Float64, "Routing ratio r: fraction of queries sent to the LLM."),
        Column("accuracy", pl.Float64, "System accuracy at r."),
        Column("accuracy_sd", pl.Float64, "Monte-Carlo standard deviation (random_mc only).", nullable=True),
    ),
)

PROXY = Artifact(
    name="proxy",
    path="results/routing/proxy.parquet",
    doc="Proxy routing data results (paper §4.1–4.2, App. E, G) per (slm, llm, target, method, setting, k, seed) (rule `routing`).",
    key=("slm", "llm", "target", "method", "setting", "k", "seed"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("target", pl.Utf8, "Target (held-out) dataset."),
        Column("method", pl.Utf8, "UQ method."),
        Column("setting", pl.Utf8, "`partial_in_domain` (all other datasets) or `out_of_domain` (datasets of other domains only)."),
        Column("sources", pl.List(pl.Utf8), "Datasets pooled into the proxy data."),
        Column("k", pl.Float64, "Fraction of each of the 30 bins sampled (0.1 = the paper's k = 10%)."),
        Column("seed", pl.Int64, "Sampling seed."),
        Column("n_proxy", pl.Int64, "Rows in the proxy routing data."),
        Column("rms", pl.Float64, "RMS over the ratio grid between the proxy-threshold curve and the oracle (UQ) curve on the target."),
        Column("rms_random", pl.Float64, "RMS between the expected random-routing curve and the oracle curve."),
        Column("budget_error", pl.Float64, "Mean |realised routed fraction − r| over the grid."),
        Column("w1", pl.Float64, "Wasserstein-1 distance between the pooled source and the target confidence distributions (scipy)."),
    ),
)

ROUTING_SUMMARY = Artifact(
    name="routing_summary",
    path="results/routing/summary.parquet",
    doc="Per oracle routing curve summaries from RouteLLM (rule `routing`).",
    key=("slm", "llm", "dataset", "method"),
    columns=(
        Column("slm", pl.Utf8, "SLM name."),
        Column("llm", pl.Utf8, "LLM name."),
        Column("dataset", pl.Utf8, "Dataset name."),
        Column("method", pl.Utf8, "UQ method."),
        Column("slm_accuracy", pl.Float64, "Accuracy with nothing routed."),
        Column("llm_accuracy", pl.Float64, "Accuracy with everything routed."),
        Column("apgr", pl.Float64, "Average performance gap recovered (RouteLLM): mean over r of (acc(r) − acc_slm)/(acc_llm − acc_slm); null when acc_llm = acc_slm.", nullable=True),
        Column("cpt50", pl.Float64, "Smallest r recovering 50% of the gap; null if never.", nullable=True),
        Column("cpt80", pl.Float64, "Smallest r recovering 80% of the gap; null if never.", nullable=True),
    ),
)

RELATIVE_ACCURACY = Artifact(
    name="relative_accuracy",
    path="results/routing/relative_accuracy.parquet",
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
        Column("relative_accuracy", pl.Float64, "slm_accuracy / llm_accuracy; null when llm_accuracy = 0.", nullable=True),
    ),
)

PROXY_CURVES = Artifact(
    name="proxy_curves",
    path="results/routing/proxy_curves.parquet",
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
        Column("setting", pl.Utf8, "`partial_in_domain` or `out_of_domain`."),
        Column("k", pl.Float64, "Fraction of each bin sampled (routing.k)."),
        Column("seed", pl.Int64, "Sampling seed."),
        Column("ratio", pl.Float64, "Target routing ratio r."),
        Column("threshold", pl.Float64, "r-quantile of the proxy confidences."),
        Column("realised_ratio", pl.Float64, "Fraction of target queries with confidence below the threshold."),
        Column("accuracy", pl.Float64, "Target system accuracy when routing those queries."),
        Column("oracle_accuracy", pl.Float64, "Oracle (`uq`) curve of the target at r."),
    ),
)


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (DATA, GENERATIONS, CORRECTNESS, AGREEMENT, PROBES, UQ, AUC, CURVES, RELATIVE_ACCURACY, PROXY, PROXY_CURVES, ROUTING_SUMMARY)
}

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


def _same_dtype(actual: pl.DataType, expected) -> bool:
    if expected == pl.Utf8:
        return actual in (pl.Utf8, pl.String)
    if isinstance(expected, pl.List) and isinstance(actual, pl.List):
        # a list column that is entirely null reads back as List(Null)
        return actual.inner == pl.Null or _same_dtype(actual.inner, expected.inner)
    if actual == pl.Null:
        return True
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
    extra = cols[len(expected):]
    if extra and art.extra_columns_doc is None:
        raise ArtifactSchemaError(f"{label}: undocumented columns {extra}")
    for c in art.columns:
        if not _same_dtype(df.schema[c.name], c.dtype):
            raise ArtifactSchemaError(f"{label}: column {c.name!r} has type {df.schema[c.name]}, documented {c.dtype}")
        if not c.nullable and df[c.name].null_count():
            row = df.with_row_index().filter(pl.col(c.name).is_null())["index"][0]
            raise ArtifactSchemaError(f"{label}: column {c.name!r} is null in row {row} but may not be")
    if art.extra_dtype is not None:
        for name in extra:
            if not _same_dtype(df.schema[name], art.extra_dtype):
                raise ArtifactSchemaError(f"{label}: column {name!r} has type {df.schema[name]}, documented {art.extra_dtype}")
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
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
