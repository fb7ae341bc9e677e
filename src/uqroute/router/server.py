"""The OpenAI-compatible HTTP server of one or more routers (``uqroute serve``), on FastAPI + uvicorn as vLLM's.

Endpoints: ``POST /v1/chat/completions`` (JSON or server-sent events with ``stream: true``),
``GET /v1/models``, ``GET /health`` (the SLM engines run), ``GET /ready`` (and the upstream LLMs
answer), ``GET /metrics`` (Prometheus text). Several routers (router files) are served from one
process, each under its own model name.

Request handlers are async and never do CPU work on the event loop: JSON parsing, the request
check, tokenization (building the engine's jobs) and the confidence run in worker threads; the
SLM's engine runs in its own thread (:class:`uqroute.inference.EngineWorker`), so concurrent requests share its
continuous-batching pool; the upstream LLM is called with the async openai client.

Every response carries ``x-request-id``, the id of the request's log line (and the ``id`` of the
completion: the router's own, never the upstream's). A request body larger than ``max_body_bytes``
is refused with a 413 before it is parsed. Errors use OpenAI's shape ``{"error": {"message",
"type", "param", "code", "request_id"}}``: 400 for a malformed request, 401 without the client key
(``api_keys``), 404 for an unknown model or route, 405, 413, 502/504 when the LLM fails after the
client's retries (a generic message; the redacted detail is logged; with ``--fallback``: the SLM's
answer, marked ``slm_fallback``), 503 when the SLM's engine is down. Anything unexpected is a 500
in the same shape, whose message names no exception, logged with its traceback.
"""

import asyncio
import hmac
import json
import logging
import time
import uuid

from ..inference import EngineStopped
from .core import RequestError, Router, parse_request, prompt_key
from .upstream import UpstreamError

log = logging.getLogger("uqroute.router")

__all__ = ["create_app", "serve", "DEFAULT_MAX_BODY_BYTES_PER_TOKEN"]

#: The default body limit is this many bytes per token of the largest SLM context served (a JSON-escaped
#: token is rarely longer than 16 bytes, so twice that leaves room for the request's other fields).
DEFAULT_MAX_BODY_BYTES_PER_TOKEN = 32
#: A body over the limit is read and dropped up to this size (so the client gets the 413); a larger one is cut off.
_DRAIN_MAX = 64 << 20


def _payload(status: int, message: str, *, type_: str, rid: str | None, param=None, code=None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, "request_id": rid}}


