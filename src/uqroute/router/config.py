"""The `router:` config section: defaults (from the config schema) and the start-up check.

``DEFAULTS`` is the library's copy of the section's defaults, read from ``config_schema.yaml``
(the one source of every default). :func:`check_config` catches every mistake the config can
reveal before any job runs; :func:`check_operating_point` / :func:`check_mode` are shared with
``uqroute calibrate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..settings import defaults, section

__all__ = [
    "DEFAULTS",
    "MODES",
    "RouterConfigError",
    "UNSUPPORTED",
    "check_config",
    "config_problems",
    "resolve",
    "check_operating_point",
    "check_mode",
    "router_pairs",
]

#: Defaults of the section, read from the config schema.
DEFAULTS: dict = defaults("router")

#: How the served threshold behaves: the calibrated one throughout, or the live confidence quantile.
MODES = ("fixed", "tracking")

#: UQ methods a router cannot serve, and why.
UNSUPPORTED = {
    "trained_probe": (
        "trained_probe is the in-domain probe: it is trained on the target dataset's own training rows, which live "
        "traffic does not have. Use ood_probe (the same network trained on other datasets; the router trains it on "
        "every dataset of the run)"
    ),
}


class RouterConfigError(ValueError):
    """A `router:` value (or a ``uqroute calibrate`` option) that cannot work; the message names the key."""


def resolve(router_cfg: Mapping | None) -> dict:
    """The section with every default filled in: ``uqroute.settings.section("router", router_cfg)``."""
    return section("router", router_cfg)


def _err(key: str, msg: str) -> RouterConfigError:
    return RouterConfigError(f"router.{key}: {msg}")


def check_operating_point(op, *, key: str = "router.operating_point") -> dict:
    """``{"llm_fraction": r}`` or ``{"llm_accuracy_share": s}``, checked: exactly one key.

    ``llm_fraction`` lies in [0, 1] (the share of requests sent to the LLM); ``llm_accuracy_share``
    is > 0 (the predicted accuracy as a share of the LLM's own accuracy; the smallest LLM-call
    fraction that reaches it is chosen).
    """
    if not isinstance(op, Mapping) or len(op) != 1 or next(iter(op)) not in ("llm_fraction", "llm_accuracy_share"):
        raise RouterConfigError(
            f"{key}: must be {{llm_fraction: r}} or {{llm_accuracy_share: s}} (exactly one), got {op!r}"
        )
    ((name, v),) = op.items()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RouterConfigError(f"{key}.{name}: must be a number, got {v!r}")
    if name == "llm_fraction" and not 0 <= v <= 1:
        raise RouterConfigError(f"{key}.llm_fraction: must lie in [0, 1], got {v!r}")
    if name == "llm_accuracy_share" and not v > 0:
        raise RouterConfigError(f"{key}.llm_accuracy_share: must be > 0, got {v!r}")
    return {name: float(v)}


def check_mode(mode, window, min_samples, *, prefix: str = "router.") -> None:
    if mode not in MODES:
        raise RouterConfigError(f"{prefix}mode: must be one of {list(MODES)}, got {mode!r}")
    for key, v in (("window", window), ("min_samples", min_samples)):
        if key == "min_samples" and v is None:  # chosen at calibration from the hold-out's uncertainty
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise RouterConfigError(f"{prefix}{key}: must be an integer ≥ 1, got {v!r}")
    if min_samples is not None and min_samples > window:
        raise RouterConfigError(f"{prefix}min_samples: {min_samples} is larger than {prefix}window ({window})")


def check_config(
    router_cfg: Mapping | None,
    *,
    slms: Sequence[str],
    llms: Sequence[str],
    uq_methods: Sequence[str],
    routing_seeds: Sequence[int] | None = None,
) -> dict:
    """Check the `router:` section against the run; return it with defaults filled in.

    Raises :class:`RouterConfigError` naming the key for: unknown keys; ``methods`` that are not in
    ``uq.methods`` or that a router cannot serve (:data:`UNSUPPORTED`); ``slms`` / ``llm`` that are
    not SLMs / LLMs of the run; an ``operating_point`` that is not exactly one of ``llm_fraction``
    (in [0, 1]) and ``llm_accuracy_share`` (> 0);
    a ``mode`` other than ``fixed`` / ``tracking``; a ``window``, ``min_samples`` or
    ``max_tokens`` below 1; a ``drift_margin`` outside (0, 1]; a ``seed`` that is not one of
    ``routing.seeds``; a ``k`` outside (0, 1].
    """
    raw = dict(router_cfg or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise RouterConfigError(f"config section router: unknown key(s) {unknown} (known: {sorted(DEFAULTS)})")
    p = resolve(raw)
    methods = p["methods"]
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise _err("methods", f"must be a list of UQ method names, got {methods!r}")
    for m in methods:
        if m in UNSUPPORTED:
            raise _err("methods", f"{m}: {UNSUPPORTED[m]}")
    missing = [m for m in methods if m not in uq_methods]
    if missing:
        raise _err("methods", f"{missing} are not in uq.methods {list(uq_methods)}, so no confidences exist for them")
    if p["slms"] is not None:
        bad = [s for s in p["slms"] if s not in slms]
        if bad:
            raise _err("slms", f"{bad} are not SLMs of this run ({list(slms)})")
    if methods and p["llm"] is None and not llms:
        raise _err("llm", "the run has no LLM whose accuracy could calibrate the router")
    if p["llm"] is not None and p["llm"] not in llms:
        raise _err("llm", f"{p['llm']!r} is not an LLM of this run ({list(llms)})")
    p["operating_point"] = check_operating_point(p["operating_point"])
    check_mode(p["mode"], p["window"], p["min_samples"])
    if isinstance(p["max_tokens"], bool) or not isinstance(p["max_tokens"], int) or p["max_tokens"] < 1:
        raise _err("max_tokens", f"must be an integer ≥ 1, got {p['max_tokens']!r}")
    dm = p["drift_margin"]
    if isinstance(dm, bool) or not isinstance(dm, (int, float)) or not 0 < dm <= 1:
        raise _err("drift_margin", f"must be a number in (0, 1], got {dm!r}")
    if p["k"] is not None and (isinstance(p["k"], bool) or not isinstance(p["k"], (int, float)) or not 0 < p["k"] <= 1):
        raise _err("k", f"must be null (routing.k) or a number in (0, 1], got {p['k']!r}")
    if p["seed"] is not None and routing_seeds is not None and p["seed"] not in routing_seeds:
        raise _err("seed", f"{p['seed']!r} is not one of routing.seeds {list(routing_seeds)} (the hold-out sets drawn)")
    return p


def router_pairs(router_cfg: Mapping | None, slms: Sequence[str]) -> list[tuple[str, str]]:
    """The (SLM, method) pairs the config names: ``router.slms`` (null = every SLM) × ``router.methods``."""
    p = resolve(router_cfg)
    chosen = list(slms) if p["slms"] is None else [s for s in slms if s in p["slms"]]
    return [(s, m) for s in chosen for m in p["methods"]]


def config_problems(config: Mapping) -> list[str]:
    """The mistakes :func:`check_config` finds in a validated config's ``router`` section (checked
    against its SLMs, LLMs, ``uq.methods`` and ``routing.seeds``), as start-up problems naming the
    key (called by :mod:`uqroute.preflight`)."""
    try:
        check_config(
            config.get("router") or {},
            slms=list(config.get("slms") or []),
            llms=list(config.get("llms") or []),
            uq_methods=list((config.get("uq") or {}).get("methods") or []),
            routing_seeds=(config.get("routing") or {}).get("seeds"),
        )
    except ValueError as err:
        return [str(err)]
    return []
