"""Similarity-graph uncertainty over m sampled responses (Lin, Trivedi & Sun 2023).

Lin, Trivedi & Sun, "Generating with Confidence: Uncertainty Quantification for
Black-box Large Language Models" (TMLR 2024, arXiv:2305.19187) build a weighted graph
over the m sampled responses of one query, with edge weights W_ij = a pairwise
similarity (here: Jaccard similarity of word sets, W_ii = 1), and read uncertainty off
the graph: the degree matrix (``U_Deg``), the eigenvalues of the graph Laplacian
(``U_EigV``), and the eccentricity of the spectral embedding (``U_Ecc``).

These functions return the *uncertainties* as defined there; the UQ methods in
:mod:`uqroute.uq.methods` turn them into confidences. Given the same similarity matrix W, they
equal LM-Polygraph's ``DegMat``, ``EigValLaplacian`` and ``Eccentricity`` estimators (Fadeeva et
al. 2023) to machine precision. W itself is *not* always LM-Polygraph's; two choices differ
(docs/uq.md, "Differences from LM-Polygraph"):

* **two empty answers**: :func:`jaccard` gives 1.0 (two identical, empty replies agree);
  LM-Polygraph's Jaccard similarity gives 0.0 for them;
* **reasoning traces**: samples are compared by their text after ``<think>…</think>``
  (:func:`visible_text`); LM-Polygraph compares the raw generated text.

Without empty samples and without ``<think>`` tags, W is the same in both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..parsing import strip_think

__all__ = [
    "visible_text",
    "word_set",
    "jaccard",
    "jaccard_matrix",
    "degree_uncertainty",
    "eigv_uncertainty",
    "eccentricity_uncertainty",
    "ECCENTRICITY_EIGVAL_THRESHOLD",
]

# Eigenvectors of L with eigenvalue below this form the spectral embedding (Lin et al. 2023;
# LM-Polygraph's default ``thres=0.9``).
ECCENTRICITY_EIGVAL_THRESHOLD = 0.9

_TAG = re.compile(r"</?think>", re.IGNORECASE)


def visible_text(text: str | None) -> str:
    """The text a sample is compared by: the reply without ``<think>…</think>`` reasoning
    (:func:`uqroute.parsing.strip_think`). A sample that is *only* reasoning (cut off by
    ``sample_max_new_tokens`` before it answered) is compared by its reasoning text instead,
    so that truncated samples do not all count as identical empty replies."""
    if text is None:
        return ""
    answer = strip_think(text)
    return answer if answer else _TAG.sub(" ", text)


def word_set(text: str | None) -> frozenset[str]:
    """Lower-cased whitespace-separated words of the visible text (as in Lin et al.'s code)."""
    return frozenset(visible_text(text).lower().split())


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; two empty sets are identical (1.0: our choice; LM-Polygraph gives 0.0)."""
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


def jaccard_matrix(samples: Sequence[str | None]) -> np.ndarray:
    """Symmetric m×m matrix W of pairwise Jaccard similarities of word sets, W_ii = 1."""
    sets = [word_set(s) for s in samples]
    m = len(sets)
    w = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            w[i, j] = w[j, i] = jaccard(sets[i], sets[j])
    return w


def degree_uncertainty(w: np.ndarray) -> float:
    """U_Deg = trace(mI − D)/m² with D = diag(W·1) (Lin et al. 2023, Eq. for U_Deg).

    Equals 1 − ΣW/m²: 0 when all samples are identical, 1 − 1/m when no two share a word.
    """
    m = w.shape[0]
    d = np.diag(w.sum(axis=1))
    return float(np.trace(m * np.eye(m) - d) / m**2)


def _normalized_laplacian(w: np.ndarray) -> np.ndarray:
    """L = I − D^{-1/2} W D^{-1/2} (degrees are ≥ 1 since W_ii = 1)."""
    inv_sqrt = 1.0 / np.sqrt(w.sum(axis=1))
    return np.eye(w.shape[0]) - inv_sqrt[:, None] * w * inv_sqrt[None, :]


def eigv_uncertainty(w: np.ndarray) -> float:
    """U_EigV = Σ_k max(0, 1 − λ_k), λ_k the eigenvalues of the normalized Laplacian L.

    A continuous count of semantic sets (Lin et al. 2023): 1 for identical samples, m for
    samples that share nothing.
    """
    lam = np.linalg.eigvalsh(_normalized_laplacian(w))
    return float(np.clip(1.0 - lam, 0.0, None).sum())


def eccentricity_uncertainty(w: np.ndarray, threshold: float = ECCENTRICITY_EIGVAL_THRESHOLD) -> float:
    """U_Ecc = ‖V − 1·v̄ᵀ‖_F (Lin et al. 2023), V the eigenvectors of L with eigenvalue < threshold.

    Row j of V embeds sample j; U_Ecc is how far the embeddings spread around their mean:
    0 for identical samples, √(m − 1) for samples that share nothing. The value does not
    depend on the choice of basis within a degenerate eigenspace (it is √tr(Vᵀ(I − J/m)V)).
    """
    lam, vec = np.linalg.eigh(_normalized_laplacian(w))
    v = vec[:, lam < threshold]
    if v.shape[1] == 0:
        return 0.0
    return float(np.linalg.norm(v - v.mean(axis=0, keepdims=True), ord="fro"))
