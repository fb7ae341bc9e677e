"""The inference engine's online face: :class:`EngineWorker`, one thread that owns a continuous-batching run.

**One thread owns** the engine's :class:`.engine.Run` and steps it (one scheduling iteration per
:meth:`.engine.Run.step`), while any number of request threads submit job families (a query's
:attr:`.plan.QueryPlan.jobs`) through a thread-safe queue and wait on futures. Requests that arrive
while others decode join the same continuous-batching pool at the next step: concurrent requests
share prefill chunks and decoding steps instead of waiting for each other. The router's SLM scorer
serves its requests on it (docs/router.md, "Concurrency").
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

log = logging.getLogger(__name__)

__all__ = ["EngineWorker", "EngineStopped"]


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
            self._fail_queued("the engine worker stopped")
            raise

    def _fail_queued(self, why: str) -> None:
        """Fail every request still in the inbox with :class:`EngineStopped` (``None`` is the stop signal)."""
        while True:
            try:
                it = self.inbox.get_nowait()
            except queue.Empty:
                return
            if it is not None:
                it[1].set_exception(EngineStopped(f"{self.name}: {why}"))

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
        self._fail_queued("the server is shutting down")
        run.close()
