"""A real OpenAI-compatible HTTP server for fault-injection tests (standard library only, in a thread).

It answers ``POST /v1/chat/completions`` the way OpenAI and vLLM do (``choices`` with
``message.content``, ``logprobs.content[j].{token, logprob, top_logprobs}``, ``usage``), with a
deterministic reply per request, so that two runs against it give identical artifacts. Faults are
queued and applied to the next requests in arrival order, after which the server recovers::

    with FaultServer() as server:
        server.fail("500", "drop")        # the next request gets HTTP 500, the one after is dropped
        server.fail_always("html")        # every request, until server.recover()
        ... OpenAIChatBackend({"api": {"model": server.model, "base_url": server.base_url}}) ...
        server.paid()                     # bodies answered with HTTP 200, in arrival order

Faults (:data:`FAULTS`):

* ``"500"``, ``"503"``: that status with a JSON error body;
* ``"400"``: HTTP 400, as from a server that rejects a request field (``response_format``);
* ``("429", retry_after)``: HTTP 429 with ``Retry-After: <retry_after>`` (seconds);
* ``"timeout"``: no answer for :attr:`FaultServer.hang_s` seconds (longer than the client's
  timeout), then the normal reply to a client that is gone;
* ``"drop"``: the connection is closed without an answer;
* ``"html"``: HTTP 200 with a proxy's HTML page (``text/html``);
* ``"truncated"``: HTTP 200, ``application/json``, the reply cut in the middle;
* ``"no_choices"``: HTTP 200 with ``"choices": []``;
* ``"short_choices"``: HTTP 200 with one choice fewer than the request's ``n``;
* ``"null_logprob"``: HTTP 200 whose second token (or only token) has ``"logprob": null``;
* ``"content_filter"``: HTTP 200, a valid reply whose first choice the provider's filter stopped
  (``finish_reason: content_filter``, empty content: OpenAI's and Azure's shape);
* ``("echo_key", status)`` (``"echo_key"`` alone: 401): the request's bearer key echoed back, as some servers do: HTTP 401 or
  503 with ``Incorrect API key provided: <key>`` in the error body, or HTTP 200 whose first
  log-prob token is the key with ``"logprob": null`` (an invalid reply naming the token).
* ``"stream_cut"``: a streaming reply whose connection closes after the first chunk, with no ``finish_reason``.

A request with ``"stream": true`` is answered with server-sent ``chat.completion.chunk`` events, one
word each, :attr:`FaultServer.stream_delay_s` apart, a last chunk with ``finish_reason`` and, when
``stream_options.include_usage`` is set, a usage chunk. ``GET /v1/models`` lists the model with
vLLM's ``max_model_len`` (:attr:`FaultServer.max_model_len`).

Every request is recorded (:attr:`FaultServer.log`: the parsed body and the fault applied, ``None``
for a normal reply); a test counts on the server side what was sent and what was paid for.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

__all__ = ["FAULTS", "FaultServer", "Request", "canonical", "default_reply", "is_judge_prompt", "judge_reply"]

FAULTS = (
    "400",
    "500",
    "503",
    "429",
    "timeout",
    "drop",
    "html",
    "truncated",
    "no_choices",
    "short_choices",
    "null_logprob",
    "echo_key",
    "content_filter",
    "stream_cut",
)
#: faults answered with HTTP 200 (a real API bills these)
PAID_FAULTS = ("html", "truncated", "no_choices", "short_choices", "null_logprob")


class Request(NamedTuple):
    body: dict
    fault: str | None  # None: a normal, valid reply


def canonical(body: dict) -> str:
    """A request body as canonical JSON (to compare and count requests)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def is_judge_prompt(body: dict) -> bool:
    """Whether a request is the LLM judge's (its prompt shows the assistant's answer)."""
    return "[The Start of Assistant's Answer]" in body["messages"][-1]["content"]


def judge_reply(body: dict, correct: bool) -> str:
    """A judge's verdict in the form the request asks for: the JSON of a ``response_format`` json_schema
    request (as a server with structured outputs gives it), else ``Yes``/``No``."""
    if (body.get("response_format") or {}).get("type") == "json_schema":
        return json.dumps({"verdict": "correct" if correct else "incorrect"})
    return "Yes" if correct else "No"


