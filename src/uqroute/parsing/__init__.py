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
  (paper §3.1, verbalization-1s/2s); :func:`strip_verbal_confidence`;
- :func:`normalize_negations`, :func:`polarities`: negation-aware polarity (contractions,
  double negatives, hedges), under ``parse_bool`` and the judge's verdict parser;
- reasoning traces and truncation: :func:`final_answer_text`, :func:`prompt_opens_think`,
  :func:`think_prefill`, :func:`is_truncated`; on generated tokens :func:`answer_start` and
  :func:`find_option_token` (which token states the option, in the final answer only).

The parsers take ``finish_reason`` and ``think_open`` keywords: a reply cut off by the token
budget (``finish_reason == "length"``) parses to ``None``, and ``think_open`` says that the
prompt opened a ``<think>`` block.
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
from .confidence import parse_confidence, parse_verbal_1s, strip_verbal_confidence
from .mathexpr import extract_math_answer, math_equivalent
from .negation import normalize_negations, polarities
from .numbers import format_number, parse_number
from .options import InvalidChoicesError, normalize_choices, parse_option
from .text import best_f1, exact_match, normalize_text, token_f1
from .think import (
    CONTENT_FILTER,
    EMPTY_THINK,
    TRUNCATED,
    clean_reply,
    final_answer_text,
    is_truncated,
    prompt_opens_think,
    strip_think,
    think_prefill,
)
from .tokens import answer_start, find_option_token

__all__ = [
    "ANSWER_FORMATS",
    "EMPTY_THINK",
    "TRUNCATED",
    "CONTENT_FILTER",
    "answer_start",
    "final_answer_text",
    "find_option_token",
    "is_truncated",
    "normalize_negations",
    "polarities",
    "prompt_opens_think",
    "strip_verbal_confidence",
    "think_prefill",
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
