"""The OpenAI-compatible HTTP server of a router (``uqroute serve``), on FastAPI + uvicorn as vLLM's.

Endpoints: ``POST /v1/chat/completions`` (JSON or server-sent events with ``stream: true``),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text). Request handlers are
async: each submits its request's jobs to the SLM's engine thread (:class:`.slm.EngineWorker`)
and awaits the future, so concurrent requests share the engine's continuous-batching pool; the
upstream LLM is called with the async openai client, and a routed streaming request streams the
LLM's answer as it arrives. Errors use OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``: 400 for a malformed request, 404 for an unknown model, 502/504 when the LLM fails
after the client's retries (unless ``--fallback``: then the SLM's answer, marked
``slm_fallback``), 503 when the SLM's engine is down. A handler never lets an exception out as a
crash: anything unexpected is a 500 in the same shape, logged with its traceback.
"""


import asyncio
import json
import logging
import time
import uuid

from .core import RequestError, Router, parse_request
from .slm import EngineStopped
from .upstream import UpstreamError

log = logging.getLogger("uqroute.router")

__all__ = ["create_app", "serve"]


def _error(status: int, message: str, *, type_: str, param: str | None = None, code: str | None = None, headers=None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status,
                        headers=headers)


def _sse(obj) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


def _slm_chunks(router: Router, scored, rid: str, info: dict):
    """The SLM's (already complete) answer as chat.completion.chunk events."""
    created = int(time.time())
    base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": router.slm}
    yield _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}], "uqroute": info})
    yield _sse({**base, "choices": [{"index": 0, "delta": {"content": scored.text}, "finish_reason": None}]})
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": scored.finish_reason}],
                "usage": {"prompt_tokens": scored.prompt_tokens, "completion_tokens": scored.completion_tokens,
                          "total_tokens": scored.prompt_tokens + scored.completion_tokens}})
    yield b"data: [DONE]\n\n"


