"""The ``uqroute`` command: ``uqroute calibrate`` (a router file from a hold-out set) and
``uqroute serve`` (an OpenAI-compatible routing server). docs/router.md describes both."""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["main"]


def _calibrate(a) -> int:
    from .router import calibrate_file

    inference, seed = None, None  # None: the settings the hold-out file's provenance records
    if a.configfile:
        from .settings import load_yaml

        cfg = load_yaml(a.configfile) or {}
        inference, seed = cfg.get("inference") or {}, int(cfg.get("seed", 0))
    doc = calibrate_file(
        holdout_path=a.holdout,
        out_path=a.out,
        slm=a.slm,
        method=a.method,
        setting=a.setting,
        target=a.target,
        k=a.k,
        llm_correctness_dir=a.llm_correctness,
        llm_accuracy=a.llm_accuracy,
        llm=a.llm,
        llm_fraction=a.llm_fraction,
        llm_accuracy_share=a.llm_accuracy_share,
        mode=a.mode,
        window=a.window,
        min_samples=a.min_samples,
        drift_margin=a.drift_margin,
        seed=a.seed,
        model_dir=a.slm_dir,
        inference_cfg=inference,
        max_tokens=a.max_tokens,
        inference_seed=seed,
        probe_path=a.probe,
    )
    op = doc["operating_point"]
    print(
        f"{a.out}: {doc['slm']}/{doc['method']}, LLM-call fraction {op['llm_fraction']:.3f}, threshold {op['threshold']}, "
        f"q {op['q']:.3f}, predicted accuracy {op['predicted_accuracy']:.4f} (SLM {doc['curve']['slm_accuracy']:.4f}, "
        f"LLM {doc['curve']['llm_accuracy']:.4f}), mode {doc['serving']['mode']}"
    )
    if doc["serving"]["mode"] == "tracking":
        print(warmup_summary(doc))
    return 0


def warmup_summary(doc) -> str:
    """One line: the warm-up a router file chose and the budget error to expect (docs/router.md)."""
    s, w, r = doc["serving"], doc["serving"]["warmup"], doc["operating_point"]["llm_fraction"]
    return (
        f"warm-up {s['min_samples']} requests ({w['source']}; hold-out {doc['holdout']['n']}), ended early from request "
        f"{w['drift_min_samples']} on if the calibrated threshold's live fraction leaves its band; expected LLM-call "
        f"fraction over the first {s['min_samples']} requests on hold-out-like traffic {r:.3f} ± {w['band_warmup']:.3f} "
        f"({1 - w['alpha']:.0%}), then ± {w['band_tracking']:.3f} over a full window of {s['window']}"
    )


def _client_keys(a) -> list[str]:
    """The client keys: --api-key (repeatable), the lines of --api-key-file, else $UQROUTE_API_KEY; none = no authentication."""
    import os

    keys = list(a.api_key or [])
    if a.api_key_file:
        with open(a.api_key_file) as f:
            keys += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not keys and os.environ.get("UQROUTE_API_KEY"):
        keys = [os.environ["UQROUTE_API_KEY"].strip()]
    if any(len(k) < 8 for k in keys):
        raise ValueError("--api-key: a client key must be at least 8 characters long")
    return keys


