"""Uncertainty quantification: the UQ method registry and rule ``uq``.

``METHODS`` maps each method name to a :class:`UQMethod` (a pure function over the
joined data + generations + probes frame, the columns it reads, its family and
source paper). ``run_uq`` writes the ``uq`` artifact. docs/uq.md lists every method
with its formula and sign convention.
"""

from . import methods as _methods  # noqa: F401  (registers the methods)
from .checks import config_problems
from .methods import normalize_answer
from .registry import ANSWER_LABELS, METHODS, UnknownMethodError, UQMethod, get_methods, probe_methods, register
from .run import UQInputError, join_inputs, run_uq, score_frame
from .similarity import (
    degree_uncertainty,
    eccentricity_uncertainty,
    eigv_uncertainty,
    jaccard,
    jaccard_matrix,
)

__all__ = [
    "ANSWER_LABELS",
    "METHODS",
    "UQMethod",
    "UnknownMethodError",
    "UQInputError",
    "get_methods",
    "probe_methods",
    "config_problems",
    "register",
    "run_uq",
    "score_frame",
    "join_inputs",
    "normalize_answer",
    "jaccard",
    "jaccard_matrix",
    "degree_uncertainty",
    "eigv_uncertainty",
    "eccentricity_uncertainty",
]
