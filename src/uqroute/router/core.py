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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .file import read_router_file, threshold_value
from .tracking import Decision, Monitor, QuantileThreshold, warmup_plan

log = logging.getLogger("uqroute.router")
request_log = logging.getLogger("uqroute.router.requests")

__all__ = ["Router", "RequestError", "parse_request", "prompt_key", "extra_cost", "TRUNCATED"]

#: What the router does with an SLM reply cut off by the scoring budget: send it to the LLM, or serve it marked.
TRUNCATED = ("route", "mark")

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
            raise RequestError(f"{where}.role must be one of {list(_ROLES)}, got {_show(role)}", param=f"{where}.role")
        if isinstance(content, list):  # content parts: text only
            texts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise RequestError(f"{where}.content[{j}]: only text parts are supported", param=f"{where}.content")
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise RequestError(f"{where}.content must be a string (or a list of text parts)", param=f"{where}.content")
        _text(content, f"{where}.content")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    if not any(m["role"] == "user" for m in out):
        raise RequestError("messages must hold at least one user message", param="messages")
    return out


def _text(value: str, where: str) -> str:
    """A string that is valid Unicode text (JSON can carry lone surrogates, ``"\\ud800"``, which no tokenizer takes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RequestError(
            f"{where} is not valid Unicode text (a lone surrogate at character {err.start})", param=where
        ) from None
    return value


def _show(v) -> str:
    """A client's value for an error message: its repr, or its size for a huge integer or a long string."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _int(body: dict, key: str, lo: int = 1, hi: int | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"in [{lo}, {hi}]" if hi is not None else f"≥ {lo}"
        raise RequestError(f"{key} must be an integer {rng}, got {_show(v)}", param=key)
    return v


def _number(body: dict, key: str, lo: float, hi: float) -> None:
    v = body.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
        raise RequestError(f"{key} must be a number in [{lo}, {hi}], got {_show(v)}", param=key)


#: The largest value of an integer field the router accepts (OpenAI's seed is a 64-bit integer).
_INT_MAX = 2**63 - 1


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
        raise RequestError(
            f"the model {_show(model)} does not exist here; this router serves {list(model_names)}",
            status=404,
            param="model",
            code="model_not_found",
        )
    req = dict(body)
    req["messages"] = _messages(body.get("messages"))
    for key in ("max_tokens", "max_completion_tokens", "seed"):
        _int(body, key, lo=0 if key == "seed" else 1, hi=_INT_MAX)
    n = _int(body, "n", hi=_INT_MAX)
    if n is not None and n != 1:
        raise RequestError("n must be 1: the router answers with one completion", param="n")
    if body.get("tools") or body.get("functions"):
        raise RequestError("tools and functions are not supported by the router", param="tools")
    for key, lo, hi in (
        ("temperature", 0, 2),
        ("top_p", 0, 1),
        ("presence_penalty", -2, 2),
        ("frequency_penalty", -2, 2),
    ):
        _number(body, key, lo, hi)
    # parameters the SLM's answer cannot honour are refused on both branches, so a reply never depends on the routing
    if body.get("logprobs") or body.get("top_logprobs"):
        raise RequestError("logprobs are not supported by the router: the SLM's answers carry none", param="logprobs")
    rf = body.get("response_format")
    if rf is not None and rf != {"type": "text"}:
        raise RequestError(
            'response_format other than {"type": "text"} is not supported by the router: the SLM\'s answers '
            "are not constrained",
            param="response_format",
        )
    if body.get("logit_bias"):
        raise RequestError(
            "logit_bias is not supported by the router: the SLM decodes greedily without it", param="logit_bias"
        )
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(x, str) and x for x in stops):
            raise RequestError("stop must be a non-empty string or a list of up to 4 of them", param="stop")
        for x in stops:
            _text(x, "stop")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise RequestError(f"stream must be true or false, got {body['stream']!r}", param="stream")
    req["stream"] = bool(body.get("stream", False))
    so = body.get("stream_options")
    if so is not None:
        if not req["stream"]:
            raise RequestError("stream_options is only allowed with stream: true", param="stream_options")
        if (
            not isinstance(so, dict)
            or set(so) - {"include_usage"}
            or not isinstance(so.get("include_usage", False), bool)
        ):
            raise RequestError('stream_options must be {"include_usage": true|false}', param="stream_options")
    req["include_usage"] = bool((so or {}).get("include_usage", False))
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise RequestError("user must be a string", param="user")
    req["slm_max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens")
    return req


