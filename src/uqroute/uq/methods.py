"""The UQ methods: each a pure function ``joined frame -> confidence per row``.

Conventions (docs/uq.md has the full table):
- higher = more confident for every method; uncertainties are negated (or complemented
  where the paper defines the confidence that way);
- ``NaN`` = the method cannot score that row (written as null in the ``uq`` artifact);
- token lists may hold null entries (APIs that give no logprob for a token); those
  positions are skipped;
- the token-level methods score the tokens of the final answer only, ``tokens[answer_start:]``,
  when the frame has an ``answer_start`` column (generations of a reasoning model hold a
  ``<think>`` trace before the answer); without the column (older artifacts) every generated
  token is scored, and a row whose ``answer_start`` is null is scored on all its tokens;
- the end-of-sequence token is not among the scored tokens: the paper's "all generated tokens"
  are read as the tokens of the response y_1..y_N, and the EOS token that ends it is not one of
  them (nor is it recorded: inference stops on it, and API backends return no log-probability
  for it). LM-Polygraph scores it; docs/uq.md, "Differences from LM-Polygraph", says what that
  changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from .registry import register
from .similarity import (
    degree_uncertainty,
    eccentricity_uncertainty,
    eigv_uncertainty,
    jaccard_matrix,
)

NAN = float("nan")
OPTION_TASKS = ("MCQ", "TF")


# ------------------------------------------------------------------ helpers
def _finite(values: Sequence[float | None] | None) -> np.ndarray:
    """The non-null, non-NaN entries of a per-token list (−inf is kept: probability 0)."""
    if values is None:
        return np.empty(0)
    arr = np.array([v for v in values if v is not None], dtype=np.float64)
    return arr[~np.isnan(arr)]


def _per_row(values: list, fn: Callable[[np.ndarray], float]) -> np.ndarray:
    """Apply ``fn`` to each row's per-token array; NaN where the row has no usable entries."""
    out = np.full(len(values), NAN)
    for i, v in enumerate(values):
        arr = _finite(v)
        if arr.size:
            out[i] = fn(arr)
    return out


#: The generations column with the index of the final answer's first token (uqroute.parsing.answer_start).
ANSWER_START = "answer_start"


def answer_tokens(frame: pl.DataFrame, name: str) -> list:
    """The per-token lists of column ``name`` (``token_logprobs`` or ``token_entropies``) cut to the
    final answer, ``values[answer_start:]``, when ``frame`` has an ``answer_start`` column;
    unchanged otherwise. A null ``answer_start`` keeps the whole list; one outside
    ``[0, len(values)]`` raises ``ValueError`` naming the row's id."""
    values = frame[name].to_list()
    if ANSWER_START not in frame.columns:
        return values
    starts = frame[ANSWER_START].to_list()
    ids = frame["id"].to_list() if "id" in frame.columns else list(range(frame.height))
    out = []
    for row_id, v, s in zip(ids, values, starts):
        if v is None or s is None:
            out.append(v)
            continue
        if not 0 <= int(s) <= len(v):
            raise ValueError(f"{ANSWER_START} = {s} of row {row_id!r} is outside its {len(v)} {name}")
        out.append(v[int(s) :])
    return out


def _column(frame: pl.DataFrame, name: str) -> np.ndarray:
    """A float column as a numpy array with NaN for nulls."""
    return frame[name].cast(pl.Float64).fill_null(NAN).to_numpy().astype(np.float64, copy=True)


def mean_token_prob(token_logprobs: list) -> np.ndarray:
    """Per row: (1/N) Σ_i exp(ln p(y_i)) over the generated tokens."""
    return _per_row(token_logprobs, lambda lp: float(np.mean(np.exp(lp))))


def normalize_answer(answer: str | None) -> str | None:
    """Canonical form of a parsed answer for equality: trimmed, case-folded, single spaces;
    numbers compared by value (``"1,000"`` = ``"1000.0"``). ``None`` stays ``None``."""
    if answer is None:
        return None
    text = " ".join(str(answer).split()).casefold()
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return text
    return repr(value) if math.isfinite(value) else text


