"""The SLM side of a router: the confidence of one request.

:class:`SLMScorer` plans one chat conversation with the pipeline's own query plan
(:class:`uqroute.inference.QueryPlan`: the jobs of the statistics the router's UQ method needs,
exactly the pipeline's statistics, built from the conversation instead of a dataset row), runs
them on the inference engine's online face (:class:`uqroute.inference.EngineWorker`, which
concurrent requests share), and turns the plan's record into a one-row joined frame on which
``uqroute.uq.METHODS[method]`` computes the confidence exactly as the pipeline's ``uq`` rule
does. What is the router's own: every request is scored at the router file's answer budget
(calibration's), whatever the client asks; the greedy answer is decoded at temperature 0
whatever the request asks (the confidence is calibrated on greedy answers); a probe method
whose confidence depends on the prompt alone is scored at prefill (:meth:`SLMScorer.submit_prefill`);
the client's ``max_tokens`` and ``stop`` only cut what is returned (:meth:`SLMScorer.reply`).
Chat requests have no task type: they are scored as free-form (``task_type`` ``FF``:
``avg_token_prob`` is then the mean token probability) and parsed with the ``text`` answer
format. Probe methods score the hidden state of ``inference.hidden_layer`` at the last prompt
token (read off the answer prompt's prefill) with the router's probe file.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inference import EngineWorker

__all__ = ["SLMScorer", "Scored"]


@dataclass
class Scored:
    """The SLM's answer to one request and its confidence."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    confidence: float  # NaN when the method cannot score the answer
    engine_s: float  # from submission to the last job's result (queueing + the shared engine work)
    confidence_s: float  # turning the engine's results into the confidence (parsing, the UQ method, the probe)
    columns: dict = field(default_factory=dict)  # the joined-frame row the method read (for logs and tests)
    token_ids: list = field(
        default_factory=list
    )  # the greedy answer's tokens (to cut the reply at the client's max_tokens)
    decoded: bool = True  # False: scored at prefill (SLMScorer.submit_prefill), no answer decoded

    @property
    def truncated(self) -> bool:
        """Cut off by the scoring budget (``finish_reason`` ``length``): the pipeline's truncation rule."""
        return self.finish_reason == "length"