def _error(
    status: int,
    message: str,
    *,
    type_: str,
    rid: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers=None,
):
    from fastapi.responses import JSONResponse

    return JSONResponse(
        _payload(status, message, type_=type_, rid=rid, param=param, code=code), status_code=status, headers=headers
    )


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _parse_json(raw: bytes):
    """The body as JSON, or a :class:`RequestError` (runs in a worker thread)."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise RequestError(f"the request body is not valid JSON: it is not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise RequestError(f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise RequestError("the request body is not valid JSON for the router: it is nested too deeply") from None
    except ValueError:  # int(): a number longer than Python's integer-string limit
        raise RequestError("the request body holds a number too long to parse") from None


class _Guard:
    """ASGI middleware: the request id, the body-size limit, the client key, the client id.

    Sets ``scope["state"]["request_id"]`` (and ``client_id``), adds ``x-request-id`` to every response,
    reads a request's body at most ``max_body`` bytes long (a longer one is dropped and answered 413
    without being parsed) and checks ``Authorization: Bearer <key>`` on ``/v1/`` paths in constant time.
    """

    def __init__(self, app, *, max_body: int, api_keys: list[str], client_header: str | None):
        self.app, self.max_body = app, int(max_body)
        self.keys = [k.encode() for k in api_keys]
        self.client_header = client_header.lower().encode() if client_header else None

    async def _reply(self, send, status: int, body: dict, rid: str, extra=()):
        logging.getLogger("uqroute.router.requests").info(
            json.dumps(
                {"request_id": rid, "status": "rejected", "http_status": status, "error": body["error"]["message"]},
                sort_keys=True,
            )
        )
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"x-request-id", rid.encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        headers = dict(scope.get("headers") or [])

        async def send_with_id(msg):
            if msg["type"] == "http.response.start":
                msg = {
                    **msg,
                    "headers": [
                        *[(k, v) for k, v in msg.get("headers", []) if k.lower() != b"x-request-id"],
                        (b"x-request-id", rid.encode()),
                    ],
                }
            await send(msg)

        if self.keys and scope["path"].startswith("/v1/"):
            auth = headers.get(b"authorization", b"")
            got = auth[7:].strip() if auth[:7].lower() == b"bearer " else b""
            # compare with every key, always (constant time in the key and in which key matched)
            match = [hmac.compare_digest(got, k) for k in self.keys]
            if not any(match):
                return await self._reply(
                    send,
                    401,
                    _payload(
                        401,
                        "a valid API key is required (Authorization: Bearer <key>)",
                        type_="invalid_request_error",
                        rid=rid,
                        code="invalid_api_key",
                    ),
                    rid,
                    [(b"www-authenticate", b"Bearer")],
                )
            if len(self.keys) > 1:
                state["client_id"] = f"key{match.index(True)}"
        if self.client_header is not None and self.client_header in headers:
            state["client_id"] = "h:" + headers[self.client_header].decode("latin-1")[:200]
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send_with_id)
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        chunks, size, too_big = [], 0, declared > self.max_body
        if declared <= _DRAIN_MAX:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                part = msg.get("body", b"")
                size += len(part)
                if size > self.max_body:
                    too_big = True
                    chunks = []
                elif not too_big:
                    chunks.append(part)
                if not msg.get("more_body", False) or size > _DRAIN_MAX:
                    break
        if too_big or size > self.max_body:
            shown = declared if declared > self.max_body else size
            return await self._reply(
                send,
                413,
                _payload(
                    413,
                    f"the request body ({shown} bytes or more) is larger than the router's limit of {self.max_body} bytes "
                    "(--max-body-bytes)",
                    type_="invalid_request_error",
                    rid=rid,
                    code="request_too_large",
                ),
                rid,
                [(b"connection", b"close")],
            )
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send_with_id)


def _slm_chunks(router: Router, text: str, finish: str, n: int, scored, rid: str, info: dict, include_usage: bool):
    """The SLM's (already complete) answer as chat.completion.chunk events."""
    created = int(time.time())
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": router.slm}
    yield _sse(
        {
            **base,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            "uqroute": info,
        }
    )
    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if include_usage:
        yield _sse(
            {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": scored.prompt_tokens,
                    "completion_tokens": n,
                    "total_tokens": scored.prompt_tokens + n,
                },
            }
        )
    yield b"data: [DONE]\n\n"


