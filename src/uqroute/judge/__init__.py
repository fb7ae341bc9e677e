"""Correctness stage (rule ``judge``): rule checks plus an LLM judge for free-form answers.

* :func:`run_judge` — the rule's entry point (:mod:`.run`);
* :func:`judge_messages` / :data:`JUDGE_TEMPLATE` — the judge prompt (Zheng et al., 2023 style);
* :func:`ask_verdicts`, :class:`TokenChoiceJudge`, :data:`VERDICT_FORMAT` — structured verdicts (:mod:`.ask`):
  a JSON schema for API judges, a Yes/No next-token choice (with its probability) for local ones;
* :func:`parse_verdict` — ``correct`` / ``incorrect`` / ``unparsable`` from a raw reply (negation- and
  hedge-aware): the text fallback for a judge that gives no structured verdict;
* :func:`rule_judge_agreement` — agreement fraction and Cohen's κ (sklearn);
* :func:`judge_in_scope` / :data:`SCOPES` — which answers ``judge.scope`` gives to the LLM judge;
* :func:`quality_row` — the ``quality`` artifact: truncated and unparsable counts, text-verdict
  fallbacks and unsure verdicts.

See docs/judge.md.
"""

from .agreement import rule_judge_agreement
from .ask import (
    METHODS,
    STRUCTURED,
    TEXT,
    TOKEN_CHOICE,
    UNSURE,
    VERDICT_FORMAT,
    VERDICT_SCHEMA,
    Judged,
    TokenChoiceJudge,
    ask_verdicts,
    verdict_from_p,
)
from .prompt import JSON_INSTRUCTION, JUDGE_TEMPLATE, TEXT_INSTRUCTION, judge_messages, judge_prompt
from .run import (
    DEFAULT_SCOPE,
    SCOPES,
    TRUNCATED_SOURCE,
    JudgeInputError,
    final_labels,
    judge_backend,
    judge_in_scope,
    quality_row,
    rule_labels,
    run_judge,
)
from .verdict import CORRECT, INCORRECT, UNPARSABLE, VERDICTS, parse_verdict, verdict_to_bool

__all__ = [
    "METHODS",
    "STRUCTURED",
    "TEXT",
    "TOKEN_CHOICE",
    "UNSURE",
    "VERDICT_FORMAT",
    "VERDICT_SCHEMA",
    "Judged",
    "TokenChoiceJudge",
    "ask_verdicts",
    "verdict_from_p",
    "JSON_INSTRUCTION",
    "TEXT_INSTRUCTION",
    "DEFAULT_SCOPE",
    "SCOPES",
    "TRUNCATED_SOURCE",
    "judge_in_scope",
    "quality_row",
    "CORRECT",
    "INCORRECT",
    "UNPARSABLE",
    "VERDICTS",
    "JUDGE_TEMPLATE",
    "JudgeInputError",
    "final_labels",
    "judge_backend",
    "judge_messages",
    "judge_prompt",
    "parse_verdict",
    "rule_judge_agreement",
    "rule_labels",
    "run_judge",
    "verdict_to_bool",
]
