"""Answer parsing, rule-based correctness and verbalized-confidence parsing.

Pure functions shared by the inference, judge and uq stages. Every parser first
removes ``<think>…</think>`` reasoning (:func:`strip_think`) and any turn the model
invents after its answer (``Question: …``, ``<|im_end|>``; :func:`clean_reply`).

- :func:`parse_answer` / :func:`is_correct`: one entry point per answer format
  (``letter``, ``bool``, ``number``, ``latex``, ``text``);
- :func:`parse_option`, :func:`parse_bool`, :func:`parse_number`,
  :func:`extract_math_answer` and :func:`math_equivalent` (math-verify);
- :func:`normalize_text`, :func:`token_f1`, :func:`best_f1`, :func:`exact_match`
  (SQuAD, Rajpurkar et al., 2016);
- :func:`parse_confidence`, :func:`parse_verbal_1s`: verbalized confidence
  (paper §3.1, verbalization-1s/2s).
"""

from .answers import (
    ANSWER_FORMATS,
    InvalidGoldError,
    UnknownAnswerFormatError,
    canonical_bool,
    is_correct,
    numbers_equal,
    parse_answer,
    parse_text_answer,
)
from .boolean import parse_bool
from .confidence import parse_confidence, parse_verbal_1s
from .mathexpr import extract_math_answer, math_equivalent
from .numbers import format_number, parse_number
from .options import InvalidChoicesError, normalize_choices, parse_option
from .text import best_f1, exact_match, normalize_text, token_f1
from .think import clean_reply, strip_think

__all__ = [
    "ANSWER_FORMATS",
    "InvalidChoicesError",
    "InvalidGoldError",
    "UnknownAnswerFormatError",
    "best_f1",
    "canonical_bool",
    "clean_reply",
    "exact_match",
    "extract_math_answer",
    "format_number",
    "is_correct",
    "math_equivalent",
    "normalize_choices",
    "normalize_text",
    "numbers_equal",
    "parse_answer",
    "parse_bool",
    "parse_confidence",
    "parse_number",
    "parse_option",
    "parse_text_answer",
    "parse_verbal_1s",
    "strip_think",
    "token_f1",
]
