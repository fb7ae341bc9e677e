"""Asking the judge: a verdict that is a choice, not prose.

The paper asks GPT-4.1 mini "whether a response is essentially equivalent to the ground truth
answer" (Chuang et al., arXiv:2502.04428, §3.1) and does not say how the verdict is read. Reading
it from free text turned hedges into verdicts ("I'm not sure it is correct" read as correct), so
the verdict is constrained to one of two values wherever the judge allows it (our choice):

* **API judges** (:class:`~uqroute.inference.api.OpenAIChatBackend`): the request carries
  ``response_format`` = :data:`VERDICT_FORMAT`, a JSON schema with one enum field
  (``{"verdict": "correct" | "incorrect"}``). OpenAI's structured outputs and vLLM's guided
  decoding both honour it. The backend checks every reply against the schema before it is cached
  (an invalid one is retried like any invalid reply); ``judge_raw`` is the JSON text.
* **Local judges** (transformers, :class:`TokenChoiceJudge`): the judge's prompt asks for ``Yes``
  or ``No``; one prefill gives the next-token probabilities, summed over the spellings of each word
  (:data:`YES_VARIANTS`, :data:`NO_VARIANTS`, those that are one token). ``p_correct = p(Yes) /
  (p(Yes) + p(No))`` is the judge's own probability that the answer is correct (column
  ``judge_p_correct``); the verdict is ``correct`` above 0.5, ``incorrect`` below and
  ``unparsable`` at exactly 0.5 or when neither word has any probability. ``judge_raw`` records
  both probabilities (``p(Yes)=0.812345 p(No)=0.103219``, six significant digits). A verdict with ``p_correct`` in
  :data:`UNSURE` ([0.4, 0.6], our choice) counts as unsure in the ``quality`` table.
* **Fallback** (method ``text``): a server that rejects ``response_format`` (HTTP 400/422) or
  answers valid completions that do not follow it (after the retries: a server that ignores the
  field), a local tokenizer without a
  one-token ``Yes``/``No``, or any other backend: the judge is asked the text prompt and the reply
  is read by :func:`~uqroute.judge.verdict.parse_verdict`. Every such verdict is counted
  (``quality.n_verdict_fallbacks``) and warned about in the job log.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .prompt import judge_messages
from .verdict import CORRECT, INCORRECT, UNPARSABLE, parse_verdict

__all__ = [
    "Judged",
    "TokenChoiceJudge",
    "ask_verdicts",
    "verdict_from_p",
    "VERDICT_FORMAT",
    "VERDICT_SCHEMA",
    "YES_VARIANTS",
    "NO_VARIANTS",
    "UNSURE",
    "STRUCTURED",
    "TOKEN_CHOICE",
    "TEXT",
    "METHODS",
    "STRUCTURED_MIN_TOKENS",
]

log = logging.getLogger(__name__)

#: How a verdict was obtained (``correctness.judge_method``).
STRUCTURED, TOKEN_CHOICE, TEXT = "json_schema", "token_choice", "text"
METHODS = (STRUCTURED, TOKEN_CHOICE, TEXT)

VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": [CORRECT, INCORRECT]}},
    "required": ["verdict"],
    "additionalProperties": False,
}
#: The ``response_format`` of an API judge's request (OpenAI structured outputs; vLLM guided decoding).
VERDICT_FORMAT = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA}}
#: Token budget of a structured reply: at least this, so that the JSON is never cut off.
STRUCTURED_MIN_TOKENS = 32

#: Spellings of the local judge's two verdict words (those that are one token of its tokenizer count).
YES_VARIANTS = ("Yes", " Yes", "yes", " yes", "YES")
NO_VARIANTS = ("No", " No", "no", " no", "NO")
#: ``p_correct`` in this closed interval: the judge is unsure (counted in ``quality.n_judge_unsure``).
UNSURE = (0.4, 0.6)

_CHOICE_FORMAT = 1  # bump when the meaning of a cached token-choice record changes


@dataclass(frozen=True)
class Judged:
    """One verdict: the raw reply, the verdict, the judge's p(correct) (token choice only), and how it was asked."""

    raw: str | None
    verdict: str
    p_correct: float | None
    method: str


def verdict_from_p(p_correct: float | None) -> str:
    """``correct`` above 0.5, ``incorrect`` below, ``unparsable`` at exactly 0.5 or for None (never guessed)."""
    if p_correct is None or p_correct == 0.5:
        return UNPARSABLE
    return CORRECT if p_correct > 0.5 else INCORRECT


def _structured_verdict(text: str) -> str:
    """The verdict of a reply that the backend already checked against :data:`VERDICT_SCHEMA` (after any
    reasoning block, as the backend's check reads it)."""
    return json.loads(text.rsplit("</think>", 1)[-1].strip())["verdict"]


