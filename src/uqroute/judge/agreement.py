"""Agreement between the rule check and the LLM judge (the ``agreement`` artifact).

On rows where both gave a label: the fraction on which they agree, and Cohen's κ
(Cohen, 1960) from :func:`sklearn.metrics.cohen_kappa_score`. κ is undefined
(reported as null) when there are no such rows or when chance agreement is 1
(both raters used one and the same label on every row).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

__all__ = ["rule_judge_agreement"]


def rule_judge_agreement(
    rule: Sequence[bool | None], judge: Sequence[bool | None]
) -> tuple[int, float | None, float | None]:
    """``(n_both, agreement, cohen_kappa)`` over the positions where neither label is None."""
    if len(rule) != len(judge):
        raise ValueError(f"rule and judge labels differ in length: {len(rule)} vs {len(judge)}")
    pairs = [(bool(r), bool(j)) for r, j in zip(rule, judge) if r is not None and j is not None]
    n = len(pairs)
    if n == 0:
        return 0, None, None
    agreement = sum(r == j for r, j in pairs) / n
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        # undefined (chance agreement 1, e.g. one label on every row): sklearn warns and returns nan
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score([r for r, _ in pairs], [j for _, j in pairs], labels=[False, True]))
    return n, agreement, (kappa if math.isfinite(kappa) else None)
