"""The `routing:` config section: defaults, the paper's named out-of-domain shifts, and the
start-up check (:func:`check_config`) that catches every routing mistake the config can reveal
before any job runs.

``DEFAULTS`` is the one Python copy of the defaults; ``tests/test_routing_config.py`` checks it
against ``config/schema.yaml`` (which Snakemake uses to fill them in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..settings import defaults, section
from .curves import ratio_grid

__all__ = [
    "DEFAULTS",
    "LEAK_FREE_METHODS",
    "OUT_OF_DOMAIN",
    "PARTIAL_IN_DOMAIN",
    "ROWS",
    "RoutingConfigError",
    "Scenario",
    "check_config",
    "config_problems",
    "proxy_probe_jobs",
    "proxy_probe_owner",
    "proxy_probe_pairs",
    "resolve",
    "scenarios",
]

#: The partially in-domain setting: every other dataset of the run is a source (paper §4.2).
PARTIAL_IN_DOMAIN = "partial_in_domain"
#: The generic (fully) out-of-domain setting, on with ``routing.out_of_domain``: the sources are the
#: datasets of the run whose domain differs from the target's (paper §4.2: "proxy routing data
#: derived from source datasets with no domain overlap").
OUT_OF_DOMAIN = "out_of_domain"
#: Proxy methods whose per-dataset confidences were trained on other datasets of the run, the
#: target included: in a proxy pool, source S of target T is scored instead by the probe trained
#: without S and T (rule ``proxy_probe``), so that the pool holds no information from T (§4.2).
LEAK_FREE_METHODS = ("ood_probe",)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_ASSEMBLE = ("all", "available")
#: ``routing.rows``: each method on its own scored rows (the paper's rule, the default) or on the rows
#: every method scored (the names of ``uqroute.results.tidy(rows=...)``).
ROWS = ("per_method", "common")
_RESERVED = {"tables", "figures"}  # folders under results/routing/ beside the per-SLM ones

#: Defaults of the section, read from the config schema (the one source of every default).
DEFAULTS: dict = defaults("routing")


class RoutingConfigError(ValueError):
    """A `routing:` config value that cannot work with this run; the message names the key."""


@dataclass(frozen=True)
class Scenario:
    """One proxy-routing evaluation: a target dataset and the source datasets pooled for it.

    ``setting`` is ``partial_in_domain``, ``out_of_domain`` or the name of a shift from ``routing.shifts``.
    """

    setting: str
    target: str
    sources: tuple[str, ...]


def resolve(routing_cfg: Mapping | None) -> dict:
    """The section with every default filled in (nested ``table4``/``table5`` included):
    ``uqroute.settings.section("routing", routing_cfg)``."""
    return section("routing", routing_cfg)


def _err(key: str, msg: str) -> RoutingConfigError:
    return RoutingConfigError(f"routing.{key}: {msg}")


def _names(value, key: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise _err(key, f"must be a non-empty list of names, got {value!r}")
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise _err(key, f"lists {dupes} more than once")
    return list(value)


def check_config(
    routing_cfg: Mapping | None,
    datasets: Sequence[str],
    uq_methods: Sequence[str],
    slms: Sequence[str] | None = None,
    llms: Sequence[str] | None = None,
) -> dict:
    """Check the `routing:` section against the run; return it with defaults filled in.

    Raises :class:`RoutingConfigError` (a ``ValueError``) naming the key for: unknown keys;
    a ``ratio_step`` that does not divide 1; ``k``/``k_sweep`` outside (0, 1]; ``bins`` < 1;
    ``proxy_methods`` that are unknown or not in ``uq.methods``; shifts whose name is not
    ``[a-z0-9_]``, that reuse ``partial_in_domain``, whose sources or targets are not datasets
    of the run, or whose target is one of its own sources; ``table4``/``table5`` selections
    naming a dataset, shift, LLM, SLM or proxy method that the run does not have (SLMs and
    LLMs are checked when ``slms``/``llms`` are given); an SLM named ``tables`` or ``figures``
    (its results folder would clash); an unknown ``assemble`` mode or ``rows`` rule.
    """
    datasets, uq_methods = list(datasets), list(uq_methods)
    raw = dict(routing_cfg or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise RoutingConfigError(f"config section routing: unknown key(s) {unknown} (known: {sorted(DEFAULTS)})")
    for sub in ("table4", "table5"):
        if raw.get(sub) is not None:
            if not isinstance(raw[sub], Mapping):
                raise _err(sub, f"must be a mapping, got {raw[sub]!r}")
            extra = sorted(set(raw[sub]) - set(DEFAULTS[sub]))
            if extra:
                raise _err(sub, f"unknown key(s) {extra} (known: {sorted(DEFAULTS[sub])})")
    p = resolve(raw)
    try:
        ratio_grid(float(p["ratio_step"]))
    except (TypeError, ValueError) as err:
        raise _err("ratio_step", str(err).replace("routing.ratio_step=", "")) from None
    if not isinstance(p["bins"], int) or p["bins"] < 1:
        raise _err("bins", f"must be an integer ≥ 1, got {p['bins']!r}")
    for key, values in (("k", [p["k"]]), ("k_sweep", list(p["k_sweep"]))):
        bad = [v for v in values if not isinstance(v, (int, float)) or not 0 < v <= 1]
        if bad:
            raise _err(key, f"sampling ratios must lie in (0, 1], got {bad}")
    if not p["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) for s in p["seeds"]):
        raise _err("seeds", f"must be a non-empty list of integers, got {p['seeds']!r}")
    for key in ("bootstrap", "random_mc"):
        if not isinstance(p[key], int) or p[key] < 0:
            raise _err(key, f"must be an integer ≥ 0, got {p[key]!r}")
    # proxy methods
    if p["proxy_methods"] == "all":
        proxy = list(uq_methods)
    else:
        proxy = _names(p["proxy_methods"], "proxy_methods")
        from ..uq import METHODS  # the registry only; no model code

        unknown = [m for m in proxy if m not in METHODS]
        if unknown:
            raise _err("proxy_methods", f"unknown UQ method(s) {unknown} (known: {sorted(METHODS)})")
        unselected = [m for m in proxy if m not in uq_methods]
        if unselected:
            raise _err(
                "proxy_methods",
                f"{unselected} are not in uq.methods {uq_methods}, so no confidences would exist for them",
            )
    # shifts
    shifts = p["shifts"]
    if not isinstance(shifts, Mapping):
        raise _err("shifts", f"must map shift names to {{sources, targets}}, got {shifts!r}")
    for name, shift in shifts.items():
        where = f"shifts.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise _err(where, "shift names use lower-case letters, digits and underscores (they become file names)")
        if name in (PARTIAL_IN_DOMAIN, OUT_OF_DOMAIN):
            raise _err(
                where,
                f"{name!r} is the name of a built-in setting (partially in-domain, generic out-of-domain); choose another name",
            )
        if not isinstance(shift, Mapping) or set(shift) != {"sources", "targets"}:
            raise _err(where, f"must have exactly the keys sources and targets, got {shift!r}")
        for part in ("sources", "targets"):
            names = _names(shift[part], f"{where}.{part}")
            missing = [d for d in names if d not in datasets]
            if missing:
                raise _err(f"{where}.{part}", f"{missing} are not datasets of this run ({datasets})")
        both = [d for d in shift["targets"] if d in shift["sources"]]
        if both:
            raise _err(
                f"{where}.targets", f"{both} are also sources of the shift: a target may not be in its own proxy data"
            )
    # paper-layout tables
    t4, t5 = p["table4"], p["table5"]
    if t4["target"] is not None and t4["target"] not in datasets:
        raise _err("table4.target", f"{t4['target']!r} is not a dataset of this run ({datasets})")
    if t5["shifts"] is not None:
        missing = [s for s in _names(t5["shifts"], "table5.shifts") if s not in shifts]
        if missing:
            raise _err("table5.shifts", f"{missing} are not shifts defined under routing.shifts ({sorted(shifts)})")
    for sub, t in (("table4", t4), ("table5", t5)):
        if t["method"] is not None and t["method"] not in proxy:
            raise _err(f"{sub}.method", f"{t['method']!r} is not one of the proxy methods {proxy}")
        if llms is not None and t["llm"] is not None and t["llm"] not in llms:
            raise _err(f"{sub}.llm", f"{t['llm']!r} is not an LLM of this run ({list(llms)})")
        if t["slms"] is not None:
            names = _names(t["slms"], f"{sub}.slms")
            if slms is not None:
                missing = [s for s in names if s not in slms]
                if missing:
                    raise _err(f"{sub}.slms", f"{missing} are not SLMs of this run ({list(slms)})")
    clash = sorted(set(slms or ()) & _RESERVED)
    if clash:
        raise RoutingConfigError(
            f"slms: {clash} would share results/routing/<name>/ with the routing "
            f"{' and '.join(sorted(_RESERVED))} folders; rename the model"
        )
    if not isinstance(p["out_of_domain"], bool):
        raise _err("out_of_domain", f"must be true or false, got {p['out_of_domain']!r}")
    if p["assemble"] not in _ASSEMBLE:
        raise _err("assemble", f"must be one of {list(_ASSEMBLE)}, got {p['assemble']!r}")
    if p["rows"] not in ROWS:
        raise _err("rows", f"must be one of {list(ROWS)}, got {p['rows']!r}")
    return p


def scenarios(
    datasets: Sequence[str], shifts: Mapping | None, domains: Mapping[str, str] | None = None
) -> list[Scenario]:
    """Every proxy evaluation of the run: ``partial_in_domain`` for each dataset (sources: all
    other datasets); with ``domains`` (dataset → domain, given when ``routing.out_of_domain`` is on)
    ``out_of_domain`` for each dataset that has a dataset of another domain in the run (sources:
    every such dataset, in run order); then each named shift's targets (sources: the shift's sources)."""
    datasets = list(datasets)
    out = [Scenario(PARTIAL_IN_DOMAIN, t, tuple(d for d in datasets if d != t)) for t in datasets if len(datasets) > 1]
    if domains is not None:
        missing = [d for d in datasets if d not in domains]
        if missing:
            raise RoutingConfigError(f"routing.out_of_domain: no domain known for dataset(s) {missing}")
        for t in datasets:
            sources = tuple(d for d in datasets if domains[d] != domains[t])
            if sources:
                out.append(Scenario(OUT_OF_DOMAIN, t, sources))
    for name, shift in (shifts or {}).items():
        out += [Scenario(name, t, tuple(shift["sources"])) for t in shift["targets"]]
    return out


def config_problems(config: Mapping) -> list[str]:
    """The mistakes :func:`check_config` finds in a validated config's ``routing`` section (checked
    against its ``datasets`` and ``uq.methods``), as start-up problems naming the key (called by
    :mod:`uqroute.preflight`)."""
    try:
        check_config(
            config.get("routing") or {},
            list(config.get("datasets") or []),
            list((config.get("uq") or {}).get("methods") or []),
        )
    except ValueError as err:
        return [str(err)]
    return []


def proxy_probe_pairs(scs: Sequence[Scenario], datasets: Sequence[str]) -> list[tuple[str, str]]:
    """The dataset pairs whose leak-free probe the proxy study needs: one per (source, target) of
    ``scs``, in run order within the pair (the probe is the same for (S, T) and (T, S)), in run
    order overall. A pair needs a third dataset to train on, so a two-dataset run needs none."""
    rank = {d: i for i, d in enumerate(datasets)}
    if len(rank) < 3:
        return []
    pairs = {tuple(sorted((s, sc.target), key=rank.__getitem__)) for sc in scs for s in sc.sources}
    return sorted(pairs, key=lambda p: (rank[p[0]], rank[p[1]]))


def proxy_probe_owner(pair: Sequence[str], datasets: Sequence[str]) -> str:
    """The dataset whose ``proxy_probe`` job trains the leak-free probe of ``pair``: a round-robin
    (balanced) assignment over the run order. With the datasets at positions i < j of the run's
    n, the pair belongs to i when j − i < n/2 (ties at n/2 to i as well) and to j otherwise, so
    each dataset owns ⌊(n − 1)/2⌋ or ⌈(n − 1)/2⌉ of the n(n − 1)/2 pairs: 7 each for n = 15.
    Our choice of grouping (the paper trains these probes but says nothing of how to batch them);
    it changes only which job trains a probe, never the probe (its seed comes from the pair)."""
    rank = {d: i for i, d in enumerate(datasets)}
    missing = [d for d in pair if d not in rank]
    if len(pair) != 2 or pair[0] == pair[1] or missing:
        raise ValueError(f"proxy-probe pair {tuple(pair)}: needs two different datasets of the run {list(datasets)}")
    i, j = sorted(rank[d] for d in pair)
    return datasets[i] if 2 * (j - i) <= len(rank) else datasets[j]


def proxy_probe_jobs(pairs: Sequence[Sequence[str]], datasets: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """The ``proxy_probe`` jobs of ``pairs`` (as :func:`proxy_probe_pairs` gives them): owner dataset
    (:func:`proxy_probe_owner`) → its pairs in the given order; owners in run order, and only datasets
    that own at least one pair."""
    owned: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        owned.setdefault(proxy_probe_owner(pair, datasets), []).append(tuple(pair))
    return {d: owned[d] for d in datasets if d in owned}
