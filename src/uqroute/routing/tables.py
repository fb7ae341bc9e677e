"""Paper Tables 4 and 5 (Appendix G) and the routing status page, assembled from the per-SLM
``proxy`` and ``routing_warnings`` artifacts.

Table 4 in the paper's layout: one target (HellaSwag), one LLM (GPT-4.1 mini), one UQ method
(perplexity), partially in-domain proxy data; rows: proxy vs random routing; columns: SLMs.
Table 5 in the paper's layout: the named out-of-domain shifts (``routing.table5.shifts``) for
one LLM and each proxy method (the paper does not name Table 5's method; ``routing.table5.method``
picks one); rows: shift × method × {proxy, random}; columns: SLMs. Each is written beside the
full grid (every LLM, target and method). Values are RMS distances to the oracle curve, mean
over sampling seeds at ``routing.k``, in both readings: ``proxy`` (at the requested ratio) and
``proxy_realised`` (along the realised ratio); ``random`` is expected random routing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from .. import io
from .config import OUT_OF_DOMAIN, PARTIAL_IN_DOMAIN

__all__ = ["READINGS", "TABLE_FILES", "table4", "table5", "to_markdown", "write_tables", "status_markdown"]

#: routing row label → proxy column (mean over seeds).
READINGS = {"proxy": "rms", "proxy_realised": "rms_realised", "random": "rms_random"}

#: Output key → file written by the `routing_tables` rule.
TABLE_FILES = {
    "table4_csv": "results/routing/tables/table4.csv",
    "table4_full_csv": "results/routing/tables/table4_full.csv",
    "table4_md": "results/routing/tables/table4.md",
    "table5_csv": "results/routing/tables/table5.csv",
    "table5_full_csv": "results/routing/tables/table5_full.csv",
    "table5_md": "results/routing/tables/table5.md",
    "status": "results/routing/status.md",
}


def _wide(proxy: pl.DataFrame, keys: list[str], slms: Sequence[str], k: float) -> pl.DataFrame:
    """Mean over seeds at k, one row per (keys, routing reading), one column per SLM (``slms`` order)."""
    schema = {c: pl.Utf8 for c in keys} | {"routing": pl.Utf8} | {s: pl.Float64 for s in slms}
    df = proxy.filter((pl.col("k") - k).abs() < 1e-9)
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    mean = df.group_by(keys + ["slm"]).agg([pl.col(c).mean().alias(r) for r, c in READINGS.items()])
    long = mean.unpivot(index=keys + ["slm"], on=list(READINGS), variable_name="routing", value_name="rms")
    wide = long.pivot(on="slm", index=keys + ["routing"], values="rms")
    for s in slms:
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(s))
    order = {r: i for i, r in enumerate(READINGS)}
    return (
        wide.with_columns(pl.col("routing").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort(keys + ["_o"])
        .select(list(schema))
        .cast(schema)
    )


def _first(value, options: Sequence[str]):
    return value if value is not None else (options[0] if options else None)


def table4(
    proxy: pl.DataFrame,
    p: Mapping,
    *,
    slms: Sequence[str],
    llms: Sequence[str],
    datasets: Sequence[str],
    methods: Sequence[str],
):
    """(paper layout, full grid, selection) for Table 4 (partially in-domain proxy data)."""
    sel = dict(p["table4"])
    sel = {
        "target": _first(sel["target"], datasets),
        "llm": _first(sel["llm"], llms),
        "method": _first(sel["method"], methods),
        "slms": list(sel["slms"] or slms),
    }
    pid = proxy.filter(pl.col("setting") == PARTIAL_IN_DOMAIN)
    k = float(p["k"])
    paper = _wide(
        pid.filter(
            (pl.col("target") == sel["target"]) & (pl.col("llm") == sel["llm"]) & (pl.col("method") == sel["method"])
        ),
        [],
        sel["slms"],
        k,
    )
    full = _wide(pid, ["llm", "target", "method"], list(slms), k)
    return paper, full, sel


def table5(proxy: pl.DataFrame, p: Mapping, *, slms: Sequence[str], llms: Sequence[str], methods: Sequence[str]):
    """(paper layout, full grid, selection) for Table 5 (the named out-of-domain shifts).

    The paper does not name Table 5's UQ method: with ``table5.method`` null the paper layout has
    one block per proxy method (``methods``, in that order); the ``method`` column says which.
    The full grid also holds the generic ``out_of_domain`` setting when it ran."""
    shifts = list(p["shifts"])
    sel = dict(p["table5"])
    sel = {
        "shifts": list(sel["shifts"] or shifts),
        "llm": _first(sel["llm"], llms),
        "methods": [sel["method"]] if sel["method"] is not None else list(methods),
        "slms": list(sel["slms"] or slms),
    }
    ood = proxy.filter(pl.col("setting").is_in(shifts + [OUT_OF_DOMAIN])).rename({"setting": "shift"})
    k = float(p["k"])
    paper = _wide(
        ood.filter(
            pl.col("shift").is_in(sel["shifts"])
            & (pl.col("llm") == sel["llm"])
            & pl.col("method").is_in(sel["methods"])
        ),
        ["shift", "target", "method"],
        sel["slms"],
        k,
    )
    if paper.height:  # shifts in the configured order, as the paper lists them; methods in the configured order
        rank = {s: i for i, s in enumerate(sel["shifts"])}
        mrank = {m: i for i, m in enumerate(sel["methods"])}
        paper = (
            paper.with_columns(
                pl.col("shift").replace_strict(rank, return_dtype=pl.Int64).alias("_s"),
                pl.col("method").replace_strict(mrank, return_dtype=pl.Int64).alias("_m"),
            )
            .sort(["_s", "target", "_m"], maintain_order=True)
            .drop("_s", "_m")
        )
    full = _wide(ood, ["shift", "llm", "target", "method"], list(slms), k)
    return paper, full, sel


def to_markdown(df: pl.DataFrame, *, digits: int = 4, empty: str = "") -> str:
    """A GitHub-flavoured markdown table (floats rounded to ``digits``; missing values as –)."""
    if df.height == 0:
        return f"_{empty or 'No rows.'}_\n"

    def fmt(v):
        if v is None:
            return "–"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines) + "\n"


_READINGS_MD = (
    "Readings (RMS distance to the oracle routing curve, lower is better): `proxy` = proxy thresholds scored at the "
    "requested routing ratio (what a budget buys); `proxy_realised` = the proxy curve drawn against the fraction actually "
    "routed, the reading whose magnitude matches the paper's Table 4 (docs/routing.md); `random` = expected random routing."
)


def _missing_note(missing: Sequence[str], shown: Sequence[str]) -> str:
    gone = [s for s in shown if s in missing]
    return f"\n**Missing SLMs** (no routing results, column shows –): {', '.join(gone)}.\n" if gone else ""


def write_tables(
    proxy: pl.DataFrame, p: Mapping, outputs: Mapping[str, str], *, slms, llms, datasets, methods, missing=()
) -> None:
    """Write Tables 4 and 5 (paper layout CSV, full-grid CSV, and both in one markdown file)."""
    k, seeds = float(p["k"]), ", ".join(map(str, p["seeds"]))
    p4, f4, s4 = table4(proxy, p, slms=slms, llms=llms, datasets=datasets, methods=methods)
    p5, f5, s5 = table5(proxy, p, slms=slms, llms=llms, methods=methods)
    md4 = (
        f"Table 4: Routing with proxy routing data vs. random routing on {s4['target']} ({s4['method']}, routing to "
        f"{s4['llm']}; partially in-domain proxy data: all other datasets; k = {k}, mean over seeds {seeds}).\n\n{_READINGS_MD}\n\n"
        + to_markdown(p4, empty=f"No partially in-domain results for {s4['target']} / {s4['llm']} / {s4['method']}.")
        + _missing_note(missing, s4["slms"])
        + "\n## Full grid (every LLM, target and proxy method)\n\n"
        + to_markdown(f4, empty="No partially in-domain results.")
        + _missing_note(missing, slms)
    )
    shifts = (
        ", ".join(
            f"{n} ({' + '.join(p['shifts'][n]['sources'])} → {' + '.join(p['shifts'][n]['targets'])})"
            for n in s5["shifts"]
        )
        or "none configured"
    )
    unnamed = (
        "The paper does not name Table 5's UQ method; it is shown for each proxy method of §4.2 (column `method`)."
        if p["table5"]["method"] is None
        else f"UQ method: {s5['methods'][0]} (routing.table5.method; the paper does not name one)."
    )
    md5 = (
        f"Table 5: Routing with proxy routing data vs. random routing under out-of-domain shifts ({', '.join(s5['methods'])}, routing to "
        f"{s5['llm']}; k = {k}, mean over seeds {seeds}). Shifts (routing.shifts): {shifts}. {unnamed}\n\n{_READINGS_MD}\n\n"
        + to_markdown(p5, empty="No out-of-domain results (no shifts configured, or none scored).")
        + _missing_note(missing, s5["slms"])
        + "\n## Full grid (every shift, the generic out-of-domain setting when on, every LLM, target and proxy method)\n\n"
        + to_markdown(f5, empty="No out-of-domain results.")
        + _missing_note(missing, slms)
    )
    for df, key in ((p4, "table4_csv"), (f4, "table4_full_csv"), (p5, "table5_csv"), (f5, "table5_full_csv")):
        with io.atomic_path(outputs[key], suffix=".csv") as tmp:
            df.write_csv(tmp)
    io.write_text(md4, outputs["table4_md"])
    io.write_text(md5, outputs["table5_md"])


def status_markdown(slms: Sequence[str], assembled: Sequence[str], warnings: pl.DataFrame, mode: str) -> str:
    """The routing status page: which SLMs are assembled, which are missing, and what each recorded."""
    missing = [s for s in slms if s not in assembled]
    lines = [
        "# Routing status",
        "",
        f"`routing.assemble: {mode}`: {len(assembled)} of {len(slms)} SLMs assembled into the tables and figures.",
        "",
    ]
    if missing:
        lines += [
            f"**Missing SLMs: {', '.join(missing)}.** They have no routing results (their `routing` job or one of its "
            "upstream jobs failed or was not run; see `logs/`). The other SLMs' results are complete.",
            "",
        ]
    else:
        lines += ["No SLM is missing.", ""]
    lines += ["| SLM | status | " + " | ".join(_KINDS) + " |", "|" + "---|" * (2 + len(_KINDS))]
    for s in slms:
        if s not in assembled:
            lines.append(f"| {s} | missing | " + " | ".join("–" for _ in _KINDS) + " |")
            continue
        w = warnings.filter(pl.col("slm") == s)
        counts = [str(w.filter(pl.col("kind") == kind).height) for kind in _KINDS]
        lines.append(f"| {s} | assembled | " + " | ".join(counts) + " |")
    failed = warnings.filter(pl.col("kind") == "failed")
    if failed.height:
        lines += ["", "## Failed evaluations (the other methods' results are complete)", ""]
        lines += [f"- {r['slm']}: {r['message']}" for r in failed.iter_rows(named=True)]
    lines += ["", "Counts are rows of `results/routing/{slm}/warnings.parquet` (artifact `routing_warnings`)."]
    return "\n".join(lines) + "\n"


_KINDS = ("failed", "no_scores", "one_class", "degenerate_pool", "dropped_rows", "no_sources")