def prompt_key(messages: list[dict]) -> str:
    """A hash of a conversation (the tracking's duplicate guard)."""
    import hashlib

    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=True).encode()).hexdigest()[:32]


def extra_cost(statistics) -> str | None:
    """What the method costs beyond the greedy answer (from the statistics' declared costs), or None."""
    from ..inference import STATISTICS

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
        min_samples: the tracking warm-up (:func:`.tracking.warmup_plan`): ``"file"`` (the file's
            ``serving.min_samples``, chosen at calibration or set there), ``"auto"`` (min(hold-out size, window),
            whatever the file says) or a number; the drift test may end any of them early.
        client_share, dedupe, max_shift: the tracking's guards (:class:`.tracking.QuantileThreshold`).
        on_truncated: ``route`` (a reply cut off by the scoring budget goes to the LLM) or ``mark`` (it is
            served, marked ``truncated``, only where the threshold would not route it anyway).
        llm_max_model_len: the LLM's context in tokens (None: read from the upstream's ``/models`` when it says).
        llm_fraction: serve this LLM-call fraction instead of the file's operating point (threshold from the
            file's hold-out set: :func:`.calibrate.operating_point_at`); the default name then ends in ``-{fraction}``.
        shared: the scorer and the upstream belong to another router, which closes them (:meth:`at_fraction`).
    """

    def __init__(
        self,
        doc: Mapping,
        *,
        router_path=None,
        slm_dir=None,
        upstream=None,
        fallback: bool = False,
        mode: str | None = None,
        name: str | None = None,
        scorer=None,
        device: str | None = None,
        batch_size: int = 16,
        max_batch_rows: int = 128,
        min_samples="file",
        client_share: float | None = 0.1,
        dedupe: bool = True,
        max_shift: float | None = 0.2,
        on_truncated: str = "route",
        llm_max_model_len: int | None = None,
        shared: bool = False,
        llm_fraction: float | None = None,
    ):
        self._options = {
            "router_path": router_path,
            "fallback": fallback,
            "mode": mode,
            "min_samples": min_samples,
            "client_share": client_share,
            "dedupe": dedupe,
            "max_shift": max_shift,
            "on_truncated": on_truncated,
            "llm_max_model_len": llm_max_model_len,
        }
        self.shared = bool(shared)  # the SLM engine and the upstream belong to another router (at_fraction)
        self.file_doc = doc
        self.doc = dict(doc)
        self.slm, self.method = doc["slm"], doc["method"]
        self.name = name or f"uqroute-{self.slm}-{self.method}"
        if llm_fraction is not None:  # another operating point of the file (RouteLLM: the fraction in the name)
            from .calibrate import operating_point_at

            self.doc["operating_point"] = operating_point_at(doc, llm_fraction)
            if name is None:
                self.name += f"-{float(llm_fraction):g}"
        doc = self.doc
        op, serving = doc["operating_point"], doc["serving"]
        self.mode = mode or serving["mode"]
        self.target = float(op["llm_fraction"])
        t = threshold_value(op["threshold"], self.target)
        if on_truncated not in TRUNCATED:
            raise ValueError(f"router {self.name}: on_truncated must be one of {list(TRUNCATED)}, got {on_truncated!r}")
        self.on_truncated = on_truncated
        window, n_holdout = int(serving["window"]), len(doc["holdout"]["confidence"])
        # the warm-up (tracking.warmup_plan): "file" serves the file's N (chosen at calibration, or set there), with
        # the drift test's k_min and the bands of this router's fraction (an operating point may differ from the file's)
        if min_samples == "file":
            set_n, source = int(serving["min_samples"]), serving.get("warmup", {}).get("source", "set")
        elif min_samples == "auto":
            set_n, source = None, "auto"
        else:
            set_n, source = int(min_samples), "option"
        plan = warmup_plan(self.target, n_holdout, float(serving["drift_margin"]), window, min_samples=set_n)
        plan["source"] = source
        warm = plan["min_samples"]
        self.warmup = {**plan, "max_shift": max_shift}
        self.threshold = QuantileThreshold(
            self.target,
            t,
            float(op["q"]),
            mode=self.mode,
            window=window,
            min_samples=warm,
            drift_min_samples=plan["drift_min_samples"],
            holdout_n=n_holdout,
            drift_z=plan["z"],
            seed=int(doc["inference"]["seed"]),
            client_share=client_share,
            dedupe=dedupe,
            reference=doc["holdout"]["confidence"],
            max_shift=max_shift,
        )
        b = self.threshold.bounds()
        self.warmup["bounds"] = (
            None if b is None else {"low": [_num(b[0][0]), b[0][1]], "high": [_num(b[1][0]), b[1][1]]}
        )
        self.monitor = Monitor(
            self.target,
            doc["holdout"]["confidence"],
            window=window,
            min_samples=plan["drift_min_samples"],
            drift_margin=serving["drift_margin"],
            name=self.name,
        )
        self.budget = int(doc["inference"]["max_tokens"])
        self.llm_max_model_len = llm_max_model_len
        self.llm_max_model_len_set = llm_max_model_len is not None  # else the server reads it off the upstream
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
                raise ValueError(
                    f"router {self.name}: the router file names no SLM directory; pass slm_dir (--slm-dir)"
                )
            if not Path(model_dir).is_dir():
                raise FileNotFoundError(
                    f"router {self.name}: SLM directory {model_dir} does not exist (snakemake fetches it to "
                    f"resources/models/{self.slm}; or pass --slm-dir)"
                )
            scorer = SLMScorer(
                self.doc,
                model_dir,
                router_dir=Path(router_path).parent if router_path else None,
                device=device,
                batch_size=batch_size,
                max_batch_rows=max_batch_rows,
            )
        self.scorer = scorer

    @classmethod
    def from_file(
        cls,
        path,
        *,
        llm_base_url: str | None = None,
        llm_model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_retries: int = 2,
        timeout_s: float = 60.0,
        **kw,
    ) -> Router:
        """A router from a router file; with ``llm_base_url`` and ``llm_model``, routed requests go there."""
        doc = read_router_file(path)
        upstream = None
        if llm_base_url is not None or llm_model is not None:
            if not (llm_base_url and llm_model):
                raise ValueError("give both llm_base_url and llm_model (or neither)")
            from .upstream import Upstream

            upstream = Upstream(
                llm_base_url, llm_model, api_key_env=api_key_env, max_retries=max_retries, timeout_s=timeout_s
            )
        return cls(doc, router_path=path, upstream=upstream, **kw)

    def at_fraction(self, fraction: float, name: str | None = None) -> Router:
        """This router at another operating point of the same file: LLM-call fraction ``fraction``, its
        threshold from the same hold-out set (:func:`.calibrate.operating_point_at`), its own warm-up, tracking
        window, monitor and metrics, under its own name (default ``{name}-{fraction}``, RouteLLM's way of
        putting the operating point in the model name). It shares this router's SLM engine (requests of
        every operating point join one continuous batch) and upstream; close this router last."""
        return Router(
            self.file_doc,
            **self._options,
            upstream=self.upstream,
            scorer=self.scorer,
            name=name,
            shared=True,
            llm_fraction=fraction,
        )

    # ------------------------------------------------------------ deciding
    def decide(self, scored, *, client=None, key=None, record: bool = True) -> Decision:
        """Decide one request (thread-safe) and, with ``record``, update the monitor and the metrics (else call
        :meth:`record` with the final outcome).

        ``scored`` is a :class:`.slm.Scored` (or a bare confidence). A reply cut off by the scoring
        budget is never trusted as confident: with ``on_truncated`` ``route`` it is routed (and kept out
        of the tracking window); with ``mark`` it is decided by its confidence and marked.
        """
        conf = scored if isinstance(scored, (int, float)) or scored is None else scored.confidence
        d = self.threshold.decide(
            conf, client=client, key=key, trusted=not (self.truncated(scored) and self.on_truncated == "route")
        )
        d = self.after_answer(scored, d)
        if record:
            self.record(conf, d.routed)
        return d

    @staticmethod
    def truncated(scored) -> bool:
        return bool(getattr(scored, "truncated", False))

    def after_answer(self, scored, d: Decision) -> Decision:
        """The decision once the answer is known: a cut-off answer is routed (``route``) or marked (``mark``)."""
        if not self.truncated(scored) or d.routed:
            return d
        if self.on_truncated == "route":
            return Decision(True, d.threshold, d.q, "truncated", 1.0)
        return Decision(False, d.threshold, d.q, "truncated", d.p_route)

    def record(self, confidence, routed: bool) -> None:
        """Count one final decision in the monitor and the metrics."""
        st = self.monitor.record(confidence, routed)
        if self.metrics is not None:
            t, q, _ = self.threshold.current()
            self.metrics.observe_decision(confidence if confidence is not None else math.nan, st, t, q)

    def info(self, scored, decision: Decision, answered_by: str, **extra) -> dict:
        """The ``uqroute`` field of a response (JSON-safe: non-finite numbers are null)."""
        llm = self.upstream.model if self.upstream is not None else None
        return {
            "answered_by": answered_by,
            "model": llm if answered_by == "llm" else self.slm,
            "slm": self.slm,
            "llm": llm,
            "method": self.method,
            "confidence": _num(scored.confidence),
            "threshold": _num(decision.threshold),
            "q": decision.q,
            "routed": decision.routed,
            "threshold_source": decision.source,
            "mode": self.mode,
            "llm_fraction_target": self.target,
            "extra_cost": self.extra_cost,
            "truncated": self.truncated(scored),
            "slm_decoded": bool(getattr(scored, "decoded", True)),
            **extra,
        }

    @staticmethod
    def headers(info: Mapping) -> dict[str, str]:
        def fmt(x):
            return "null" if x is None else (json.dumps(x) if not isinstance(x, str) else x)

        return {
            "x-uqroute-model": fmt(info["model"]),
            "x-uqroute-answered-by": info["answered_by"],
            "x-uqroute-confidence": fmt(info["confidence"]),
            "x-uqroute-threshold": fmt(info["threshold"]),
            "x-uqroute-routed": fmt(info["routed"]),
        }

    def slm_completion(self, scored, request_id: str, info: Mapping, max_tokens: int | None = None, stop=None) -> dict:
        """The SLM's answer as an OpenAI chat completion (``model`` is the SLM's name), cut at the client's
        ``max_tokens`` and ``stop`` (:meth:`.slm.SLMScorer.reply`)."""
        text, finish, n = self.scorer.reply(scored, max_tokens, stop)
        return {
            "id": request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.slm,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": scored.prompt_tokens,
                "completion_tokens": n,
                "total_tokens": scored.prompt_tokens + n,
            },
            "uqroute": dict(info),
        }

    @staticmethod
    def own(resp: dict, request_id: str) -> dict:
        """An upstream completion (or chunk) under the router's id, without the upstream's ``system_fingerprint``."""
        resp["id"] = request_id
        resp.pop("system_fingerprint", None)
        return resp

    def check_limits(self, req: Mapping) -> None:
        """Refuse (400), before routing, what either branch could not serve, so that a request's validity never
        depends on its routing: a ``max_tokens`` at or beyond the LLM's context (``llm_max_model_len``, set or
        read off the upstream's ``/models``). The SLM always decodes at the router file's budget, so the
        client's ``max_tokens`` asks nothing of it; a prompt that does not fit the SLM's context with that
        budget is refused by its engine, before routing as well."""
        want = req.get("slm_max_tokens")
        limit = self.llm_max_model_len
        if want is None or limit is None:
            return
        key = "max_completion_tokens" if req.get("max_completion_tokens") is not None else "max_tokens"
        if want >= limit:
            llm = self.upstream.model if self.upstream is not None else "the LLM"
            raise RequestError(f"{key} {want} does not fit the LLM {llm}'s context of {limit} tokens", param=key)

    def log_request(self, **fields) -> None:
        """One JSON line per request on logger ``uqroute.router.requests`` (never the key: it is not in any field)."""
        request_log.info(
            json.dumps({k: (_num(v) if isinstance(v, float) else v) for k, v in fields.items()}, sort_keys=True)
        )

    def max_tokens(self, requested: int | None = None) -> int:
        """The SLM's decoding budget: always the router file's (``inference.max_tokens``), whatever the client asks,
        because the thresholds are calibrated on answers at that budget. The client's ``max_tokens`` cuts the reply."""
        return self.budget

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
            scored = self.scorer.score(msgs, self.max_tokens(), rid, timeout=timeout)
        except ValueError as err:
            raise RequestError(str(err)) from None
        decision = self.decide(scored, key=prompt_key(msgs))
        lat = {"slm_s": scored.engine_s + scored.confidence_s, "confidence_s": scored.confidence_s}
        if not decision.routed:
            info = self.info(scored, decision, "slm", latency={**lat, "total_s": time.perf_counter() - t0})
            out = self.slm_completion(scored, rid, info, max_tokens, params.get("stop"))
            self._account(info, "ok", rid, t0, False)
            return out
        if self.upstream is None:
            raise RuntimeError(
                f"router {self.name}: the request is routed to the LLM, but no LLM was given (llm_base_url, llm_model)"
            )
        t1 = time.perf_counter()
        try:
            resp = self.upstream.complete({**params, "messages": msgs, "max_tokens": max_tokens})
        except UpstreamError as err:
            lat["upstream_s"] = time.perf_counter() - t1
            if self.metrics is not None:
                self.metrics.upstream_errors.labels(router=self.name, code=err.code).inc()
            if not self.fallback:
                self._account(
                    {
                        "answered_by": "llm",
                        "confidence": scored.confidence,
                        "threshold": decision.threshold,
                        "routed": True,
                    },
                    "error",
                    rid,
                    t0,
                    False,
                    error=str(err),
                    detail=err.detail,
                )
                raise
            info = self.info(
                scored,
                decision,
                "slm_fallback",
                upstream_error=str(err),
                latency={**lat, "total_s": time.perf_counter() - t0},
            )
            self._account(info, "ok", rid, t0, False, detail=err.detail)
            return self.slm_completion(scored, rid, info, max_tokens, params.get("stop"))
        lat["upstream_s"] = time.perf_counter() - t1
        info = self.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
        resp = self.own(resp, rid)
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
        self.log_request(
            request_id=rid,
            status=status,
            answered_by=info["answered_by"],
            routed=info.get("routed"),
            confidence=info.get("confidence"),
            threshold=info.get("threshold"),
            q=info.get("q"),
            threshold_source=info.get("threshold_source"),
            stream=stream,
            total_s=total,
            slm_s=lat.get("slm_s"),
            confidence_s=lat.get("confidence_s"),
            upstream_s=lat.get("upstream_s"),
            **extra,
        )

    def close(self) -> None:
        if self.shared:  # the router it was made from closes the engine and the upstream
            return
        self.scorer.close()
        if self.upstream is not None:
            self.upstream.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