def create_app(router: Router):
    """The FastAPI application serving ``router``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    @asynccontextmanager
    async def lifespan(app):
        yield
        if router.upstream is not None:
            await router.upstream.aclose()

    app = FastAPI(title=f"uqroute router {router.name}", lifespan=lifespan)
    names = (router.name,)
    m = router.metrics

    @app.get("/health")
    async def health():
        if not router.scorer.worker.alive:
            return _error(503, "the SLM's engine is not running", type_="service_unavailable")
        return {"status": "ok", "router": router.name}

    @app.get("/v1/models")
    async def models():
        op = router.doc["operating_point"]
        return {"object": "list", "data": [{
            "id": router.name, "object": "model", "created": 0, "owned_by": "uqroute",
            "uqroute": {"slm": router.slm, "method": router.method, "llm": router.upstream.model if router.upstream else None,
                        "mode": router.mode, "llm_fraction": op["llm_fraction"], "threshold": op["threshold"], "q": op["q"],
                        "predicted_accuracy": op["predicted_accuracy"]}}]}

    @app.get("/metrics")
    async def metrics():
        from .metrics import CONTENT_TYPE

        return Response(m.render(router.scorer.worker) if m is not None else b"", media_type=CONTENT_TYPE)

    def reject(err: RequestError, rid: str, t0: float):
        if m is not None:
            m.rejected.labels(router=router.name, code=str(err.status)).inc()
        router.log_request(request_id=rid, status="rejected", http_status=err.status, error=str(err), total_s=time.perf_counter() - t0)
        return _error(err.status, str(err), type_="invalid_request_error", param=err.param, code=err.code)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        t0 = time.perf_counter()
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if m is not None:
            m.in_flight.labels(router=router.name).inc()
        try:
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                return reject(RequestError(f"the request body is not valid JSON: {err}"), rid, t0)
            try:
                req = parse_request(body, model_names=names)
                fut, plan, ts = router.scorer.submit(req["messages"], router.max_tokens(req["slm_max_tokens"]), rid)
            except RequestError as err:
                return reject(err, rid, t0)
            except ValueError as err:  # the chat template or the prompt (e.g. longer than the context)
                return reject(RequestError(str(err)), rid, t0)
            try:
                results = await asyncio.wrap_future(fut)
            except ValueError as err:  # refused by the engine (prompt + budget beyond the context)
                return reject(RequestError(str(err)), rid, t0)
            except EngineStopped as err:
                return _error(503, str(err), type_="service_unavailable")
            scored = router.scorer.finish(results, plan, ts)
            decision = router.decide(scored.confidence)
            lat = {"slm_s": scored.engine_s + scored.confidence_s, "confidence_s": scored.confidence_s}
            if not decision.routed:
                return _answer_slm(router, req, scored, decision, rid, t0, lat, "slm")
            if req["stream"]:
                return await _stream_llm(router, req, scored, decision, rid, t0, lat)
            t1 = time.perf_counter()
            try:
                resp = await router.upstream.acomplete(req)
            except UpstreamError as err:
                return _upstream_failed(router, req, scored, decision, rid, t0, lat, err, t1)
            lat["upstream_s"] = time.perf_counter() - t1
            info = router.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
            resp["uqroute"] = info
            router._account(info, "ok", rid, t0, False)
            return JSONResponse(resp, headers=router.headers(info))
        except Exception as err:  # noqa: BLE001  (never a crash: an OpenAI-format 500, logged)
            log.exception("router %s: request %s failed", router.name, rid)
            router.log_request(request_id=rid, status="error", http_status=500, error=f"{type(err).__name__}: {err}",
                               total_s=time.perf_counter() - t0)
            return _error(500, f"internal error: {type(err).__name__}", type_="server_error")
        finally:
            if m is not None:
                m.in_flight.labels(router=router.name).dec()

    def _answer_slm(router, req, scored, decision, rid, t0, lat, answered_by, **extra):
        info = router.info(scored, decision, answered_by, latency={**lat, "total_s": time.perf_counter() - t0}, **extra)
        router._account(info, "ok", rid, t0, req["stream"])
        if req["stream"]:
            return StreamingResponse(_slm_chunks(router, scored, rid, info), media_type="text/event-stream", headers=router.headers(info))
        return JSONResponse(router.slm_completion(scored, rid, info), headers=router.headers(info))

    def _upstream_failed(router, req, scored, decision, rid, t0, lat, err: UpstreamError, t1):
        lat["upstream_s"] = time.perf_counter() - t1
        if m is not None:
            m.upstream_errors.labels(router=router.name, code=err.code).inc()
        if router.fallback:
            return _answer_slm(router, req, scored, decision, rid, t0, lat, "slm_fallback", upstream_error=str(err))
        info = router.info(scored, decision, "llm", latency={**lat, "total_s": time.perf_counter() - t0})
        router._account(info, "error", rid, t0, req["stream"], error=str(err), http_status=err.status)
        return _error(err.status, str(err), type_="upstream_error", code=err.code, headers=router.headers(info))

    async def _stream_llm(router, req, scored, decision, rid, t0, lat):
        t1 = time.perf_counter()
        try:
            chunks = await router.upstream.astream(req)
        except UpstreamError as err:
            return _upstream_failed(router, req, scored, decision, rid, t0, lat, err, t1)
        info = router.info(scored, decision, "llm", latency=dict(lat))

        async def events():
            first, status, error = True, "ok", None
            try:
                async for chunk in chunks:
                    if first:
                        chunk["uqroute"] = info
                        first = False
                    yield _sse(chunk)
            except UpstreamError as err:  # mid-stream: the headers are sent, so the error is an event
                status, error = "error", str(err)
                if m is not None:
                    m.upstream_errors.labels(router=router.name, code=err.code).inc()
                yield _sse({"error": {"message": str(err), "type": "upstream_error", "param": None, "code": err.code}})
            yield b"data: [DONE]\n\n"
            lat["upstream_s"] = time.perf_counter() - t1
            router._account({**info, "latency": {**lat}}, status, rid, t0, True, **({"error": error} if error else {}))

        return StreamingResponse(events(), media_type="text/event-stream", headers=router.headers(info))

    return app


def serve(router: Router, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the server until interrupted (uvicorn), then close the router."""
    import uvicorn

    app = create_app(router)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
    finally:
        router.close()