def _sample_graph_method(uncertainty: Callable[[np.ndarray], float], sign: float, offset: float = 0.0):
    """Confidence = offset + sign · uncertainty(Jaccard graph of the samples); NaN without samples."""

    def fn(frame: pl.DataFrame) -> np.ndarray:
        out = np.full(frame.height, NAN)
        for i, samples in enumerate(frame["samples"].to_list()):
            if samples:
                out[i] = offset + sign * uncertainty(jaccard_matrix(samples))
        return out

    return fn


# ------------------------------------------------------------------ token probabilities
@register(
    "avg_token_prob",
    columns=("task_type", "option_prob", "token_logprobs"),
    family="token_probability",
    source="Manakul et al. 2023, SelfCheckGPT (paper ref. [53]); paper §3.1 (1)",
)
def avg_token_prob(frame: pl.DataFrame) -> np.ndarray:
    """Average token probability (paper §3.1 (1); Manakul et al. 2023).

    MCQ/TF: the probability of the token that states the chosen option (``option_prob``).
    FF: the mean probability of the generated tokens, (1/N) Σ_i p(y_i).
    An MCQ/TF row without an option token (``option_prob`` null: no option was stated)
    falls back to the mean token probability, so that such (usually wrong) rows are still
    scored rather than silently dropped.
    """
    option = _column(frame, "option_prob")
    mean_prob = mean_token_prob(answer_tokens(frame, "token_logprobs"))
    is_option_task = frame["task_type"].is_in(OPTION_TASKS).to_numpy()
    use_option = is_option_task & ~np.isnan(option)
    return np.where(use_option, option, mean_prob)


@register(
    "perplexity",
    columns=("token_logprobs",),
    family="token_probability",
    source="Fomicheva et al. 2020, 'Unsupervised Quality Estimation for NMT' (paper ref. [21]); paper §3.1 (2)",
)
def perplexity(frame: pl.DataFrame) -> np.ndarray:
    """Inverse perplexity (Fomicheva et al. 2020; paper §3.1 (2)).

    PPL = exp(−(1/N) Σ_i ln p(y_i)) over the N generated tokens of the greedy response;
    confidence = 1/PPL = exp((1/N) Σ_i ln p(y_i)), the geometric mean token probability, in [0, 1].
    (The paper prints exp((1/N) Σ ln p) as the perplexity and takes its reciprocal; with the
    standard sign, as here, the confidence is higher for likelier responses.)
    """
    return _per_row(answer_tokens(frame, "token_logprobs"), lambda lp: float(np.exp(np.mean(lp))))


@register(
    "min_token_prob",
    columns=("token_logprobs",),
    family="token_probability",
    source="Manakul et al. 2023, SelfCheckGPT, 'Max(−log p)' baseline",
)
def min_token_prob(frame: pl.DataFrame) -> np.ndarray:
    """Probability of the least likely generated token, min_i p(y_i)
    (the negated Max(−log p) of Manakul et al. 2023, as a probability)."""
    return _per_row(answer_tokens(frame, "token_logprobs"), lambda lp: float(np.exp(np.min(lp))))


@register(
    "sequence_logprob",
    columns=("token_logprobs",),
    family="token_probability",
    source="Fadeeva et al. 2023, LM-Polygraph, 'Maximum Sequence Probability'",
)
def sequence_logprob(frame: pl.DataFrame) -> np.ndarray:
    """Log-probability of the whole greedy response, Σ_i ln p(y_i) (LM-Polygraph's Maximum
    Sequence Probability, negated uncertainty). Unlike perplexity it is not length-normalised."""
    return _per_row(answer_tokens(frame, "token_logprobs"), lambda lp: float(np.sum(lp)))