def _accepts_response_format(backend) -> bool:
    try:
        return "response_format" in inspect.signature(backend.generate).parameters
    except (TypeError, ValueError):
        return False


def ask_verdicts(backend, items: Sequence[tuple[str, Sequence[str], str]], max_new_tokens: int) -> list[Judged]:
    """One :class:`Judged` per ``(question, references, response)``; each distinct item is asked once.

    ``backend``: a :class:`TokenChoiceJudge` (local judge), a backend whose ``generate`` takes
    ``response_format`` (API judge: structured verdicts), or any other ChatBackend (text fallback).
    ``max_new_tokens`` is the text reply's budget (``judge.max_new_tokens``); a structured reply
    gets at least :data:`STRUCTURED_MIN_TOKENS`.
    """
    keys = [json.dumps([q, list(r), a]) for q, r, a in items]
    unique = list(dict.fromkeys(keys))
    first = {k: items[keys.index(k)] for k in unique}
    todo = [first[k] for k in unique]
    if not todo:
        return []
    if isinstance(backend, TokenChoiceJudge):
        got = backend.choose_verdicts(todo, max_new_tokens)
    elif _accepts_response_format(backend):
        got = _structured(backend, todo, max_new_tokens)
    else:
        got = _text(backend, todo, max_new_tokens)
    n_text = sum(j.method == TEXT for j in got)
    if n_text:
        log.warning(
            "judge %s: %d of %d verdicts were read from free text (fallback: the judge gave no structured "
            "verdict); quality.n_verdict_fallbacks counts them",
            getattr(backend, "name", "?"),
            n_text,
            len(got),
        )
    by_key = dict(zip(unique, got))
    return [by_key[k] for k in keys]


def _text(backend, items, max_new_tokens: int) -> list[Judged]:
    convs = [judge_messages(q, r, a) for q, r, a in items]
    gens = backend.generate(convs, max_new_tokens=max_new_tokens, temperature=0.0, n=1)
    return [Judged(g[0].text, parse_verdict(g[0].text), None, TEXT) for g in gens]


def _structured(backend, items, max_new_tokens: int) -> list[Judged]:
    from ..inference import APIReplyError, APIRequestError

    convs = [judge_messages(q, r, a, structured=True) for q, r, a in items]
    try:
        gens = backend.generate(
            convs,
            max_new_tokens=max(max_new_tokens, STRUCTURED_MIN_TOKENS),
            temperature=0.0,
            n=1,
            response_format=VERDICT_FORMAT,
        )
    except APIRequestError as err:
        rejected = getattr(err, "status_code", None) in (400, 422)
        ignored = isinstance(err, APIReplyError) and getattr(err, "structured", False)
        if not (rejected or ignored):
            raise
        log.warning(
            "judge %s: no structured verdict (%s); asking for a text verdict instead (fallback, counted in "
            "quality.n_verdict_fallbacks)",
            getattr(backend, "name", "?"),
            "the server rejected response_format" if rejected else f"its replies did not follow it: {err}",
        )
        return _text(backend, items, max_new_tokens)
    return [Judged(g[0].text, _structured_verdict(g[0].text), None, STRUCTURED) for g in gens]