def create_app(
    routers, *, max_body_bytes: int | None = None, api_keys=(), docs: bool = True, client_header: str | None = None
):
    """The FastAPI application serving ``routers`` (one :class:`Router` or several, each under its own name).

    ``max_body_bytes`` (None: :data:`DEFAULT_MAX_BODY_BYTES_PER_TOKEN` × the largest SLM context, or 1 MiB
    when unknown); ``api_keys``: the client keys (empty: no authentication); ``docs``: serve ``/docs``,
    ``/redoc`` and ``/openapi.json``; ``client_header``: a header naming the client (per-client share of the
    tracking window; set it only behind a proxy that sets it).
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    routers = [routers] if isinstance(routers, Router) else list(routers)
    by_name: dict[str, Router] = {}
    for r in routers:
        if r.name in by_name:
            raise ValueError(f"two routers are named {r.name!r}; give each its own --name")
        by_name[r.name] = r
    names = tuple(by_name)
    if max_body_bytes is None:
        ctx = [c for c in (getattr(r.scorer, "context", None) for r in routers) if c]
        max_body_bytes = DEFAULT_MAX_BODY_BYTES_PER_TOKEN * max(ctx) if ctx else 1 << 20

    async def refresh_upstreams():
        """Each upstream's state; a router without ``llm_max_model_len`` takes the upstream's ``max_model_len``."""
        out = {}
        for r in routers:
            if r.upstream is None:
                out[r.name] = {"state": "none", "max_model_len": None, "message": None, "detail": None}
                continue
            st = await r.upstream.amodels()
            if st["max_model_len"] is not None and not r.llm_max_model_len_set:
                r.llm_max_model_len = st["max_model_len"]
            if st["detail"]:
                log.warning("router %s: upstream %s: %s", r.name, st["state"], st["detail"])
            out[r.name] = st
        return out

    @asynccontextmanager
    async def lifespan(app):
        await refresh_upstreams()
        yield
        for r in routers:
            if r.upstream is not None and not r.shared:
                await r.upstream.aclose()

    kw = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title=f"uqroute router {', '.join(names)}", lifespan=lifespan, **kw)

    def rid_of(request) -> str:
        return getattr(request.state, "request_id", None) or f"chatcmpl-{uuid.uuid4().hex}"

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        msg = (
            f"no route {request.method} {request.url.path} (this server has POST /v1/chat/completions, GET /v1/models, "
            "/health, /ready, /metrics)"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return _error(
            exc.status_code,
            msg,
            type_="invalid_request_error",
            rid=rid_of(request),
            code="not_found" if exc.status_code == 404 else None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return _error(400, "the request is not valid", type_="invalid_request_error", rid=rid_of(request))

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        rid = rid_of(request)
        log.error("request %s failed", rid, exc_info=exc)
        return _error(
            500,
            f"internal error; the router's log has the details under request id {rid}",
            type_="server_error",
            rid=rid,
        )

    @app.get("/health")
    async def health(request: Request):
        down = [r.name for r in routers if not r.scorer.worker.alive]
        if down:
            return _error(
                503,
                f"the SLM's engine is not running (router {', '.join(down)})",
                type_="service_unavailable",
                rid=rid_of(request),
            )
        return {"status": "ok", "router": names[0] if len(names) == 1 else list(names)}

    @app.get("/ready")
    async def ready(request: Request):
        states = await refresh_upstreams()
        body, ok = {}, True
        for r in routers:
            slm = "ok" if r.scorer.worker.alive else "down"
            up = states[r.name]
            ok = ok and slm == "ok" and up["state"] in ("ready", "none")
            body[r.name] = {
                "slm": slm,
                "upstream": up["state"],
                "upstream_message": up["message"],
                "llm_max_model_len": r.llm_max_model_len,
            }
        return JSONResponse({"status": "ready" if ok else "not_ready", "routers": body}, status_code=200 if ok else 503)

    @app.get("/v1/models")
    async def models():
        data = []
        for r in routers:
            op = r.doc["operating_point"]
            data.append(
                {
                    "id": r.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "uqroute",
                    "uqroute": {
                        "slm": r.slm,
                        "method": r.method,
                        "llm": r.upstream.model if r.upstream else None,
                        "mode": r.mode,
                        "llm_fraction": op["llm_fraction"],
                        "threshold": op["threshold"],
                        "q": op["q"],
                        "predicted_accuracy": op["predicted_accuracy"],
                        "budget": r.budget,
                        "warmup": {**r.warmup, "ended_early": r.threshold.warmup_ended_by_drift},
                        "on_truncated": r.on_truncated,
                    },
                }
            )
        return {"object": "list", "data": data}

    @app.get("/metrics")
    async def metrics():
        from .metrics import CONTENT_TYPE, render_all

        return Response(
            render_all((r.metrics, r.scorer.worker) for r in routers if r.metrics is not None), media_type=CONTENT_TYPE
        )

    def reject(router, err: RequestError, rid: str, t0: float):
        if router is not None and router.metrics is not None:
            router.metrics.rejected.labels(router=router.name, code=str(err.status)).inc()
        (router or routers[0]).log_request(
            request_id=rid, status="rejected", http_status=err.status, error=str(err), total_s=time.perf_counter() - t0
        )
        return _error(err.status, str(err), type_="invalid_request_error", rid=rid, param=err.param, code=err.code)

    def prepare(raw: bytes):
        body = _parse_json(raw)
        req = parse_request(body, model_names=names)
        router = by_name[req["model"]]
        router.check_limits(req)
        return router, req

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        t0 = time.perf_counter()
        rid = rid_of(request)
        client = getattr(request.state, "client_id", None)
        router = None
        try:
            raw = await request.body()
            try:
                router, req = await asyncio.to_thread(prepare, raw)
            except RequestError as err:  # counted on the router when there is only one (the model is unknown or unread)
                return reject(routers[0] if len(routers) == 1 else None, err, rid, t0)
            m = router.metrics
            if m is not None:
                m.in_flight.labels(router=router.name).inc()
            try:
                return await _chat(router, req, rid, t0, client)
            finally:
                if m is not None:
                    m.in_flight.labels(router=router.name).dec()
        except Exception:  # noqa: BLE001  (never a crash: an OpenAI-format 500, logged with its traceback)
            log.exception("request %s failed", rid)
            (router or routers[0]).log_request(
                request_id=rid,
                status="error",
                http_status=500,
                error="internal error",
                total_s=time.perf_counter() - t0,
            )
            return _error(
                500,
                f"internal error; the router's log has the details under request id {rid}",
                type_="server_error",
                rid=rid,
            )

    async def _engine(submit, *args):
        """Run one submission on the SLM's engine: its results, or the RequestError / EngineStopped to answer with."""
        try:
            fut, plan, ts = await asyncio.to_thread(submit, *args)
        except RequestError:
            raise
        except ValueError as err:  # the chat template or the prompt (e.g. longer than the context)
            raise RequestError(str(err)) from None
        try:
            results = await asyncio.wrap_future(fut)
        except ValueError as err:  # refused by the engine (prompt + budget beyond the context)
            raise RequestError(str(err)) from None
        return results, plan, ts

    async def _answer(router: Router, req, rid):
        results, plan, ts = await _engine(router.scorer.submit, req["messages"], router.max_tokens(), rid)
        return await asyncio.to_thread(router.scorer.finish, results, plan, ts)

    async def _chat(router: Router, req, rid, t0, client):
        key = prompt_key(req["messages"])
        try:
            if router.scorer.at_prefill:
                # the confidence reads the prompt only: decide at prefill, decode only what the SLM answers
                results, plan, ts = await _engine(router.scorer.submit_prefill, req["messages"], rid)
                pre = await asyncio.to_thread(router.scorer.finish_prefill, results, plan, ts)
                decision = await asyncio.to_thread(router.decide, pre, client=client, key=key, record=False)
                scored = pre
                if not decision.routed:
                    scored = await _answer(router, req, rid)
                    scored.engine_s += pre.engine_s
                    decision = router.after_answer(scored, decision)
                router.record(pre.confidence, decision.routed)
            else:
                scored = await _answer(router, req, rid)
                decision = await asyncio.to_thread(router.decide, scored, client=client, key=key)
        except RequestError as err:
            return reject(router, err, rid, t0)
        except EngineStopped as err:
            return _error(503, str(err), type_="service_unavailable", rid=rid)
        lat = {"slm_s": scored.engine_s + scored.confidence_s, "confidence_s": scored.confidence_s}
        if not decision.routed:
            return await _answer_slm(router, req, scored, decision, rid, t0, lat, "slm")
        if req["stream"]:
            return await _stream_llm(router, req, scored, decision, rid, t0, lat)
        t1 = time.perf_counter()
        try:
            resp = await router.upstream.acomplete(req)
        except UpstreamError as err:
            return await _upstream_failed(router, req, scored, decision, rid, t0, lat, err, t1)
        lat["upstream_s"] = time.perf_counter() - t1
        info = router.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
        resp = router.own(resp, rid)
        resp["uqroute"] = info
        router._account(info, "ok", rid, t0, False)
        return JSONResponse(resp, headers=router.headers(info))

    async def _answer_slm(router, req, scored, decision, rid, t0, lat, answered_by, **extra):
        if (
            not scored.decoded
        ):  # decided at prefill and routed, but the LLM failed: the fallback needs the SLM's answer now
            try:
                whole = await _answer(router, req, rid)
            except (RequestError, EngineStopped) as err:
                return _error(503, f"the fallback answer failed: {err}", type_="service_unavailable", rid=rid)
            whole.confidence = scored.confidence
            scored = whole
        info = router.info(scored, decision, answered_by, latency={**lat, "total_s": time.perf_counter() - t0}, **extra)
        detail = extra.pop("_detail", None)
        info.pop("_detail", None)
        router._account(info, "ok", rid, t0, req["stream"], **({"detail": detail} if detail else {}))
        if req["stream"]:
            text, finish, n = await asyncio.to_thread(
                router.scorer.reply, scored, req["slm_max_tokens"], req.get("stop")
            )
            return StreamingResponse(
                _slm_chunks(router, text, finish, n, scored, rid, info, req["include_usage"]),
                media_type="text/event-stream",
                headers=router.headers(info),
            )
        out = await asyncio.to_thread(router.slm_completion, scored, rid, info, req["slm_max_tokens"], req.get("stop"))
        return JSONResponse(out, headers=router.headers(info))

    async def _upstream_failed(router, req, scored, decision, rid, t0, lat, err: UpstreamError, t1):
        lat["upstream_s"] = time.perf_counter() - t1
        if router.metrics is not None:
            router.metrics.upstream_errors.labels(router=router.name, code=err.code).inc()
        if router.fallback:
            return await _answer_slm(
                router, req, scored, decision, rid, t0, lat, "slm_fallback", upstream_error=str(err), _detail=err.detail
            )
        info = router.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
        router._account(
            info, "error", rid, t0, req["stream"], error=str(err), detail=err.detail, http_status=err.status
        )
        return _error(
            err.status, str(err), type_="upstream_error", rid=rid, code=err.code, headers=router.headers(info)
        )

    async def _stream_llm(router, req, scored, decision, rid, t0, lat):
        t1 = time.perf_counter()
        try:
            chunks = await router.upstream.astream(req)
        except UpstreamError as err:
            return await _upstream_failed(router, req, scored, decision, rid, t0, lat, err, t1)
        info = router.info(scored, decision, "llm", latency=dict(lat))
        m = router.metrics

        async def events():
            first, status, error, detail, finished, done = True, "ok", None, None, False, False
            try:
                try:
                    async for chunk in chunks:
                        chunk = router.own(chunk, rid)
                        if first:
                            chunk["uqroute"] = info
                            first = False
                        finished = finished or any(c.get("finish_reason") for c in chunk.get("choices") or [])
                        yield _sse(chunk)
                    if not finished:  # the upstream closed the stream without saying why: it broke off
                        raise UpstreamError(
                            "the upstream LLM broke off the stream (no finish_reason)",
                            502,
                            "upstream_broke_off",
                            detail="the upstream stream ended without a finish_reason",
                        )
                except UpstreamError as err:  # mid-stream: the headers are sent, so the error is an event
                    status, error, detail = "error", str(err), err.detail
                    if m is not None:
                        m.upstream_errors.labels(router=router.name, code=err.code).inc()
                    yield _sse(_payload(502, str(err), type_="upstream_error", rid=rid, code=err.code))
                yield b"data: [DONE]\n\n"
                done = True
            finally:
                lat["upstream_s"] = time.perf_counter() - t1
                if not done and status == "ok":  # the client went away before the end
                    status, error = "client_disconnected", "the client disconnected before the end of the stream"
                    if m is not None:
                        m.disconnects.labels(router=router.name).inc()
                    await chunks.aclose()
                router._account(
                    {**info, "latency": {**lat}},
                    status,
                    rid,
                    t0,
                    True,
                    **({"error": error} if error else {}),
                    **({"detail": detail} if detail else {}),
                )

        return StreamingResponse(events(), media_type="text/event-stream", headers=router.headers(info))

    return _Guard(app, max_body=max_body_bytes, api_keys=list(api_keys), client_header=client_header)


def serve(routers, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **kw) -> None:
    """Run the server until interrupted (uvicorn), then close the routers. ``kw`` go to :func:`create_app`."""
    import uvicorn

    routers = [routers] if isinstance(routers, Router) else list(routers)
    app = create_app(routers, **kw)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        for r in routers:
            r.close()