@register(
    "mean_token_entropy",
    columns=("token_entropies",),
    family="token_probability",
    source="Malinin & Gales 2021, 'Uncertainty Estimation in Autoregressive Structured Prediction'",
)
def mean_token_entropy(frame: pl.DataFrame) -> np.ndarray:
    """Negated mean predictive entropy, −(1/N) Σ_i H(p(·|y_<i, x)) over generated positions
    (Malinin & Gales 2021; nats). 0 is the maximum (every step deterministic)."""
    return _per_row(answer_tokens(frame, "token_entropies"), lambda h: -float(np.mean(h)))


@register(
    "max_token_entropy",
    columns=("token_entropies",),
    family="token_probability",
    source="Malinin & Gales 2021, 'Uncertainty Estimation in Autoregressive Structured Prediction'",
)
def max_token_entropy(frame: pl.DataFrame) -> np.ndarray:
    """Negated largest per-position entropy, −max_i H(p(·|y_<i, x)) (Malinin & Gales 2021; nats)."""
    return _per_row(answer_tokens(frame, "token_entropies"), lambda h: -float(np.max(h)))


@register(
    "ptrue",
    columns=("ptrue",),
    family="token_probability",
    source="Kadavath et al. 2022, 'Language Models (Mostly) Know What They Know'; paper §3.1 (3)",
)
def ptrue(frame: pl.DataFrame) -> np.ndarray:
    """P(True) (Kadavath et al. 2022): after its answer the model is asked whether the answer
    is correct; p(True) / (p(True) + p(False)) of the next token, as computed by inference.

    Normalised over the two answer tokens, as Kadavath et al. read it. LM-Polygraph's ``PTrue``
    reports the uncertainty −ln p(True) over the whole vocabulary instead; the two rank queries
    alike only when p(True) + p(False) is the same for every query (docs/uq.md)."""
    return _column(frame, "ptrue")


# ------------------------------------------------------------------ verbalized confidence
@register(
    "verbal_1s",
    columns=("verbal_1s_confidence",),
    family="verbalized",
    source="Xiong et al. 2024 / Tian et al. 2023 (paper refs. [76, 69]); paper §3.1 (4)",
    answer="verbal_1s",
)
def verbal_1s(frame: pl.DataFrame) -> np.ndarray:
    """Verbalized confidence stated together with the answer in one reply (Tian et al. 2023;
    Xiong et al. 2024). Null where unparsable: the paper drops those queries for this method."""
    return _column(frame, "verbal_1s_confidence")


@register(
    "verbal_2s",
    columns=("verbal_2s_confidence",),
    family="verbalized",
    source="Tian et al. 2023, 'Just Ask for Calibration' (paper ref. [69]); paper §3.1 (5)",
)
def verbal_2s(frame: pl.DataFrame) -> np.ndarray:
    """Verbalized confidence asked for in a second turn after the greedy answer (Tian et al.
    2023). Null where unparsable: the paper drops those queries for this method."""
    return _column(frame, "verbal_2s_confidence")


# ------------------------------------------------------------------ output consistency
_jaccard_degree = _sample_graph_method(degree_uncertainty, sign=-1.0, offset=1.0)


@register(
    "jaccard_degree",
    columns=("samples",),
    family="consistency",
    source="Lin, Trivedi & Sun 2023, 'Generating with Confidence' (paper ref. [47]); paper §3.1 (6)",
)
def jaccard_degree(frame: pl.DataFrame) -> np.ndarray:
    """Degree-matrix confidence over the m samples' Jaccard graph (Lin et al. 2023).

    W_ij = Jaccard similarity of the lower-cased word sets of samples i and j (W_ii = 1),
    D = diag(W·1). Lin et al. define the *uncertainty* U_Deg = trace(mI − D)/m², which grows
    as samples disagree; the paper (§3.1 (6)) prints it as the confidence. Higher must mean
    more confident, so the confidence is C = 1 − U_Deg = ΣW/m² ∈ [1/m, 1]
    (1 for identical samples). Null for rows without samples.
    """
    return _jaccard_degree(frame)


_eigv = _sample_graph_method(eigv_uncertainty, sign=-1.0)