class TokenChoiceJudge:
    """A local (transformers) judge whose verdict is the choice between its next tokens ``Yes`` and ``No``.

    ``load`` builds the :class:`~uqroute.inference.TransformersBackend` (called on the first cache
    miss only, so a fully cached run never loads the model). Every choice is cached in
    ``cache_dir`` (:class:`~uqroute.inference.ResponseCache`), keyed by ``identity`` (the model
    files' SHA-256, dtype, device), the messages, ``thinking`` and the verdict spellings; a record is
    checked when read (two probabilities in [0, 1] summing to at most 1) and computed again if bad.
    The text fallback goes through a :class:`~uqroute.inference.CachedBackend` on the same cache
    directory and the same loaded model.
    """

    def __init__(
        self, load, cache_dir, identity: dict, *, name: str = "judge", thinking: bool = True, chunk_size: int = 128
    ):
        from ..inference import CachedBackend, ResponseCache

        self._load = load
        self._model = None
        self.name = name
        self.identity = dict(identity)
        self.thinking = bool(thinking)
        self.chunk_size = int(chunk_size)
        self.cache = ResponseCache(Path(cache_dir))
        self.text = CachedBackend(self._backend, cache_dir, identity, name=name)
        self.stats = {"cache_hits": 0, "requests": 0}

    def _backend(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _key(self, messages) -> tuple[str, dict]:
        from ..inference import cache_key

        payload = {
            "kind": "verdict_choice",
            "format": _CHOICE_FORMAT,
            "identity": self.identity,
            "messages": messages,
            "thinking": self.thinking,
            "choices": [list(YES_VARIANTS), list(NO_VARIANTS)],
        }
        return cache_key(payload), payload

    def _cached(self, key: str, payload: dict) -> tuple[float, float] | None:
        record = self.cache.get(key)
        if record is None:
            return None
        try:
            for field, value in payload.items():
                if record.get(field) != json.loads(json.dumps(value)):
                    raise ValueError(f"its {field} differ from this request's")
            p = (record.get("p_yes"), record.get("p_no"))
            if (
                not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and 0 <= x <= 1
                    for x in p
                )
                or sum(p) > 1 + 1e-6
            ):
                raise ValueError(f"p_yes, p_no = {p!r} are not two probabilities")
            return float(p[0]), float(p[1])
        except ValueError as err:
            log.warning(
                "%s: cached verdict choice %s (key %s) is invalid: %s; it is computed again",
                self.name,
                self.cache.path(key),
                key,
                err,
            )
            return None

    def choose_verdicts(self, items, max_new_tokens: int) -> list[Judged]:
        """The token-choice verdicts of ``items`` (``(question, references, response)``); text fallback where the
        tokenizer has no one-token ``Yes``/``No``."""
        convs = [judge_messages(q, r, a) for q, r, a in items]
        keyed = [self._key(c) for c in convs]
        probs: dict[str, tuple[float, float]] = {}
        todo = []
        for i, (key, payload) in enumerate(keyed):
            if key in probs:
                continue
            p = self._cached(key, payload)
            if p is None:
                todo.append(i)
            else:
                probs[key] = p
        self.stats["cache_hits"] += len(probs)
        fallback: list[int] = []
        if todo:
            yes, no = self._verdict_token_ids()
            if yes and no:
                self._compute(self._backend(), [(i, keyed[i], convs[i]) for i in todo], yes, no, probs)
            else:
                log.warning(
                    "%s: the tokenizer has no one-token Yes and No; verdicts are read from text replies", self.name
                )
                fallback = todo
        out: list[Judged | None] = [None] * len(items)
        if fallback:
            texts = _text(self.text, [items[i] for i in fallback], max_new_tokens)
            for i, j in zip(fallback, texts):
                out[i] = j
        for i, (key, _) in enumerate(keyed):
            if out[i] is None:
                p_yes, p_no = probs[key]
                p = p_yes / (p_yes + p_no) if p_yes + p_no > 0 else None
                out[i] = Judged(f"p(Yes)={p_yes:.6g} p(No)={p_no:.6g}", verdict_from_p(p), p, TOKEN_CHOICE)
        return out

    def _verdict_token_ids(self) -> tuple[list[int], list[int]]:
        """The one-token spellings of Yes and No (empty lists: none, or they overlap), memoised in the cache
        so that a cached run whose verdicts fell back to text does not load the model to learn it again."""
        from ..inference import cache_key

        payload = {
            "kind": "verdict_tokens",
            "format": _CHOICE_FORMAT,
            "identity": self.identity,
            "choices": [list(YES_VARIANTS), list(NO_VARIANTS)],
        }
        key = cache_key(payload)
        record = self.cache.get(key)
        ids = record.get("ids") if isinstance(record, dict) and record.get("identity") == payload["identity"] else None
        if not (
            isinstance(ids, list)
            and len(ids) == 2
            and all(isinstance(x, list) and all(isinstance(t, int) for t in x) for x in ids)
        ):
            be = self._backend()
            yes, no = be.single_token_ids(YES_VARIANTS), be.single_token_ids(NO_VARIANTS)
            ids = [yes, no] if yes and no and not set(yes) & set(no) else [[], []]
            self.cache.put(key, {**payload, "ids": ids})
        return ids[0], ids[1]

    def _compute(self, be, todo, yes: list[int], no: list[int], probs: dict) -> None:
        from ..inference import Job

        log.info("%s: token-choice verdicts for %d answers (%d cached)", self.name, len(todo), self.stats["cache_hits"])
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            jobs = [Job(be.encode(conv, thinking=self.thinking), next_token_groups=[yes, no]) for _, _, conv in chunk]
            results = be.run_jobs(jobs, desc=f"{self.name}: verdicts")
            for (_, (key, payload), _), res in zip(chunk, results):
                p_yes, p_no = (float(x) for x in res.group_probs)
                self.cache.put(key, {**payload, "p_yes": p_yes, "p_no": p_no})
                probs[key] = (p_yes, p_no)
                self.stats["requests"] += 1

    def generate(self, conversations, **kw):
        """Text generation (the fallback), cached like any local judge reply."""
        return self.text.generate(conversations, **kw)

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