def default_reply(body: dict) -> str:
    """A ``correct`` verdict to a judge prompt (:func:`judge_reply`), else the letter ``A`` (an MCQ answer)."""
    return judge_reply(body, True) if is_judge_prompt(body) else "A"


def completion(body: dict, text: str) -> dict:
    """A chat-completion reply as OpenAI/vLLM send it: ``n`` choices, log-probs if asked for."""
    n = int(body.get("n", 1))
    top_k = int(body.get("top_logprobs") or 0)
    choices = []
    for i in range(n):
        t = text if n == 1 else f"{text} {i}"
        pieces = re.findall(r"\s*\S+", t) or [t]
        choice = {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop", "logprobs": None}
        if body.get("logprobs"):
            content = []
            for j, tok in enumerate(pieces):
                lp = -0.125 * (j + 1)
                top = [{"token": tok, "logprob": lp}] + [
                    {"token": f"alt{k}", "logprob": lp - k - 1} for k in range(top_k - 1)
                ]
                content.append({"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": top[:top_k]})
            choice["logprobs"] = {"content": content}
        choices.append(choice)
    prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
    return {
        "id": "chatcmpl-fault-server",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "system_fingerprint": "fp_fault",
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n},
    }


class FaultServer:
    """An OpenAI-compatible server on 127.0.0.1 (a free port) with scripted faults; see the module docstring.

    Args:
        model: the served model name (a request for another name gets HTTP 404, as from vLLM).
        reply: the reply text for a request body (default :func:`default_reply`).
        delay_s: seconds every request waits before it is answered (to interrupt a run midway).
        hang_s: how long a ``"timeout"`` fault keeps the client waiting.
    """

    def __init__(
        self,
        model: str = "fault-model",
        *,
        reply: Callable[[dict], str] = default_reply,
        delay_s: float = 0.0,
        hang_s: float = 2.0,
        stream_delay_s: float = 0.0,
        max_model_len: int | None = 4096,
    ):
        self.model, self.reply, self.delay_s, self.hang_s = model, reply, delay_s, hang_s
        self.stream_delay_s, self.max_model_len = stream_delay_s, max_model_len
        self.keys: list[str] = []  # the bearer key of every request, in arrival order
        self._conns: set = set()  # open client connections (closed by stop(): a stopped server keeps no keep-alive one)
        self.log: list[Request] = []
        self._queue: deque = deque()
        self._always = None
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control
    def fail(self, *faults) -> FaultServer:
        """Apply these faults to the next requests, one each, in arrival order; then answer normally."""
        for f in faults:
            name = f[0] if isinstance(f, tuple) else f
            if name not in FAULTS:
                raise ValueError(f"unknown fault {f!r} (known: {FAULTS})")
            self._queue.append(f)
        return self

    def fail_always(self, fault) -> FaultServer:
        self.fail(fault)
        self._queue.pop()
        self._always = fault
        return self

    def recover(self) -> None:
        with self._lock:
            self._queue.clear()
            self._always = None

    def _next_fault(self):
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            return self._always

    # ---------------------------------------------------------------- counts
    def sent(self) -> list[dict]:
        """Every request body received, in arrival order."""
        return [r.body for r in self.log]

    def paid(self) -> list[dict]:
        """Bodies answered with HTTP 200 (valid or not): what a real API would bill."""
        return [r.body for r in self.log if r.fault is None or r.fault in PAID_FAULTS]

    def answered(self) -> list[dict]:
        """Bodies answered with a valid reply."""
        return [r.body for r in self.log if r.fault is None]

    def faults(self) -> list:
        return [r.fault for r in self.log]

    # ---------------------------------------------------------------- server
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                with server._lock:
                    server._conns.add(self.connection)

            def finish(self):
                with server._lock:
                    server._conns.discard(self.connection)
                super().finish()

            def _send(self, status: int, payload: bytes, content_type: str = "application/json", headers=()):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def do_GET(self):  # noqa: N802
                if self.path.rstrip("/") != "/v1/models":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                entry = {"id": server.model, "object": "model", "created": 0, "owned_by": "fault-server"}
                if server.max_model_len is not None:
                    entry["max_model_len"] = server.max_model_len
                self._send(200, json.dumps({"object": "list", "data": [entry]}).encode())

            def _stream(self, body, reply, cut: bool):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                base = {
                    "id": "chatcmpl-fault-server",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": body["model"],
                    "system_fingerprint": "fp_fault",
                }
                words = re.findall(r"\s*\S+", reply["choices"][0]["message"]["content"]) or [""]
                try:
                    for i, w in enumerate(words):
                        delta = {"role": "assistant", "content": w} if i == 0 else {"content": w}
                        self.wfile.write(
                            f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta, 'finish_reason': None}]})}\n\n".encode()
                        )
                        self.wfile.flush()
                        if cut:
                            return
                        time.sleep(server.stream_delay_s)
                    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    self.wfile.write(f"data: {json.dumps(last)}\n\n".encode())
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self.wfile.write(
                            f"data: {json.dumps({**base, 'choices': [], 'usage': reply['usage']})}\n\n".encode()
                        )
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):  # noqa: N802
                auth = self.headers.get("Authorization") or ""
                with server._lock:
                    server.keys.append(auth[7:] if auth.startswith("Bearer ") else auth)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                fault = server._next_fault()
                name = fault[0] if isinstance(fault, tuple) else fault
                with server._lock:
                    server.log.append(Request(body, name))
                if server.delay_s:
                    time.sleep(server.delay_s)
                if body.get("model") != server.model:
                    self._send(
                        404, json.dumps({"error": {"message": f"model {body.get('model')!r} not served"}}).encode()
                    )
                    return
                reply = completion(body, server.reply(body))
                try:
                    self._answer(name, fault, body, reply)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.close_connection = True

            def _answer(self, name, fault, body, reply):
                if name == "400":
                    self._send(
                        400,
                        b'{"error": {"message": "injected: response_format is not supported", '
                        b'"type": "invalid_request_error"}}',
                    )
                elif body.get("stream") and name in (None, "stream_cut"):
                    self._stream(body, reply, cut=name == "stream_cut")
                elif name in ("500", "503"):
                    self._send(int(name), b'{"error": {"message": "injected server error", "type": "server_error"}}')
                elif name == "429":
                    self._send(
                        429,
                        b'{"error": {"message": "rate limited", "type": "rate_limit"}}',
                        headers=[("Retry-After", str(fault[1]))],
                    )
                elif name == "timeout":
                    time.sleep(server.hang_s)
                    self._send(200, json.dumps(reply).encode())
                elif name == "drop":
                    self.close_connection = True  # nothing written: "server disconnected without a response"
                elif name == "html":
                    self._send(200, b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html")
                elif name == "truncated":
                    text = json.dumps(reply).encode()
                    self._send(200, text[: len(text) // 2])
                elif name == "no_choices":
                    self._send(200, json.dumps({**reply, "choices": []}).encode())
                elif name == "short_choices":
                    self._send(200, json.dumps({**reply, "choices": reply["choices"][:-1]}).encode())
                elif name == "content_filter":
                    choice = reply["choices"][0]
                    choice.update(finish_reason="content_filter", message={"role": "assistant", "content": ""})
                    if choice.get("logprobs"):
                        choice["logprobs"] = {"content": []}
                    self._send(200, json.dumps(reply).encode())
                elif name == "echo_key":
                    key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    status = fault[1] if isinstance(fault, tuple) else 401
                    if status == 200:
                        content = (reply["choices"][0].get("logprobs") or {}).get("content") or []
                        content[0].update(token=key, logprob=None)
                        self._send(200, json.dumps(reply).encode())
                    else:
                        self._send(
                            int(status),
                            json.dumps(
                                {
                                    "error": {
                                        "message": f"Incorrect API key provided: {key}",
                                        "type": "invalid_request_error",
                                    }
                                }
                            ).encode(),
                        )
                elif name == "null_logprob":
                    content = (reply["choices"][0].get("logprobs") or {}).get("content") or []
                    if content:
                        content[min(1, len(content) - 1)]["logprob"] = None
                    self._send(200, json.dumps(reply).encode())
                else:
                    self._send(200, json.dumps(reply).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
            import socket

            with self._lock:
                conns, self._conns = list(self._conns), set()
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