@register(
    "eigv",
    columns=("samples",),
    family="consistency",
    source="Lin, Trivedi & Sun 2023, 'Generating with Confidence', U_EigV",
)
def eigv(frame: pl.DataFrame) -> np.ndarray:
    """Negated sum of Laplacian eigenvalue gaps, −Σ_k max(0, 1 − λ_k), λ_k the eigenvalues of
    L = I − D^{-1/2} W D^{-1/2} on the samples' Jaccard graph (Lin et al. 2023, U_EigV).
    ∈ [−m, −1]: −1 for identical samples."""
    return _eigv(frame)


_eccentricity = _sample_graph_method(eccentricity_uncertainty, sign=-1.0)


@register(
    "eccentricity",
    columns=("samples",),
    family="consistency",
    source="Lin, Trivedi & Sun 2023, 'Generating with Confidence', U_Ecc",
)
def eccentricity(frame: pl.DataFrame) -> np.ndarray:
    """Negated eccentricity, −‖V − 1·v̄ᵀ‖_F, V the eigenvectors of the normalized Laplacian with
    eigenvalue < 0.9 (Lin et al. 2023, U_Ecc; LM-Polygraph's threshold). ∈ [−√(m−1), 0]:
    0 for identical samples."""
    return _eccentricity(frame)


@register(
    "num_sets",
    columns=("sample_answers",),
    family="consistency",
    source="Lin, Trivedi & Sun 2023, U_NumSet; Kuhn, Gal & Farquhar 2023, semantic sets",
)
def num_sets(frame: pl.DataFrame) -> np.ndarray:
    """Negated number of distinct answers among the m samples (Lin et al. 2023 U_NumSet; Kuhn
    et al. 2023). Samples are grouped by their parsed answer (normalised, see
    :func:`normalize_answer`) instead of by NLI; an unparsable sample is a set of its own.
    ∈ [−m, −1]: −1 when all samples give the same answer. Null for rows without samples."""
    out = np.full(frame.height, NAN)
    for i, answers in enumerate(frame["sample_answers"].to_list()):
        if answers:
            norm = [normalize_answer(a) for a in answers]
            out[i] = -float(len({a for a in norm if a is not None}) + sum(a is None for a in norm))
    return out


@register(
    "sample_agreement",
    columns=("parsed_answer", "sample_answers"),
    family="consistency",
    source="Wang et al. 2023, 'Self-Consistency Improves Chain of Thought Reasoning'",
)
def sample_agreement(frame: pl.DataFrame) -> np.ndarray:
    """Fraction of the m samples whose parsed answer equals the greedy parsed answer
    (self-consistency vote share of the greedy answer; Wang et al. 2023). An unparsable
    greedy answer agrees with nothing (0.0). Null for rows without samples."""
    out = np.full(frame.height, NAN)
    greedy = frame["parsed_answer"].to_list()
    for i, answers in enumerate(frame["sample_answers"].to_list()):
        if answers:
            g = normalize_answer(greedy[i])
            out[i] = 0.0 if g is None else float(np.mean([normalize_answer(a) == g for a in answers]))
    return out


# ------------------------------------------------------------------ probes
@register(
    "trained_probe",
    columns=("trained_probe",),
    family="probe",
    source="Azaria & Mitchell 2023; Kadavath et al. 2022; Mahaut et al. 2024 (paper refs. [4, 39, 53]); paper §3.1 (7)",
)
def trained_probe(frame: pl.DataFrame) -> np.ndarray:
    """In-domain MLP probe's P(correct) from the hidden state (``probes`` artifact; see
    :mod:`uqroute.probes`)."""
    return _column(frame, "trained_probe")


@register(
    "ood_probe",
    columns=("ood_probe",),
    family="probe",
    source="Kadavath et al. 2022; Mahaut et al. 2024 (paper refs. [39, 53]); paper §3.1 (8)",
)
def ood_probe(frame: pl.DataFrame) -> np.ndarray:
    """Leave-one-dataset-out MLP probe's P(correct) (``probes`` artifact; see :mod:`uqroute.probes`)."""
    return _column(frame, "ood_probe")
