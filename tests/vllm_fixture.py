"""A real vLLM OpenAI-compatible server for the tests, shared by every test file of a session.

Import the fixture into a test module::

    from vllm_fixture import vllm_server  # noqa: F401  (pytest fixture)

    def test_x(vllm_server):
        base_url, name = vllm_server

``vllm_server`` starts **one** server per pytest session (serving the converted
SmolLM2-135M-Instruct directory of the ``smollm2_dir`` fixture of conftest.py) and yields a
:class:`VLLMEndpoint` ``(base_url, name)``; ``.server`` is the
``scripts/vllm_server.py`` ``VLLMServer`` (for its metrics). Each test module that
imports the fixture gets its own pytest fixture definition, so the server is kept
in this module and started only once; it is stopped at the end of the session.

Without the vLLM environment (``$UQROUTE_VLLM_PYTHON`` or ``.venv-vllm/bin/python``)
the tests are skipped with the reason printed as a warning and in the skip summary,
unless the ``CI`` environment variable is set: in CI a missing vLLM is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVED_NAME = "smollm2-135m"


def _load_server_module():
    name = "uqroute_scripts_vllm_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "vllm_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


vllm_server_module = _load_server_module()


class VLLMEndpoint(NamedTuple):
    base_url: str
    name: str
    server: object  # scripts/vllm_server.py VLLMServer


_STATE: dict = {"endpoint": None, "error": None}


def _stop() -> None:
    endpoint, _STATE["endpoint"] = _STATE["endpoint"], None
    if endpoint is not None:
        endpoint.server.stop()


def _warm_up(base_url: str) -> None:
    """One request before the tests time anything (vLLM's first request is slow)."""
    import openai

    with openai.OpenAI(api_key="EMPTY", base_url=base_url, max_retries=2, timeout=300) as client:
        client.chat.completions.create(
            model=SERVED_NAME,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=2,
            temperature=0.0,
            logprobs=True,
            top_logprobs=2,
        )


@pytest.fixture(scope="session")
def vllm_server(request) -> VLLMEndpoint:
    python = vllm_server_module.vllm_python()
    if not python.exists():
        reason = (
            f"vLLM server tests need the vLLM environment, but {python} does not exist "
            "(run `make install-vllm` or set UQROUTE_VLLM_PYTHON)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        warnings.warn(f"SKIPPING vLLM tests: {reason}", stacklevel=1)
        pytest.skip(f"SKIPPED (no vLLM): {reason}")
    if _STATE["error"] is not None:
        pytest.fail(f"the vLLM test server failed to start earlier in this session: {_STATE['error']}", pytrace=False)
    if _STATE["endpoint"] is None:
        model_dir = Path(request.getfixturevalue("smollm2_dir"))  # conftest.py: fetch_model's SmolLM2
        server = vllm_server_module.VLLMServer(model_dir, SERVED_NAME, startup_timeout=600)
        try:
            server.start()
            _warm_up(server.base_url)
        except Exception as err:
            server.stop()
            _STATE["error"] = err
            raise
        _STATE["endpoint"] = VLLMEndpoint(server.base_url, SERVED_NAME, server)
        request.addfinalizer(_stop)
    return _STATE["endpoint"]
