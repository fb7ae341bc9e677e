"""The routing rules: :func:`run_routing` (rule `routing`, one job per SLM) evaluates one SLM
and writes its tables; :func:`assemble_routing` (rule `routing_tables`) builds Tables 4/5 and
the status page from the SLMs that have results.

Nothing is written by a job unless every one of its tables was computed and checked, so a
failure leaves no partial output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from .. import io
from ..schema import ARTIFACTS, check_frame
from .config import resolve
from .evaluation import TABLES, evaluate
from .inputs import RoutingInputError, load_inputs
from .tables import TABLE_FILES, status_markdown, write_tables

log = logging.getLogger("uqroute.routing")

__all__ = ["OUTPUT_KEYS", "ASSEMBLY_KEYS", "run_routing", "assemble_routing", "available_slms"]

#: Output keys of the per-SLM `routing` rule (→ artifact names in :data:`TABLES`).
OUTPUT_KEYS = tuple(TABLES)
#: Output keys of the `routing_tables` rule.
ASSEMBLY_KEYS = tuple(TABLE_FILES)


def run_routing(
    *,
    uq_paths,
    correctness_paths,
    data_paths,
    slms,
    llms,
    datasets,
    outputs: Mapping[str, str],
    params: Mapping | None = None,
    seed: int = 0,
    provenance: dict | None = None,
    proxy_probe_paths=None,
) -> dict[str, pl.DataFrame]:
    """Rule `routing`: evaluate ``slms`` (the rule passes one) and write each table of
    :data:`OUTPUT_KEYS` to ``outputs[key]``. Nothing is written unless every table was computed.
    ``proxy_probe_paths``: the SLM's ``proxy_probe`` artifacts, the leak-free ``ood_probe`` scores of
    the proxy pools (without them an ``ood_probe`` proxy scenario is skipped and recorded)."""
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        raise RoutingInputError(f"routing: outputs lack {missing}")
    inputs = load_inputs(
        uq_paths,
        correctness_paths,
        data_paths,
        slms=slms,
        llms=llms,
        datasets=datasets,
        proxy_probe_paths=proxy_probe_paths,
    )
    tables = evaluate(inputs, params, seed)
    for key, name in TABLES.items():  # check everything before writing anything
        check_frame(tables[key], name, where=str(outputs[key]))
    for key, name in TABLES.items():
        io.write_parquet(tables[key], outputs[key], name, provenance=provenance)
    return tables


def available_slms(slms: Sequence[str], paths_of) -> list[str]:
    """The SLMs whose per-SLM routing tables all exist (``paths_of(slm)`` lists them)."""
    return [s for s in slms if all(Path(p).is_file() for p in paths_of(s))]


def assemble_routing(
    *,
    proxy_paths: Sequence[str],
    warnings_paths: Sequence[str],
    slms: Sequence[str],
    assembled: Sequence[str],
    llms: Sequence[str],
    datasets: Sequence[str],
    methods: Sequence[str],
    outputs: Mapping[str, str],
    params: Mapping | None = None,
) -> None:
    """Rule `routing_tables`: Tables 4/5 (paper layout + full grid) and ``results/routing/status.md``.

    ``assembled`` are the SLMs whose tables are read (``proxy_paths``/``warnings_paths`` in that
    order); the others of ``slms`` are reported as missing. ``methods`` are the uq methods (the
    proxy methods default to them when ``proxy_methods`` is ``all``).
    """
    p = resolve(params)
    if len(proxy_paths) != len(assembled) or len(warnings_paths) != len(assembled):
        raise RoutingInputError(
            f"routing_tables: {len(proxy_paths)} proxy and {len(warnings_paths)} warnings files for {len(assembled)} SLMs"
        )
    proxy = [io.read_artifact(path, "proxy", stage="routing_tables") for path in proxy_paths]
    warns = [io.read_artifact(path, "routing_warnings", stage="routing_tables") for path in warnings_paths]
    proxy = pl.concat(proxy) if proxy else pl.DataFrame(schema=ARTIFACTS["proxy"].polars_schema())
    warns = pl.concat(warns) if warns else pl.DataFrame(schema=ARTIFACTS["routing_warnings"].polars_schema())
    proxy_methods = list(methods) if p["proxy_methods"] == "all" else list(p["proxy_methods"])
    missing = [s for s in slms if s not in assembled]
    if missing:
        log.warning("routing_tables: SLMs without routing results: %s", ", ".join(missing))
    write_tables(
        proxy,
        p,
        outputs,
        slms=list(slms),
        llms=list(llms),
        datasets=list(datasets),
        methods=proxy_methods,
        missing=missing,
    )
    io.write_text(status_markdown(list(slms), list(assembled), warns, p["assemble"]), outputs["status"])