def _serve(a) -> int:
    from .router import Router, serve

    if a.log_file:
        fh = logging.FileHandler(a.log_file)
        fh.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("uqroute").addHandler(fh)
    names = a.name or []
    if len(names) > len(a.router):
        raise ValueError(f"--name is given {len(names)} times for {len(a.router)} --router files")
    min_samples = a.min_samples if a.min_samples in ("auto", "file") else int(a.min_samples)
    keys = _client_keys(a)
    routers = []
    points = list(a.operating_point or [None])
    if len(set(points)) != len(points):
        raise ValueError(f"--operating-point: {points} repeats a fraction")
    try:
        for i, path in enumerate(a.router):
            name = names[i] if i < len(names) else None
            routers.append(
                Router.from_file(
                    path,
                    llm_base_url=a.llm_base_url,
                    llm_model=a.llm_model,
                    api_key_env=a.api_key_env,
                    max_retries=a.max_retries,
                    timeout_s=a.timeout,
                    slm_dir=a.slm_dir,
                    fallback=a.fallback,
                    mode=a.mode,
                    name=name if name is None or points[0] is None else f"{name}-{points[0]:g}",
                    llm_fraction=points[0],
                    device=a.device,
                    batch_size=a.batch_size,
                    max_batch_rows=a.max_batch_rows,
                    min_samples=min_samples,
                    client_share=a.client_share if a.client_share > 0 else None,
                    dedupe=not a.no_dedupe,
                    max_shift=a.max_shift if a.max_shift < 1 else None,
                    on_truncated=a.on_truncated,
                    llm_max_model_len=a.llm_max_model_len,
                )
            )
            first = routers[-1]  # the other operating points share its SLM engine and upstream
            for r in points[1:]:
                routers.append(first.at_fraction(r, name=None if name is None else f"{name}-{r:g}"))
    except BaseException:
        for r in routers:
            r.close()
        raise
    for router in routers:
        op, w = router.doc["operating_point"], router.warmup
        logging.getLogger("uqroute.router").info(
            "serving %s on http://%s:%d/v1: SLM %s, method %s, LLM %s at %s, LLM-call fraction %.3f (threshold %s), "
            "mode %s, fallback %s, client keys %d",
            router.name,
            a.host,
            a.port,
            router.slm,
            router.method,
            a.llm_model,
            a.llm_base_url,
            op["llm_fraction"],
            op["threshold"],
            router.mode,
            a.fallback,
            len(keys),
        )
        if router.mode == "tracking":
            logging.getLogger("uqroute.router").info(
                "%s: warm-up %d requests (%s; hold-out %d), ended early from request %d on if the calibrated "
                "threshold's live fraction leaves %.3f ± z·sd (z %.2f); expected LLM-call fraction over the first %d "
                "requests on hold-out-like traffic %.3f ± %.3f (sd %.3f), after the warm-up ± %.3f over a full window",
                router.name,
                w["min_samples"],
                w["source"],
                w["holdout_n"],
                w["drift_min_samples"],
                op["llm_fraction"],
                w["z"],
                w["min_samples"],
                op["llm_fraction"],
                w["band_warmup"],
                w["fraction_sd_warmup"],
                w["band_tracking"],
            )
    serve(
        routers,
        host=a.host,
        port=a.port,
        log_level=a.log_level,
        max_body_bytes=a.max_body_bytes,
        api_keys=keys,
        docs=not a.no_docs,
        client_header=a.client_header,
    )
    return 0