class SLMScorer:
    """The router's SLM: builds a request's jobs, runs them on an :class:`EngineWorker`, computes the confidence."""

    def __init__(
        self,
        doc: dict,
        model_dir,
        *,
        router_dir=None,
        device: str | None = None,
        batch_size: int = 16,
        max_batch_rows: int = 128,
        max_batch_tokens: int = 8192,
    ):
        from ..inference import STATISTICS, ShardContext, TransformersBackend
        from ..uq import METHODS

        self.doc, self.method = doc, METHODS[doc["method"]]
        inf = doc["inference"]
        self.inference = inf
        #: the router file's answer budget: every request is scored at it, whatever the client asks (calibration's budget)
        self.budget = int(inf["max_tokens"])
        model_dir = Path(model_dir)
        self.backend = TransformersBackend(
            model_dir,
            dtype=inf["dtype"],
            batch_size=batch_size,
            device=device,
            max_batch_rows=max_batch_rows,
            max_batch_tokens=max_batch_tokens,
            progress=False,
            name=doc["slm"],
        )
        if self.backend.recurrent:
            raise NotImplementedError(
                f"SLM {doc['slm']}: its cache is a recurrent state (RWKV-7); the recurrent engine has no "
                "online run yet, so it cannot serve concurrent requests"
            )
        self.probe = None
        if doc["probe"] is not None:
            self.probe = self._load_probe(Path(router_dir or ".") / doc["probe"]["path"], doc["probe"]["sha256"])
        # the hidden state is read only when a probe scores it
        names = [s for s in inf["statistics"] if s != "hidden" or self.probe is not None]
        self.stats = [STATISTICS[s] for s in names]
        #: the confidence depends on the prompt alone (a probe on the prompt's hidden state): it can be computed at
        #: prefill, and a routed request then skips the SLM's decode (:meth:`submit_prefill`)
        self.at_prefill = self.probe is not None and set(names) <= {"greedy", "hidden"}
        # one context for every request (its budgets set per request): what it reads off the tokenizer is read once
        self._ctx = ShardContext(self.backend, "text", "FF", {}, dict(inf), int(inf["seed"]), {})
        self.think_open = self._ctx.think_open
        if "ptrue" in names:
            self._ctx.true_false_ids()
        layer = int(inf["hidden_layer"]) if self.probe is not None else None
        self.worker = EngineWorker(self.backend.engine(), hidden_layer=layer, name=doc["slm"])
        #: the SLM's context in tokens (None: unknown)
        self.context = self.backend.context_limit

    @staticmethod
    def _load_probe(path: Path, sha256: str):
        from ..probes import load_probe
        from .file import file_sha256

        if not path.is_file():
            raise FileNotFoundError(f"router probe file {path} does not exist (rule router_probe writes it)")
        got = file_sha256(path)
        if got != sha256:
            raise ValueError(f"router probe file {path}: sha256 {got} is not the {sha256} the router file names")
        return load_probe(path)[0]

    def plan(self, messages: list[dict], max_tokens: int, request_id: str):
        """One request's :class:`uqroute.inference.QueryPlan`, at an answer budget of ``max_tokens`` tokens (the
        sample and verbal budgets follow from it as in the pipeline's budgets)."""
        from ..inference import QueryPlan, answer_budgets, chat_row

        ctx = self._ctx.with_budgets(answer_budgets(max_tokens, self.inference))
        return QueryPlan(
            ctx,
            chat_row(messages, request_id),
            self.stats,
            # the next-token entropy costs a pass over the vocabulary per step: only where the method reads it
            answer_entropy="token_entropies" in self.method.columns,
        )

    def collect(self, results, plan) -> tuple[dict, float]:
        """The joined-frame row of one request from its plan's results, and its confidence (NaN if unscorable)."""
        import polars as pl

        from ..schema import GENERATIONS

        rec = plan.collect(results)
        gen = GENERATIONS.polars_schema()
        filled = [c for c in plan.columns if c in gen]
        schema = {"id": pl.Utf8, "task_type": pl.Utf8, **{c: gen[c] for c in filled}}
        values = {"id": rec["id"], "task_type": "FF", **{c: rec[c] for c in filled}}
        if self.probe is not None:
            schema[self.method.name] = pl.Float64
            hidden = np.asarray(rec["_hidden"], dtype=np.float32)
            values[self.method.name] = float(self.probe.predict(hidden[None, :])[0])
        frame = pl.DataFrame([values], schema=schema)
        conf = float(self.method(frame)[0])
        return values, conf

    def submit(self, messages: list[dict], max_tokens: int, request_id: str):
        """Queue one request; returns ``(future, plan, t0)`` for :meth:`finish`."""
        plan = self.plan(messages, max_tokens, request_id)
        return self.worker.submit(plan.jobs), plan, time.perf_counter()

    def submit_prefill(self, messages: list[dict], request_id: str):
        """Queue the prompt's prefill only (no decoding): for :attr:`at_prefill` methods, the confidence before the
        answer. A prompt that with the budget does not fit the context is refused here already (``ValueError``)."""
        from ..inference import Branch, Job, answer_conversation, check_job

        if not self.at_prefill:
            raise ValueError(f"{self.doc['method']}: the confidence needs the answer; it cannot be computed at prefill")
        ids = self.backend.encode(answer_conversation(messages))
        job = Job(ids, [], want_hidden=True, group=request_id)
        check_job(0, Job(ids, [Branch(self.budget)]), self.context)
        return self.worker.submit([job]), request_id, time.perf_counter()

    def finish_prefill(self, results, request_id: str, t0: float) -> Scored:
        """The confidence from a prefill's hidden state (the same value :meth:`finish` computes after the answer)."""
        import polars as pl

        t1 = time.perf_counter()
        res = results[0]
        value = float(self.probe.predict(np.asarray(res.hidden, dtype=np.float32)[None, :])[0])
        frame = pl.DataFrame(
            [{"id": request_id, "task_type": "FF", self.method.name: value}],
            schema={"id": pl.Utf8, "task_type": pl.Utf8, self.method.name: pl.Float64},
        )
        conf = float(self.method(frame)[0])
        t2 = time.perf_counter()
        return Scored(
            text="",
            finish_reason="",
            prompt_tokens=int(res.n_prompt_tokens),
            completion_tokens=0,
            confidence=conf if math.isfinite(conf) else math.nan,
            engine_s=t1 - t0,
            confidence_s=t2 - t1,
            columns={self.method.name: value},
            token_ids=[],
            decoded=False,
        )

    def finish(self, results, plan, t0: float) -> Scored:
        t1 = time.perf_counter()
        values, conf = self.collect(results, plan)
        t2 = time.perf_counter()
        return Scored(
            text=values["response"],
            finish_reason=values["finish_reason"],
            prompt_tokens=int(values["n_prompt_tokens"]),
            completion_tokens=len(values["tokens"]),
            confidence=conf if math.isfinite(conf) else math.nan,
            engine_s=t1 - t0,
            confidence_s=t2 - t1,
            columns=values,
            token_ids=list(results[0].branches[0].token_ids),
        )

    def reply(self, scored: Scored, max_tokens: int | None = None, stop=None) -> tuple[str, str, int]:
        """What the client gets of the SLM's answer: ``(text, finish_reason, completion_tokens)``.

        The answer is scored whole (at :attr:`budget`); the client's ``max_tokens`` only cuts what is
        returned (``finish_reason`` ``length``), and its ``stop`` strings end the text at the first one
        (not included, ``finish_reason`` ``stop``), as an OpenAI server does.
        """
        from ..parsing import final_answer_text

        text, finish, n = scored.text, scored.finish_reason, scored.completion_tokens
        if max_tokens is not None and max_tokens < len(scored.token_ids):
            n = int(max_tokens)
            text = final_answer_text(self.backend.decode(scored.token_ids[:n]), think_open=self.think_open)
            finish = "length"
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        cut = min((i for i in (text.find(x) for x in stops if x) if i >= 0), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return text, finish, n

    def score(self, messages: list[dict], max_tokens: int, request_id: str, timeout: float | None = None) -> Scored:
        fut, plan, t0 = self.submit(messages, max_tokens, request_id)
        return self.finish(fut.result(timeout), plan, t0)

    def close(self) -> None:
        self.worker.close()
        self.backend.close()
