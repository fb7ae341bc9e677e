"""Uncertainty–correctness alignment: ROC-AUC with a bootstrap CI, PRR and AURAC.

* ROC-AUC of the confidence as a score for "the SLM is correct" (paper §3.2, Figure 1):
  the Mann–Whitney statistic (ties count one half), identical to
  :func:`sklearn.metrics.roc_auc_score` (tested), computed on multiplicity weights so that
  the point estimate and all bootstrap resamples are scored in one vectorised pass
  (sklearn's per-call validation would dominate the whole evaluation).
* A seeded percentile-bootstrap 95% CI.
* Rejection–accuracy curve (Malinin et al., "Uncertainty in Gradient Boosting via
  Ensembles", ICLR 2021; Malinin & Gales 2019): reject the ⌈ρ·n⌉ least-confident queries and
  count them as correct (an oracle answers them), keep the SLM's answer on the rest.
  AURAC is the area under it over ρ ∈ [0, 1] (every integer count, trapezoid), and the
  prediction rejection ratio is PRR = (AURAC − AURAC_random) / (AURAC_oracle − AURAC_random),
  where *oracle* rejects exactly the errors first and *random* is the expected curve.
* The LM-Polygraph variant (:func:`prr_polygraph`; Fadeeva et al., "LM-Polygraph", EMNLP 2023
  demo; ``lm_polygraph/ue_metrics/pred_rej_area.py`` and ``utils/manager.py``): the area is the
  mean, over 0…n−1 rejected queries, of the accuracy of the queries *kept* (rejected ones are
  discarded, not counted as correct), normalised with the same oracle/random formula.

Every value column of the ``auc`` artifact besides ROC-AUC and its CI comes from
:data:`ALIGNMENT_METRICS`: a new metric is one function ``(conf, correct) -> float`` there
plus one column in ``uqroute.schema.AUC``.
"""

from __future__ import annotations

import warnings

import numpy as np

from .curves import expected_routed_sum

__all__ = [
    "OneClassWarning",
    "roc_auc",
    "weighted_auc",
    "bootstrap_auc_ci",
    "bootstrap_weights",
    "rejection_curve",
    "aurac",
    "prr",
    "prediction_rejection_area",
    "prr_polygraph",
    "ALIGNMENT_METRICS",
    "alignment",
]


class OneClassWarning(UserWarning):
    """Correctness labels hold a single class, so AUC and PRR are undefined."""


def _one_class(s: np.ndarray) -> bool:
    return s.size == 0 or s.min() == s.max()


def roc_auc(conf, slm_correct, *, where: str = "") -> float:
    """ROC-AUC of ``conf`` against ``slm_correct`` (sklearn); NaN with a warning for one-class labels."""
    s = np.asarray(slm_correct, dtype=np.float64)
    if _one_class(s):
        warnings.warn(
            f"{where or 'alignment'}: correctness has a single class ({s.size} queries); ROC-AUC is undefined",
            OneClassWarning,
            stacklevel=2,
        )
        return float("nan")
    from sklearn.metrics import roc_auc_score  # deferred: the start-up checks import this package

    return float(roc_auc_score(s.astype(bool), np.asarray(conf, dtype=np.float64)))


