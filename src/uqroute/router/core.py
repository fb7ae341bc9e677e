"""The router: the SLM answers and scores each request; below the threshold the upstream LLM answers.

:class:`Router` is the Python API (``Router.from_file(path, llm_base_url=..., llm_model=...)``,
``router.route(messages)``) and what the HTTP server (:mod:`.server`) runs. Everything a response
says about its routing is one dict, the ``uqroute`` field (:meth:`Router.info`), also sent as
``x-uqroute-*`` headers by the server.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from .file import read_router_file, threshold_value
from .tracking import Decision, Monitor, QuantileThreshold

log = logging.getLogger("uqroute.router")
request_log = logging.getLogger("uqroute.router.requests")

__all__ = ["Router", "RequestError", "parse_request", "extra_cost"]

_ROLES = ("system", "developer", "user", "assistant")


class RequestError(ValueError):
    """A request the router refuses (HTTP 4xx); ``param`` names the offending field."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def _messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RequestError("messages must be a non-empty list of {role, content} objects", param="messages")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(f"{where} must be an object with role and content", param=where)
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES:
            raise RequestError(f"{where}.role must be one of {list(_ROLES)}, got {role!r}", param=f"{where}.role")
        if isinstance(content, list):  # content parts: text only
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise RequestError(f"{where}.content[{j}]: only text parts are supported", param=f"{where}.content")
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise RequestError(f"{where}.content must be a string (or a list of text parts)", param=f"{where}.content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise RequestError("messages must hold at least one user message", param="messages")
    return out


def _int(body: dict, key: str, lo: int = 1) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise RequestError(f"{key} must be an integer ≥ {lo}, got {v!r}", param=key)
    return v


def parse_request(body: Any, *, model_names: tuple[str, ...]) -> dict:
    """Check a ``/v1/chat/completions`` body; return it with normalised ``messages`` and ``slm_max_tokens``.

    Raises :class:`RequestError` (400, or 404 for an unknown model) naming the field.
    """
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model is required (GET /v1/models lists this router's name)", param="model")
    if model not in model_names:
        raise RequestError(f"the model {model!r} does not exist here; this router serves {list(model_names)}", status=404,
                           param="model", code="model_not_found")
    req = dict(body)
    req["messages"] = _messages(body.get("messages"))
    for key in ("max_tokens", "max_completion_tokens", "seed", "top_logprobs"):
        _int(body, key, lo=0 if key in ("seed", "top_logprobs") else 1)
    n = _int(body, "n")
    if n is not None and n != 1:
        raise RequestError("n must be 1: the router answers with one completion", param="n")
    if body.get("tools") or body.get("functions"):
        raise RequestError("tools and functions are not supported by the router", param="tools")
    for key, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
        v = body.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
            raise RequestError(f"{key} must be a number in [{lo}, {hi}], got {v!r}", param=key)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise RequestError(f"stream must be true or false, got {body['stream']!r}", param="stream")
    req["stream"] = bool(body.get("stream", False))
    req["slm_max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens")
    return req


def extra_cost(statistics) -> str | None:
    """What the method costs beyond the greedy answer (from the statistics' declared costs), or None."""
    from ..inference.statistics import STATISTICS

    parts = [f"{s}: {STATISTICS[s].cost}" for s in statistics if s not in ("greedy", "hidden")]
    return "; ".join(parts) or None


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class Router:
    """A router served from a router file: an SLM with its confidence, a threshold, and an upstream LLM.

    Args:
        doc: the router file's content (:func:`uqroute.router.read_router_file`).
        router_path: where it was read from (the probe file is relative to its folder).
        slm_dir: the SLM's model directory (default: ``slm_model.model_dir`` of the file).
        upstream: an :class:`.upstream.Upstream`; None routes nowhere (:meth:`route` then fails on a routed request).
        fallback: answer with the SLM's answer (marked ``slm_fallback``) when the upstream fails.
        mode: override the file's ``serving.mode`` (``fixed`` / ``tracking``).
        name: the model name clients use (default ``uqroute-{slm}-{method}``).
        scorer: an object with the :class:`.slm.SLMScorer` interface (tests inject one); default builds it.
        device, batch_size, max_batch_rows: the SLM engine's settings.
    """

    def __init__(self, doc: Mapping, *, router_path=None, slm_dir=None, upstream=None, fallback: bool = False, mode: str | None = None,
                 name: str | None = None, scorer=None, device: str | None = None, batch_size: int = 16, max_batch_rows: int = 128):
        self.doc = dict(doc)
        self.slm, self.method = doc["slm"], doc["method"]
        self.name = name or f"uqroute-{self.slm}-{self.method}"
        op, serving = doc["operating_point"], doc["serving"]
        self.mode = mode or serving["mode"]
        self.target = float(op["llm_fraction"])
        t = threshold_value(op["threshold"], self.target)
        self.threshold = QuantileThreshold(self.target, t, float(op["q"]), mode=self.mode, window=serving["window"],
                                           min_samples=serving["min_samples"], seed=int(doc["inference"]["seed"]))
        self.monitor = Monitor(self.target, doc["holdout"]["confidence"], window=serving["window"], min_samples=serving["min_samples"],
                               drift_margin=serving["drift_margin"], name=self.name)
        try:
            from .metrics import RouterMetrics

            self.metrics = RouterMetrics(self.name, self.target, float(serving["drift_margin"]))
        except ImportError:  # prometheus-client is the `serve` extra; the Python API works without it
            self.metrics = None
        self.upstream, self.fallback = upstream, bool(fallback)
        self.extra_cost = extra_cost(doc["inference"]["statistics"])
        if scorer is None:
            from .slm import SLMScorer

            model_dir = slm_dir or doc["slm_model"]["model_dir"]
            if model_dir is None:
                raise ValueError(f"router {self.name}: the router file names no SLM directory; pass slm_dir (--slm-dir)")
            if not Path(model_dir).is_dir():
                raise FileNotFoundError(f"router {self.name}: SLM directory {model_dir} does not exist (snakemake fetches it to "
                                        f"resources/models/{self.slm}; or pass --slm-dir)")
            scorer = SLMScorer(self.doc, model_dir, router_dir=Path(router_path).parent if router_path else None, device=device,
                               batch_size=batch_size, max_batch_rows=max_batch_rows)
        self.scorer = scorer

    @classmethod
    def from_file(cls, path, *, llm_base_url: str | None = None, llm_model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                  max_retries: int = 2, timeout_s: float = 60.0, **kw) -> "Router":
        """A router from a router file; with ``llm_base_url`` and ``llm_model``, routed requests go there."""
        doc = read_router_file(path)
        upstream = None
        if llm_base_url is not None or llm_model is not None:
            if not (llm_base_url and llm_model):
                raise ValueError("give both llm_base_url and llm_model (or neither)")
            from .upstream import Upstream

            upstream = Upstream(llm_base_url, llm_model, api_key_env=api_key_env, max_retries=max_retries, timeout_s=timeout_s)
        return cls(doc, router_path=path, upstream=upstream, **kw)

    # ------------------------------------------------------------ deciding
    def decide(self, confidence: float) -> Decision:
        """Decide one request (thread-safe) and update the monitor and the metrics."""
        d = self.threshold.decide(confidence)
        st = self.monitor.record(confidence, d.routed)
        if self.metrics is not None:
            t, q, _ = self.threshold.current()
            self.metrics.observe_decision(confidence, st, t, q)
        return d

    def info(self, scored, decision: Decision, answered_by: str, **extra) -> dict:
        """The ``uqroute`` field of a response (JSON-safe: non-finite numbers are null)."""
        llm = self.upstream.model if self.upstream is not None else None
        return {
            "answered_by": answered_by, "model": llm if answered_by == "llm" else self.slm, "slm": self.slm, "llm": llm,
            "method": self.method, "confidence": _num(scored.confidence), "threshold": _num(decision.threshold), "q": decision.q,
            "routed": decision.routed, "threshold_source": decision.source, "mode": self.mode, "llm_fraction_target": self.target,
            "extra_cost": self.extra_cost, **extra,
        }

    @staticmethod
    def headers(info: Mapping) -> dict[str, str]:
        def fmt(x):
            return "null" if x is None else (json.dumps(x) if not isinstance(x, str) else x)

        return {"x-uqroute-model": fmt(info["model"]), "x-uqroute-answered-by": info["answered_by"],
                "x-uqroute-confidence": fmt(info["confidence"]), "x-uqroute-threshold": fmt(info["threshold"]),
                "x-uqroute-routed": fmt(info["routed"])}

    def slm_completion(self, scored, request_id: str, info: Mapping) -> dict:
        """The SLM's answer as an OpenAI chat completion (``model`` is the SLM's name)."""
        return {
            "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": self.slm,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": scored.text}, "finish_reason": scored.finish_reason,
                         "logprobs": None}],
            "usage": {"prompt_tokens": scored.prompt_tokens, "completion_tokens": scored.completion_tokens,
                      "total_tokens": scored.prompt_tokens + scored.completion_tokens},
            "uqroute": dict(info),
        }

    def log_request(self, **fields) -> None:
        """One JSON line per request on logger ``uqroute.router.requests`` (never the key: it is not in any field)."""
        request_log.info(json.dumps({k: (_num(v) if isinstance(v, float) else v) for k, v in fields.items()}, sort_keys=True))

    def max_tokens(self, requested: int | None) -> int:
        return int(requested or self.doc["inference"]["max_tokens"])

    # ------------------------------------------------------------ the Python API
    def route(self, messages, *, max_tokens: int | None = None, timeout: float | None = None, **params) -> dict:
        """Answer one conversation: an OpenAI chat completion dict with the ``uqroute`` field.

        ``params`` (temperature, top_p, stop, seed, …) go to the LLM when the request is routed; the
        SLM always answers greedily. Raises :class:`RequestError` for a malformed conversation and
        :class:`.upstream.UpstreamError` when the LLM fails (unless ``fallback``).
        """
        from .upstream import UpstreamError

        t0 = time.perf_counter()
        msgs = _messages(list(messages))
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        try:
            scored = self.scorer.score(msgs, self.max_tokens(max_tokens), rid, timeout=timeout)
        except ValueError as err:
            raise RequestError(str(err)) from None
        decision = self.decide(scored.confidence)
        lat = {"slm_s": scored.engine_s + scored.confidence_s, "confidence_s": scored.confidence_s}
        if not decision.routed:
            info = self.info(scored, decision, "slm", latency={**lat, "total_s": time.perf_counter() - t0})
            out = self.slm_completion(scored, rid, info)
            self._account(info, "ok", rid, t0, False)
            return out
        if self.upstream is None:
            raise RuntimeError(f"router {self.name}: the request is routed to the LLM, but no LLM was given (llm_base_url, llm_model)")
        t1 = time.perf_counter()
        try:
            resp = self.upstream.complete({**params, "messages": msgs, "max_tokens": max_tokens})
        except UpstreamError as err:
            lat["upstream_s"] = time.perf_counter() - t1
            if self.metrics is not None:
                self.metrics.upstream_errors.labels(router=self.name, code=err.code).inc()
            if not self.fallback:
                self._account({"answered_by": "llm", "confidence": scored.confidence, "threshold": decision.threshold, "routed": True},
                              "error", rid, t0, False, error=str(err))
                raise
            info = self.info(scored, decision, "slm_fallback", upstream_error=str(err), latency={**lat, "total_s": time.perf_counter() - t0})
            self._account(info, "ok", rid, t0, False)
            return self.slm_completion(scored, rid, info)
        lat["upstream_s"] = time.perf_counter() - t1
        info = self.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
        resp["uqroute"] = info
        self._account(info, "ok", rid, t0, False)
        return resp

    def _account(self, info: Mapping, status: str, rid: str, t0: float, stream: bool, **extra) -> None:
        total = time.perf_counter() - t0
        if self.metrics is not None:
            self.metrics.requests.labels(router=self.name, answered_by=info["answered_by"], status=status).inc()
            self.metrics.latency.labels(router=self.name, answered_by=info["answered_by"]).observe(total)
            lat = info.get("latency") or {}
            if "slm_s" in lat:
                self.metrics.slm_latency.labels(router=self.name).observe(lat["slm_s"])
                self.metrics.confidence_seconds.labels(router=self.name).observe(lat["confidence_s"])
            if "upstream_s" in lat:
                self.metrics.upstream_latency.labels(router=self.name).observe(lat["upstream_s"])
        lat = info.get("latency") or {}
        self.log_request(request_id=rid, status=status, answered_by=info["answered_by"], routed=info.get("routed"),
                         confidence=info.get("confidence"), threshold=info.get("threshold"), q=info.get("q"),
                         threshold_source=info.get("threshold_source"), stream=stream, total_s=total,
                         slm_s=lat.get("slm_s"), confidence_s=lat.get("confidence_s"), upstream_s=lat.get("upstream_s"), **extra)

    def close(self) -> None:
        self.scorer.close()
        if self.upstream is not None:
            self.upstream.close()

    def __enter__(self) -> "Router":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
