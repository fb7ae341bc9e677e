"""The SLM side of a router: the online engine worker and the confidence of one request.

:class:`EngineWorker` is the online face of the inference engine: **one thread owns** the engine's
:class:`uqroute.inference.engine.Run` and steps it (one scheduling iteration per
:meth:`~uqroute.inference.engine.Run.step`), while any number of request threads submit job
families through a thread-safe queue and wait on futures. Requests that arrive while others
decode join the same continuous-batching pool at the next step: concurrent requests share
prefill chunks and decoding steps instead of waiting for each other.

:class:`SLMScorer` turns one chat conversation into the engine's jobs for the statistics the
router's UQ method needs (:data:`uqroute.inference.statistics.STATISTICS`, exactly the pipeline's
statistics, built from the conversation instead of a dataset row), and their results into a
one-row joined frame on which ``uqroute.uq.METHODS[method]`` computes the confidence exactly as
the pipeline's ``uq`` rule does. The greedy answer is decoded at temperature 0 whatever the
request asks (the confidence is calibrated on greedy answers). Chat requests have no task type:
they are scored as free-form (``task_type`` ``FF``: ``avg_token_prob`` is then the mean token
probability) and parsed with the ``text`` answer format. Probe methods score the hidden state of
``inference.hidden_layer`` at the last prompt token (read off the answer prompt's prefill) with
the router's probe file.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("uqroute.router")

__all__ = ["EngineWorker", "SLMScorer", "Scored", "EngineStopped"]


class EngineStopped(RuntimeError):
    """The engine worker stopped (closed, or its thread failed); the request was not answered."""


class EngineWorker:
    """A thread that owns one engine :class:`Run` and steps it; :meth:`submit` is thread-safe.

    A run whose step raises fails every request in it (their futures get the error) and is replaced
    by a fresh run, so one bad batch does not stop the server. An idle run that has accumulated
    ``recycle_after`` jobs is replaced as well (a run keeps every job's result).
    """

    def __init__(self, engine, *, hidden_layer: int | None, name: str = "slm", recycle_after: int = 2000):
        self.engine, self.hidden_layer, self.name, self.recycle_after = engine, hidden_layer, name, int(recycle_after)
        self.inbox: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self.in_flight = 0
        self.peak_in_flight = 0  # most requests in the engine at once (concurrent requests share its pool)
        self.steps = 0
        self._first_run = self._new_run()  # a bad setting (hidden layer) fails here, in the caller's thread
        self.thread = threading.Thread(target=self._main, name=f"{name}-engine", daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self._stopping.is_set()

    def submit(self, jobs) -> Future:
        """Queue a family of jobs (one request's); the future's result is their ``JobResult`` list, in order."""
        fut: Future = Future()
        if not self.alive:
            fut.set_exception(EngineStopped(f"{self.name}: the engine worker is not running"))
            return fut
        self.inbox.put((list(jobs), fut))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        self.inbox.put(None)
        self.thread.join(timeout)

    def _new_run(self):
        return self.engine.start(hidden_layer=self.hidden_layer, desc=f"{self.name}: serving")

    def _main(self) -> None:
        try:
            self._loop()
        except BaseException:  # noqa: BLE001  (the thread is gone: refuse new requests, fail the queued ones)
            log.exception("%s: the engine worker stopped", self.name)
            self._stopping.set()
            while True:
                try:
                    it = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if it is not None:
                    it[1].set_exception(EngineStopped(f"{self.name}: the engine worker stopped"))
            raise

    def _loop(self) -> None:
        run, self._first_run = self._first_run, None
        owners: dict[int, tuple[dict, int]] = {}  # id(JobResult) -> (request state, position)
        requests: list[dict] = []

        def admit(jobs, fut):
            if not fut.set_running_or_notify_cancel():
                return
            state = {"fut": fut, "left": len(jobs), "results": [None] * len(jobs)}

            def done(res, state=state):
                st, k = owners.pop(id(res))
                st["results"][k] = res
                st["left"] -= 1
                if st["left"] == 0:
                    requests.remove(st)
                    self.in_flight -= 1
                    st["fut"].set_result(st["results"])

            try:
                idx = run.add(jobs, on_done=done)
            except Exception as err:  # a prompt that does not fit the context, …: this request only
                fut.set_exception(err)
                return
            for k, i in enumerate(idx):
                owners[id(run.results[i])] = (state, k)
            requests.append(state)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

        while not self._stopping.is_set():
            try:
                item = self.inbox.get(timeout=0.5) if not run.busy else self.inbox.get_nowait()
            except queue.Empty:
                item = ()
            items = [item] if item != () else []
            while True:  # everything that has arrived joins this step
                try:
                    items.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            for it in items:
                if it is None:
                    break
                admit(*it)
            if not run.busy:
                if len(run.jobs) >= self.recycle_after and not requests:
                    run.close()
                    run, owners = self._new_run(), {}
                continue
            try:
                run.step()
                self.steps += 1
            except Exception as err:  # noqa: BLE001  (fail the batch, keep serving)
                log.exception("%s: engine step failed; failing %d request(s)", self.name, len(requests))
                for st in requests:
                    st["fut"].set_exception(err)
                requests.clear()
                owners.clear()
                self.in_flight = 0
                run.close()
                run = self._new_run()
        for st in requests:
            st["fut"].set_exception(EngineStopped(f"{self.name}: the server is shutting down"))
        while True:
            try:
                it = self.inbox.get_nowait()
            except queue.Empty:
                break
            if it is not None:
                it[1].set_exception(EngineStopped(f"{self.name}: the server is shutting down"))
        run.close()


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
        self.turns = [st for st in self.stats if st.has_follow_ups]
        self._ctx_proto = ShardContext(self.backend, "text", "FF", {}, dict(inf), int(inf["seed"]), {})
        self.think_open = self._ctx_proto.think_open
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

    def _ctx(self, max_tokens: int):
        from ..inference import ShardContext

        inf = self.inference
        # as the pipeline's budgets (main, "sample budget capped at the answer budget"): samples never outgrow the answer
        sample = min(int(max_tokens), int(inf["sample_max_new_tokens"] or max_tokens))
        b = {"answer": int(max_tokens), "sample": sample, "verbal": int(inf["verbal_max_new_tokens"])}
        ctx = ShardContext(self.backend, "text", "FF", b, dict(inf), int(inf["seed"]), {}, _think_open=self.think_open)
        ctx._tf = self._ctx_proto._tf
        return ctx

    def jobs(self, messages: list[dict], max_tokens: int, request_id: str):
        """The engine jobs of one request (answer job first) and what :meth:`collect` needs."""
        from ..inference import Branch, Job, answer_conversation
        from ..parsing import final_answer_text

        ctx = self._ctx(max_tokens)
        users = [m["content"] for m in messages if m["role"] == "user"]
        row = {
            "id": request_id,
            "prompt": messages,
            "question": users[-1] if users else "",
            "choices": [],
            "context": None,
        }
        spans, follow_spans = {}, {}
        # the next-token entropy costs a pass over the vocabulary per step: only where the method reads it
        branches = [Branch(int(max_tokens), entropy="token_entropies" in self.method.columns)]
        for st in self.stats:
            new = st.branches(ctx, row)
            spans[st.name] = (len(branches), len(branches) + len(new))
            branches += new

        def make(res):
            shown = final_answer_text(self.backend.decode(res.branches[0].token_ids), think_open=ctx.think_open)
            out = []
            for st in self.turns:
                new = st.follow_ups(ctx, row, shown)
                follow_spans[st.name] = (len(out), len(out) + len(new))
                out += new
            return out

        main = Job(
            self.backend.encode(answer_conversation(messages)),
            branches,
            want_hidden=self.probe is not None,
            group=request_id,
            follow_up=make if self.turns else None,
        )
        jobs, extra = [main], []
        for st in self.stats:
            new = st.jobs(ctx, row)
            if new:
                extra.append((st.name, len(jobs), len(new)))
                jobs += new
        return jobs, (ctx, row, spans, follow_spans, extra)

    def collect(self, results, plan) -> tuple[dict, float]:
        """The joined-frame row of one request from its jobs' results, and its confidence (NaN if unscorable)."""
        import polars as pl

        from ..inference import QueryResult
        from ..schema import GENERATIONS

        ctx, row, spans, follow_spans, extra = plan
        qr = QueryResult(main=results[0])
        qr.branches = {n: qr.main.branches[a:z] for n, (a, z) in spans.items()}
        qr.follow_ups = {n: (qr.main.follow_ups or [])[a:z] for n, (a, z) in follow_spans.items()}
        for name, start, n in extra:
            qr.jobs[name] = results[start : start + n]
        rec = {}
        for st in self.stats:
            rec.update(st.fill(ctx, row, qr))
        hidden = rec.pop("_hidden", None)
        gen = GENERATIONS.polars_schema()
        schema = {"id": pl.Utf8, "task_type": pl.Utf8, **{c: gen[c] for c in rec if c in gen}}
        values = {"id": row["id"], "task_type": "FF", **{c: rec[c] for c in rec if c in gen}}
        if self.probe is not None:
            schema[self.method.name] = pl.Float64
            values[self.method.name] = float(self.probe.predict(np.asarray(hidden, dtype=np.float32)[None, :])[0])
        frame = pl.DataFrame([values], schema=schema)
        conf = float(self.method(frame)[0])
        return values, conf

    def submit(self, messages: list[dict], max_tokens: int, request_id: str):
        """Queue one request; returns ``(future, plan, t0)`` for :meth:`finish`."""
        jobs, plan = self.jobs(messages, max_tokens, request_id)
        return self.worker.submit(jobs), plan, time.perf_counter()

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
