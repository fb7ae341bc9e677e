"""Paper Tables 4 and 5: RMS distance to the oracle curve of proxy vs random routing.

Table 4 (App. G): partially in-domain proxy data, one row per (LLM, target, method, routing),
one column per SLM. Table 5: out-of-domain proxy data, labelled by the shift
"<source domains> → <target domain>". Values are the mean over sampling seeds at the
configured k.
"""

from __future__ import annotations

import polars as pl

from .. import io

__all__ = ["build_tables", "write_tables", "to_markdown"]


def _pivot(proxy: pl.DataFrame, setting: str, k: float, slms: list[str], lead: list[str]) -> pl.DataFrame:
    df = proxy.filter((pl.col("setting") == setting) & ((pl.col("k") - k).abs() < 1e-9))
    keys = [c for c in lead if c in df.columns] + ["llm", "target", "method"]
    schema = {c: pl.Utf8 for c in keys} | {"routing": pl.Utf8} | {s: pl.Float64 for s in slms}
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    mean = df.group_by(keys + ["slm"]).agg(pl.col("rms").mean().alias("proxy"), pl.col("rms_random").mean().alias("random"))
    long = mean.unpivot(index=keys + ["slm"], on=["proxy", "random"], variable_name="routing", value_name="rms")
    wide = long.pivot(on="slm", index=keys + ["routing"], values="rms")
    for s in slms:
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(s))
    return wide.select(list(schema)).sort(keys + ["routing"])


def build_tables(proxy: pl.DataFrame, inputs, *, k: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(Table 4, Table 5) as wide frames with one RMS column per SLM (config order)."""
    t4 = _pivot(proxy, "partial_in_domain", k, inputs.slms, [])
    dom = inputs.domains
    ood = proxy.filter(pl.col("setting") == "out_of_domain")
    shift = {t: "+".join(sorted({dom[s] for s in srcs})) + " → " + dom[t] for t, srcs in zip(ood["target"], ood["sources"].to_list())}
    ood = ood.with_columns(pl.col("target").replace_strict(shift, default=None, return_dtype=pl.Utf8).alias("shift"))
    t5 = _pivot(ood, "out_of_domain", k, inputs.slms, ["shift"])
    return t4, t5


def to_markdown(df: pl.DataFrame, *, digits: int = 4, empty: str = "") -> str:
    """A GitHub-flavoured markdown table (floats rounded to ``digits``)."""
    if df.height == 0:
        return f"_{empty or 'No rows.'}_\n"

    def fmt(v):
        if v is None:
            return "–"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines) + "\n"


def write_tables(t4: pl.DataFrame, t5: pl.DataFrame, outputs) -> None:
    """Write Tables 4 and 5 as CSV and markdown (atomically)."""
    for df, stem, title, empty in (
        (t4, "table4", "Table 4: RMS to the oracle routing curve, proxy routing data (partially in-domain) vs random routing. Lower is better.", "No partially in-domain results (fewer than two datasets)."),
        (t5, "table5", "Table 5: RMS to the oracle routing curve under out-of-domain shifts, proxy vs random routing. Lower is better.", "No out-of-domain results (all datasets share one domain)."),
    ):
        with io.atomic_path(outputs[f"{stem}_csv"], suffix=".csv") as tmp:
            df.write_csv(tmp)
        io.write_text(f"{title}\n\n" + to_markdown(df, empty=empty), outputs[f"{stem}_md"])
