"""Deployable routers (docs/router.md): calibrate a router from a hold-out set, serve it.

* :mod:`.calibrate` — the pooled hold-out set, thresholds, predicted accuracy curve, operating point;
* :mod:`.file` — the router file (fields: ``uqroute.schema.ROUTER_FILE``);
* :mod:`.build` — the rules ``router_holdout``, ``router_probe``, ``router`` and ``uqroute calibrate``;
* :mod:`.tracking` — the streaming quantile threshold and the live monitor (realised LLM-call
  fraction, W1 to the hold-out confidences, drift warning);
* :mod:`.slm` — the confidence of one request (on the inference engine's online worker);
* :mod:`.core` — :class:`Router` (``Router.from_file(...)``, ``router.route(messages)``);
* :mod:`.server` — the OpenAI-compatible HTTP server (``uqroute serve``).

Importing the package imports neither torch nor the server's web framework.
"""

from __future__ import annotations

from .calibrate import POOLED, CalibrationError, calibrate, pooled_holdout, predicted_accuracy, select_holdout
from .config import DEFAULTS, MODES, RouterConfigError, check_config, config_problems, router_pairs
from .file import RouterFileError, check_router_file, read_router_file, write_router_file
from .tracking import Monitor, QuantileThreshold

__all__ = [
    "POOLED",
    "CalibrationError",
    "calibrate",
    "pooled_holdout",
    "predicted_accuracy",
    "select_holdout",
    "DEFAULTS",
    "MODES",
    "RouterConfigError",
    "check_config",
    "config_problems",
    "router_pairs",
    "RouterFileError",
    "check_router_file",
    "read_router_file",
    "write_router_file",
    "Monitor",
    "QuantileThreshold",
    "Router",
    "calibrate_file",
    "serve",
]


def __getattr__(attr):  # lazy: the Router pulls in the inference engine, the server its web framework
    if attr == "Router":
        from .core import Router

        return Router
    if attr == "calibrate_file":  # `uqroute calibrate`
        from .build import calibrate_file

        return calibrate_file
    if attr == "serve":  # `uqroute serve`
        from .server import serve

        return serve
    raise AttributeError(attr)