def weighted_auc(conf, slm_correct, weights) -> np.ndarray:
    """Mann–Whitney AUC with per-query multiplicities, for many weight vectors at once.

    ``weights`` has shape ``(B, n)``; returns ``(B,)`` with NaN where a row has one class.
    AUC = Σ_pos w_i (W_neg(c < c_i) + ½ W_neg(c = c_i)) / (W_pos · W_neg).
    """
    conf = np.asarray(conf, dtype=np.float64)
    s = np.asarray(slm_correct, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(conf, kind="stable")
    c, s, w = conf[order], s[order], w[:, order]
    starts = np.flatnonzero(np.concatenate([[True], c[1:] != c[:-1]]))
    pos, neg = w * s, w * ~s  # (B, n)
    if starts.size < c.size:  # ties: sum weights per group of equal confidence → (B, G)
        pos, neg = np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)
    neg_before = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_before + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def bootstrap_weights(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities of each of ``n`` queries in ``draws`` bootstrap resamples, shape ``(draws, n)``."""
    idx = rng.integers(0, n, size=(draws, n))
    return np.bincount((idx + np.arange(draws)[:, None] * n).ravel(), minlength=draws * n).reshape(draws, n)


def bootstrap_auc_ci(
    conf, slm_correct, draws: int | np.ndarray, rng: np.random.Generator | None = None, level: float = 0.95
):
    """Percentile bootstrap CI of the ROC-AUC: ``(lo, hi)``, NaN when undefined or without draws.

    ``draws`` is a number of resamples drawn from ``rng`` or a ``(draws, n)`` weight matrix
    from :func:`bootstrap_weights` (shared between methods scored on the same queries).
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    n = s.size
    weights = draws if isinstance(draws, np.ndarray) else None
    if (weights is None and draws <= 0) or (weights is not None and weights.shape[0] == 0) or _one_class(s):
        return float("nan"), float("nan")
    if weights is None:
        weights = bootstrap_weights(n, int(draws), rng)
    aucs = weighted_auc(conf, s, weights)
    aucs = aucs[~np.isnan(aucs)]
    if aucs.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(aucs, [alpha, 1 - alpha])
    return float(lo), float(hi)


def rejection_curve(conf, slm_correct) -> tuple[np.ndarray, np.ndarray]:
    """Rejection–accuracy curve at every count: ``(rho, acc)`` with rho = m/n, m = 0..n.

    Rejected (least-confident, ties averaged) queries count as correct.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    n = s.size
    counts = np.arange(n + 1)
    acc = s.mean() + expected_routed_sum(conf, 1.0 - s, counts) / n
    return counts / n, acc


def aurac(conf, slm_correct) -> float:
    """Area under the rejection–accuracy curve (trapezoid over every count)."""
    rho, acc = rejection_curve(conf, slm_correct)
    return float(np.trapezoid(acc, rho))


def prr(conf, slm_correct) -> float:
    """Prediction rejection ratio (Malinin et al.); NaN when the oracle and random areas coincide."""
    s = np.asarray(slm_correct, dtype=np.float64)
    if _one_class(s):
        return float("nan")
    ar = aurac(conf, s)
    ar_orc = aurac(s, s)
    rho, _ = rejection_curve(s, s)
    ar_rnd = float(np.trapezoid(s.mean() + rho * (1 - s.mean()), rho))
    den = ar_orc - ar_rnd
    return float((ar - ar_rnd) / den) if den > 1e-12 else float("nan")


def prediction_rejection_area(conf, slm_correct) -> float:
    """LM-Polygraph's PredictionRejectionArea for confidences ``conf`` (higher = more confident).

    PRA = (1/n) Σ_{j=0}^{n−1} mean(s over the n − j most confident queries): the accuracy of the
    queries kept after rejecting the j least confident, averaged over j (rejected queries are
    discarded). Ties in ``conf`` are averaged (LM-Polygraph breaks them by ``numpy.argsort``
    order), so the two agree exactly when no confidences tie.

    One-class labels give 0.5, as LM-Polygraph does: its ``normalize`` min–max scales the target
    and, when min = max, widens the range to [min − 1, max + 1], which maps every label to 0.5
    (whatever the class). Empty input gives NaN.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    n = s.size
    if n == 0:
        return float("nan")
    if _one_class(s):
        return 0.5
    rejected = np.arange(n)
    kept_sum = s.sum() - expected_routed_sum(conf, s, rejected)
    return float(np.mean(kept_sum / (n - rejected)))


def prr_polygraph(conf, slm_correct) -> float:
    """LM-Polygraph's normalised PRR ("prr_normalized"): (PRA − PRA_random) / (PRA_oracle − PRA_random).

    PRA_oracle is the area of the confidence c = s; PRA_random is its exact expectation over
    random orders, mean(s) (LM-Polygraph: the mean of 1000 shuffles with seed 42). NaN for
    one-class labels, where oracle, random and every confidence give the same area: LM-Polygraph's
    ``normalize_metric`` then skips the normalisation and returns the unnormalised area, 0.5
    (:func:`prediction_rejection_area`); a normalised ratio of 0.5 would read as "halfway to the
    oracle", so we keep it undefined.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    if _one_class(s):
        return float("nan")
    area, oracle, rnd = prediction_rejection_area(conf, s), prediction_rejection_area(s, s), float(s.mean())
    den = oracle - rnd
    return float((area - rnd) / den) if den > 1e-12 else float("nan")


#: Alignment metrics ``(conf, correct) -> float`` written to the ``auc`` artifact, one column each.
ALIGNMENT_METRICS = {"prr": prr, "prr_polygraph": prr_polygraph, "aurac": aurac}


def alignment(
    conf, slm_correct, *, bootstrap: int | np.ndarray, rng: np.random.Generator | None = None, where: str = ""
) -> dict:
    """All alignment numbers for one (SLM, dataset, method): the `auc` artifact's value columns.

    The point ROC-AUC is the Mann–Whitney statistic of :func:`weighted_auc` with unit
    weights, which equals :func:`sklearn.metrics.roc_auc_score` (tested) at a fraction of
    its per-call overhead; ``bootstrap`` is a number of resamples or a weight matrix.
    """
    s = np.asarray(slm_correct, dtype=np.float64)
    if _one_class(s):
        auc = roc_auc(conf, s, where=where)  # NaN + OneClassWarning
    else:
        auc = float(weighted_auc(conf, s, np.ones((1, s.size)))[0])
    lo, hi = bootstrap_auc_ci(conf, s, bootstrap, rng)
    row = {"n": int(s.size), "slm_accuracy": float(s.mean()), "roc_auc": auc, "roc_auc_lo": lo, "roc_auc_hi": hi}
    row.update({name: fn(conf, s) for name, fn in ALIGNMENT_METRICS.items()})
    return row