class _Formatter(argparse.HelpFormatter):
    """Help that shows each flag's default (when it has one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or action.option_strings == []:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from . import __version__
    from .io import code_version

    commit = code_version().get("git_commit")
    return f"uqroute {__version__}" + (f" (git {commit[:12]})" if commit else "")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="uqroute",
        description="Uncertainty-based SLM→LLM routers: calibrate and serve (docs/router.md).",
        formatter_class=_Formatter,
    )
    p.add_argument("--version", action="version", version=_version(), help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "calibrate",
        help="write a router file from a hold-out set",
        formatter_class=_Formatter,
        description="A router file from a hold-out parquet file (results/routers/{slm}/holdout.parquet, or any "
        "results/routing/{slm}/holdout.parquet with --setting/--target).",
    )
    c.add_argument("--holdout", required=True, help="hold-out parquet file (artifact holdout or router_holdout)")
    c.add_argument("--out", required=True, help="the router file to write (JSON)")
    for name in ("slm", "method", "setting", "target"):
        c.add_argument(f"--{name}", help=f"select the hold-out set's {name} (needed when the file holds several)")
    c.add_argument("--k", type=float, help="select the hold-out set's k")
    llm = c.add_mutually_exclusive_group(required=True)
    llm.add_argument(
        "--llm-correctness",
        metavar="DIR",
        help="the LLM's correctness folder, e.g. results/correctness/qwen2.5-coder-1.5b",
    )
    llm.add_argument("--llm-accuracy", type=float, help="the LLM's accuracy, if no per-query labels exist")
    c.add_argument("--llm", help="the LLM's name (default: the correctness folder's name)")
    op = c.add_mutually_exclusive_group(required=True)
    op.add_argument("--llm-fraction", type=float, help="target LLM-call fraction in [0, 1]")
    op.add_argument(
        "--llm-accuracy-share",
        type=float,
        help="smallest fraction whose predicted accuracy reaches this share of the LLM's",
    )
    c.add_argument(
        "--mode",
        choices=("fixed", "tracking"),
        default="tracking",
        help="serve the calibrated threshold as is (fixed) or follow the live confidence quantile (tracking)",
    )
    c.add_argument(
        "--window",
        type=int,
        default=500,
        help="live window: requests for the tracking quantile, realised fraction and W1",
    )
    c.add_argument(
        "--min-samples",
        type=int,
        default=None,
        help="tracking warm-up: requests before the tracking quantile replaces the calibrated threshold "
        "(default: min(hold-out size, window), ended early once the calibrated threshold is shown wrong on live "
        "traffic; docs/router.md)",
    )
    c.add_argument(
        "--drift-margin",
        type=float,
        default=0.1,
        help="the budget error accepted: warn when the realised LLM-call fraction is farther than this from the "
        "target (it also sets the earliest end of the warm-up, ceil(r(1-r)/margin^2))",
    )
    c.add_argument("--seed", type=int, help="the hold-out seed whose thresholds are served (default: the first)")
    c.add_argument("--slm-dir", help="the SLM's model directory to record (e.g. resources/models/smollm2-135m)")
    c.add_argument("--probe", help="probe file for probe methods (e.g. results/routers/{slm}/ood_probe.safetensors)")
    c.add_argument(
        "--configfile",
        help="pipeline config whose inference section and seed the confidence was computed with "
        "(default: the settings the hold-out file's provenance records)",
    )
    c.add_argument("--max-tokens", type=int, default=256, help="SLM answer budget for requests without max_tokens")
    c.set_defaults(fn=_calibrate)

    s = sub.add_parser(
        "serve",
        help="serve router files as an OpenAI-compatible server",
        formatter_class=_Formatter,
        description="POST /v1/chat/completions, GET /v1/models, /health, /ready, /metrics (docs/router.md).",
    )
    s.add_argument(
        "--router",
        required=True,
        action="append",
        help="router file (results/routers/{slm}/{method}.json); repeat "
        "it to serve several from one process, each under its own model name",
    )
    s.add_argument(
        "--llm-base-url",
        required=True,
        help="the upstream LLM's OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1",
    )
    s.add_argument("--llm-model", required=True, help="the upstream model name")
    s.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="NAME of the environment variable holding the upstream key (unset is allowed for a server on localhost)",
    )
    s.add_argument(
        "--llm-max-model-len",
        type=int,
        help="the LLM's context in tokens, to refuse a max_tokens it cannot serve "
        "(default: the upstream's /v1/models max_model_len where it says, as vLLM does; else unchecked)",
    )
    s.add_argument("--slm-dir", help="the SLM's model directory (default: the router file's slm_model.model_dir)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind")
    s.add_argument("--port", type=int, default=8000, help="port to bind")
    s.add_argument(
        "--name",
        action="append",
        help="the model name clients use, one per --router in the same order (default uqroute-{slm}-{method})",
    )
    s.add_argument(
        "--api-key",
        action="append",
        help="a client key: /v1/ requests must send 'Authorization: Bearer KEY' "
        "(repeatable: each key is then one client of the tracking's per-client share; also --api-key-file, "
        "or $UQROUTE_API_KEY; default: no authentication)",
    )
    s.add_argument("--api-key-file", help="a file of client keys, one a line ('#' comments)")
    s.add_argument("--no-docs", action="store_true", help="do not serve /docs, /redoc and /openapi.json")
    s.add_argument(
        "--max-body-bytes",
        type=int,
        help="refuse (413) a request body larger than this, before parsing it (default: "
        "32 bytes per token of the SLM's context)",
    )
    s.add_argument(
        "--fallback", action="store_true", help="answer with the SLM's answer (marked slm_fallback) when the LLM fails"
    )
    s.add_argument("--mode", choices=("fixed", "tracking"), help="override the router file's serving.mode")
    s.add_argument(
        "--min-samples",
        default="file",
        help="tracking warm-up: 'file' (the router file's serving.min_samples, chosen or set at calibration), "
        "'auto' (min(hold-out size, window)), or a number; each ends early once the calibrated threshold's "
        "fraction on live traffic leaves its band",
    )
    s.add_argument(
        "--operating-point",
        type=float,
        nargs="+",
        metavar="R",
        help="serve each router file at these LLM-call fractions instead of its own, each under the model name "
        "{name}-{R} (thresholds from the file's hold-out set; one SLM engine for all of them)",
    )
    s.add_argument(
        "--client-share",
        type=float,
        default=0.1,
        help="the largest share of the tracking window one client may "
        "hold (0: no limit); clients are told apart by their --api-key or --client-header",
    )
    s.add_argument(
        "--client-header", help="a request header naming the client (set it only behind a proxy that sets it)"
    )
    s.add_argument(
        "--no-dedupe", action="store_true", help="let a prompt already in the tracking window enter it again"
    )
    s.add_argument(
        "--max-shift",
        type=float,
        default=0.2,
        help="the tracking threshold stays between the hold-out thresholds of "
        "the LLM-call fractions target ± this (1: unbounded)",
    )
    s.add_argument(
        "--on-truncated",
        choices=("route", "mark"),
        default="route",
        help="an SLM answer cut off by the router file's "
        "budget: route it to the LLM, or serve it marked truncated (when the threshold does not route it)",
    )
    s.add_argument(
        "--max-retries", type=int, default=2, help="upstream retries (exponential backoff, the openai client's)"
    )
    s.add_argument("--timeout", type=float, default=60.0, help="upstream timeout per attempt, seconds")
    s.add_argument("--device", help="SLM device (default: cuda when available)")
    s.add_argument("--batch-size", type=int, default=16, help="prompts per prefill chunk")
    s.add_argument("--max-batch-rows", type=int, default=128, help="rows decoded together (continuous batching)")
    s.add_argument("--log-file", help="also write the log (one JSON line per request) to this file")
    s.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level",
    )
    s.set_defaults(fn=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return a.fn(a)
    except (ValueError, FileNotFoundError, NotImplementedError) as err:
        print(f"uqroute {a.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
