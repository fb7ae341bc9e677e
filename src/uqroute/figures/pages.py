"""The report's pages: the run's tables as HTML, shown inline by Snakemake's report.

Snakemake's report offers CSV and markdown files only as downloads, but shows an HTML file as a
page. :func:`write_pages` writes one HTML page per entry of :data:`PAGES` (rule ``report_pages``):

* ``overview``: what run this is (models, datasets, rows per dataset), whether it is too small for
  AUCs to mean much, and every quality warning;
* ``accuracy``: each model's accuracy per dataset with n (evaluation rows only);
* ``alignment``: ROC-AUC with its bootstrap CI, PRR and AURAC per (SLM, dataset, method), with the
  n each method was scored on;
* ``table4``, ``table5``: the paper's Tables 4–5 (paper layout and full grid);
* ``quality``: truncated and unparsable shares per model × dataset × statistic, and each method's
  missing confidences, with the shares above the threshold marked;
* ``routers``: the operating point each router file serves;
* ``status``: the routing status page (``results/routing/status.md``);
* ``queries``: one searchable row per (model, dataset, query) (:func:`uqroute.results.per_query`).

Tables are interactive (sorting, search) with itables, whose JavaScript is embedded in each page,
so the report works offline. :func:`quality_warnings` and :func:`run_summary` give the same
warnings as text for the end of a run (the Snakefile's ``onsuccess``).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from .. import io

__all__ = [
    "PAGES",
    "MIN_ROWS",
    "MISSING_WARN_SHARE",
    "STATISTIC_WARN_SHARE",
    "write_pages",
    "quality_table",
    "missing_table",
    "quality_warnings",
    "accuracy_table",
    "alignment_table",
    "router_table",
    "run_summary",
    "page_html",
]

log = logging.getLogger(__name__)

#: Page name -> file written by rule ``report_pages``.
PAGES = {
    name: f"results/report/{name}.html"
    for name in ("overview", "accuracy", "alignment", "table4", "table5", "quality", "routers", "status", "queries")
}

#: Evaluation rows per dataset below which the overview says that AUCs mean little. Our choice (the
#: paper is silent): at n = 100 with balanced labels the 95 % CI of an AUC of 0.7 is about ±0.1 wide.
MIN_ROWS = 100
#: A method whose confidence is missing on more than this share of an SLM's queries is a warning.
MISSING_WARN_SHARE = 0.5
#: A statistic (greedy answer, samples, verbalizations, judge) whose replies are mostly (more than
#: this share) truncated or unparsable is a warning.
STATISTIC_WARN_SHARE = 0.5

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
p.note { color: #555; max-width: 60em; }
div.warn { background: #fff4e5; border-left: 4px solid #e67e22; padding: .5em .8em; margin: .8em 0; max-width: 70em; }
div.ok { background: #eef8ee; border-left: 4px solid #2e7d32; padding: .5em .8em; margin: .8em 0; }
table.plain { border-collapse: collapse; } table.plain td, table.plain th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td { white-space: pre-wrap; max-width: 36em; vertical-align: top; }
"""


# ------------------------------------------------------------------ HTML
def _bundle() -> str:
    """itables' offline initialisation (its DataTables bundle, inlined): pages need no network."""
    from importlib.resources import files

    from itables.javascript import generate_init_offline_itables_html

    return generate_init_offline_itables_html(str(files("itables") / "html" / "dt_bundle.js"))


def _rounded(df: pl.DataFrame, digits: int = 3) -> pl.DataFrame:
    return df.with_columns([pl.col(c).round(digits) for c, t in df.schema.items() if t.is_float()])


def _plain(df: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else html.escape(str(v))}</td>" for v in r) + "</tr>"
        for r in df.iter_rows()
    )
    return f'<table class="plain"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _table(df: pl.DataFrame, *, search: bool = True, page_length: int = 25) -> str:
    """An interactive (sortable; searchable when ``search``) table of ``df``."""
    from itables import to_html_datatable

    df = _rounded(df)
    if df.height == 0:
        return "<p><i>(no rows)</i></p>" + _plain(df)
    layout = {
        "topStart": "pageLength" if df.height > page_length else None,
        "topEnd": "search" if search else None,
        "bottomStart": "info" if df.height > page_length else None,
        "bottomEnd": "paging" if df.height > page_length else None,
    }
    return to_html_datatable(
        df,
        connected=False,
        maxBytes=0,
        pageLength=page_length,
        layout=layout,
        show_dtypes=False,
        classes="display compact cell-border",
        display_logo_when_loading=False,
    )


def page_html(title: str, blocks: Sequence, *, interactive: bool = True) -> str:
    """A standalone HTML page: ``title`` and ``blocks`` (HTML strings, or (heading, DataFrame[, note]) tuples)."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if isinstance(b, str):
            parts.append(b)
            continue
        heading, df, *note = b
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        if note and note[0]:
            parts.append(f'<p class="note">{note[0]}</p>')
        parts.append(_table(df) if interactive else _plain(_rounded(df)))
    head = f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{_CSS}</style>'
    return (
        f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n{_bundle() if interactive else ''}\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _warn_block(lines: Sequence[str], ok: str) -> str:
    if not lines:
        return f'<div class="ok">{html.escape(ok)}</div>'
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f'<div class="warn"><b>Warnings ({len(lines)})</b><ul>{items}</ul></div>'


# ------------------------------------------------------------------ tables
def _rows_rule(auc_paths) -> str:
    """What the ``auc`` files' provenance says of ``routing.rows`` (the rows each method was scored on)."""
    rules = set()
    for p in auc_paths:
        cfg = io.read_provenance(p).get("config")
        if isinstance(cfg, Mapping) and isinstance(cfg.get("routing"), Mapping):
            rules.add(cfg["routing"].get("rows", "per_method"))  # written before the choice existed: per method
    if rules == {"common"}:
        return (
            "<code>n</code>: the queries every method of the dataset scored (<code>routing.rows: common</code>, our "
            "addition: every method of a dataset is evaluated on the same rows; a method that scored none is left out); "
        )
    if rules == {"per_method"}:
        return (
            "<code>n</code>: queries with both a confidence and a label, the rows the method is evaluated on "
            "(<code>routing.rows: per_method</code>, the paper's rule: a query is dropped only for the method that "
            "cannot score it, so methods can differ in n); "
        )
    return (
        "<code>n</code>: the rows each method is evaluated on (which rule, <code>routing.rows</code>, is "
        f"{'mixed across SLMs' if rules else 'not recorded in these files'}); "
    )


def _read_all(paths, artifact: str, stage: str) -> pl.DataFrame:
    from ..schema import ARTIFACTS

    frames = [io.read_artifact(p, artifact, stage=stage) for p in paths]
    return (
        pl.concat(frames, how="vertical_relaxed")
        if frames
        else pl.DataFrame(schema=ARTIFACTS[artifact].polars_schema())
    )


#: statistic -> (count column, truncated column, unparsable column) of the `quality` artifact
_STATISTICS = {
    "greedy": ("n_rows", "n_truncated", "n_unparsable_answers"),
    "samples": ("n_samples", None, "n_unparsable_samples"),
    "verbal_1s": ("n_verbal_1s", "n_verbal_1s_truncated", "n_unparsable_verbal_1s_confidences"),
    "verbal_2s": ("n_verbal_2s", "n_verbal_2s_truncated", "n_unparsable_verbal_2s_confidences"),
    "judge": ("n_judged", None, "n_unparsable_verdicts"),
}


_REPLIES = {
    "greedy": "greedy replies",
    "samples": "sampled replies",
    "verbal_1s": "verbalization-1s replies",
    "verbal_2s": "verbalization-2s replies",
    "judge": "judge verdicts",
}


def quality_table(quality: pl.DataFrame, *, warn_share: float = 0.1) -> pl.DataFrame:
    """One row per (model, dataset, statistic) of the ``quality`` artifact rows: ``n`` replies,
    ``truncated`` and ``unparsable`` counts and shares (samples: every sample without an answer,
    truncated ones included, counts as unparsable), and ``warning`` where a share is above
    ``warn_share`` (``judge.quality_warn_fraction``). Statistics with no replies are left out."""
    rows = []
    for r in quality.sort("model", "dataset").iter_rows(named=True):
        for stat, (n_col, t_col, u_col) in _STATISTICS.items():
            n = r[n_col]
            if not n:
                continue
            t = r[t_col] if t_col else None
            u = r[u_col]
            ts, us = (t / n if t is not None else None), (u / n if u is not None else None)
            over = [
                f"{what} {s:.0%}"
                for what, s in (("truncated", ts), ("unparsable", us))
                if s is not None and s > warn_share
            ]
            rows.append(
                {
                    "model": r["model"],
                    "dataset": r["dataset"],
                    "statistic": stat,
                    "n": n,
                    "truncated": t,
                    "truncated_share": ts,
                    "unparsable": u,
                    "unparsable_share": us,
                    "warning": ("above " + f"{warn_share:g}: " + ", ".join(over)) if over else None,
                }
            )
    schema = {
        "model": pl.Utf8,
        "dataset": pl.Utf8,
        "statistic": pl.Utf8,
        "n": pl.Int64,
        "truncated": pl.Int64,
        "truncated_share": pl.Float64,
        "unparsable": pl.Int64,
        "unparsable_share": pl.Float64,
        "warning": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def missing_table(uq_paths: Sequence, slms: Sequence[str]) -> pl.DataFrame:
    """Per (SLM, dataset, method): how many evaluation queries have no confidence (``n_missing`` of
    ``n``). The SLM is read from each path (``results/uq/{slm}/{dataset}.parquet``)."""
    rows = []
    for p in uq_paths:
        p = Path(p)
        slm, dataset = p.parent.name, p.stem
        if slms and slm not in slms:
            continue
        uq = io.read_artifact(p, "uq", stage="report")
        for m in uq.columns[1:]:
            col = uq[m].cast(pl.Float64).fill_nan(None)
            rows.append(
                {
                    "slm": slm,
                    "dataset": dataset,
                    "method": m,
                    "n": uq.height,
                    "n_missing": col.null_count(),
                    "missing_share": col.null_count() / uq.height if uq.height else None,
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "slm": pl.Utf8,
            "dataset": pl.Utf8,
            "method": pl.Utf8,
            "n": pl.Int64,
            "n_missing": pl.Int64,
            "missing_share": pl.Float64,
        },
    )


def quality_warnings(
    quality: pl.DataFrame | None,
    missing: pl.DataFrame | None,
    *,
    missing_share: float = MISSING_WARN_SHARE,
    statistic_share: float = STATISTIC_WARN_SHARE,
) -> list[str]:
    """The run's quality warnings, one line each:

    * a method whose confidence is missing on more than ``missing_share`` of an SLM's evaluation
      queries (over all datasets; the datasets are named): it is evaluated on the rest only;
    * a statistic of a model and dataset whose replies are more than ``statistic_share`` truncated
      or unparsable (the methods that read it score few queries, or score cut-off text).
    """
    out = []
    if missing is not None and missing.height:
        agg = missing.group_by("slm", "method", maintain_order=True).agg(
            pl.col("n").sum(),
            pl.col("n_missing").sum(),
            pl.format("{} {}/{}", "dataset", "n_missing", "n").alias("per"),
        )
        for r in agg.iter_rows(named=True):
            if r["n"] and r["n_missing"] / r["n"] > missing_share:
                out.append(
                    f"{r['slm']}: {r['method']} has no confidence on {r['n_missing']} of {r['n']} queries "
                    f"({r['n_missing'] / r['n']:.0%}; {', '.join(r['per'])}); it is evaluated on the rest only"
                )
    if quality is not None and quality.height:
        for r in quality_table(quality).iter_rows(named=True):
            bad = (r["unparsable"] or 0) + (r["truncated"] or 0 if r["statistic"] != "samples" else 0)
            # greedy/verbal counts: truncated and unparsable are disjoint (unparsable counts complete replies only)
            if bad / r["n"] > statistic_share:
                parts = [f"{r['truncated']} truncated"] if r["truncated"] else []
                parts.append(
                    f"{r['unparsable']} without a parsable {'answer' if r['statistic'] in ('greedy', 'samples') else 'verdict' if r['statistic'] == 'judge' else 'confidence'}"
                )
                out.append(
                    f"{r['model']} on {r['dataset']}: {bad} of {r['n']} {_REPLIES[r['statistic']]} ({bad / r['n']:.0%}) are "
                    f"cut off or unparsable ({', '.join(parts)})"
                )
    return out


def accuracy_table(corr: pl.DataFrame, slms: Sequence[str] = ()) -> pl.DataFrame:
    """Accuracy per (model, dataset) on the evaluation rows of :func:`uqroute.results.correctness`:
    ``n`` rows, ``n_labelled`` with a label, ``accuracy`` over those, and how many labels came from
    the rule, the judge, or a truncation."""
    ev = corr.filter(pl.col("split") == "eval")
    return (
        ev.group_by("model", "dataset", maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("correct").count().cast(pl.Int64).alias("n_labelled"),
            pl.col("correct").mean().alias("accuracy"),
            *[
                (pl.col("label_source") == s).sum().cast(pl.Int64).alias(f"n_{s}")
                for s in ("rule", "judge", "truncated")
            ],
        )
        .with_columns(
            pl.when(pl.col("model").is_in(list(slms))).then(pl.lit("slm")).otherwise(pl.lit("llm")).alias("role")
        )
        .select("model", "role", "dataset", "n", "n_labelled", "accuracy", "n_rule", "n_judge", "n_truncated")
    )


def _accuracy_wide(acc: pl.DataFrame) -> pl.DataFrame:
    if acc.height == 0:
        return acc
    cell = acc.with_columns(pl.format("{} (n={})", pl.col("accuracy").round(3), pl.col("n_labelled")).alias("cell"))
    return cell.pivot(on="dataset", index=["model", "role"], values="cell", aggregate_function="first")


def alignment_table(auc: pl.DataFrame, missing: pl.DataFrame | None = None) -> pl.DataFrame:
    """The ``auc`` rows with the CI as one column and, where known, the queries each method could not score."""
    df = auc.with_columns(
        pl.format("[{}, {}]", pl.col("roc_auc_lo").round(3), pl.col("roc_auc_hi").round(3)).alias("roc_auc_ci")
    )
    # what a reader looks for first (the AUC, its CI and n) comes first: the page is narrower than the table
    cols = ["slm", "dataset", "method", "n", "roc_auc", "roc_auc_ci", "prr", "aurac", "slm_accuracy", "label"]
    if missing is not None and missing.height:
        df = df.join(
            missing.select("slm", "dataset", "method", pl.col("n").alias("n_queries"), "n_missing"),
            on=["slm", "dataset", "method"],
            how="left",
        )
        cols += ["n_queries", "n_missing"]
    return df.select(*cols, "prr_polygraph")


def router_table(paths: Sequence) -> pl.DataFrame:
    """The operating point of each router file, with a warning when it routes everything or nothing."""
    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        op, curve, hold = r["operating_point"], r["curve"], r["holdout"]
        frac = op["llm_fraction"]
        warn = "routes every request to the LLM" if frac >= 1 else "routes nothing to the LLM" if frac <= 0 else None
        rows.append(
            {
                "file": str(p),
                "slm": r["slm"],
                "method": r["method"],
                "llm": r.get("llm"),
                "mode": (r.get("serving") or {}).get("mode"),
                "target": json.dumps(op["target"]),
                "llm_fraction": frac,
                "threshold": op["threshold"],
                "predicted_accuracy": op["predicted_accuracy"],
                "accuracy_share": op.get("predicted_accuracy_share"),
                "slm_accuracy": curve["slm_accuracy"],
                "llm_accuracy": curve["llm_accuracy"],
                "holdout_n": hold.get("n"),
                "warning": warn,
            }
        )
    schema = {
        "file": pl.Utf8,
        "slm": pl.Utf8,
        "method": pl.Utf8,
        "llm": pl.Utf8,
        "mode": pl.Utf8,
        "target": pl.Utf8,
        "llm_fraction": pl.Float64,
        "threshold": pl.Float64,
        "predicted_accuracy": pl.Float64,
        "accuracy_share": pl.Float64,
        "slm_accuracy": pl.Float64,
        "llm_accuracy": pl.Float64,
        "holdout_n": pl.Int64,
        "warning": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def _rows_per_dataset(data_paths: Sequence) -> pl.DataFrame:
    frames = []
    for p in data_paths:
        d = io.read_artifact(p, "data", columns=["role"], stage="report")
        frames.append(
            pl.DataFrame(
                {
                    "dataset": [Path(p).stem],
                    "eval_rows": [int((d["role"] == "eval").sum())],
                    "train_rows": [int((d["role"] == "train").sum())],
                }
            )
        )
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"dataset": pl.Utf8, "eval_rows": pl.Int64, "train_rows": pl.Int64})
    )


def _csv(path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema_length=None) if path and Path(path).stat().st_size else pl.DataFrame()


# ------------------------------------------------------------------ the pages
def write_pages(
    inputs: Mapping,
    outputs: Mapping,
    *,
    slms: Sequence[str],
    llms: Sequence[str],
    datasets: Sequence[str],
    methods: Sequence[str],
    results_dir: str | Path = "results",
    warn_share: float = 0.1,
    max_query_rows: int = 5000,
) -> list[str]:
    """Write the report's pages (keys of :data:`PAGES` in ``outputs``) and return the quality warnings.

    ``inputs``: ``data``, ``uq``, ``quality``, ``auc``, ``routers`` (lists of paths), ``table4_csv``,
    ``table4_full_csv``, ``table5_csv``, ``table5_full_csv``, ``status`` (paths). ``results_dir``
    is read for the per-query and accuracy tables (:mod:`uqroute.results`); ``warn_share`` is
    ``judge.quality_warn_fraction``; the queries page shows at most ``max_query_rows`` rows (the
    rest are named; :func:`uqroute.results.per_query` gives all of them).
    """
    from ..results import correctness, per_query

    models = list(dict.fromkeys(list(slms) + list(llms)))
    sizes = _rows_per_dataset(inputs.get("data", []))
    quality = _read_all(inputs.get("quality", []), "quality", "report")
    missing = missing_table(inputs.get("uq", []), slms)
    warnings = quality_warnings(quality, missing)
    for w in warnings:
        log.warning("%s", w)
    auc = _read_all(inputs.get("auc", []), "auc", "report")
    corr = correctness(results_dir, models=models, datasets=datasets)
    acc = accuracy_table(corr, slms)
    pages = {}

    n_eval = sizes["eval_rows"].to_list()
    small = bool(n_eval) and min(n_eval) < MIN_ROWS
    intro = (
        f"<p><b>SLMs:</b> {html.escape(', '.join(slms))}. <b>LLMs:</b> {html.escape(', '.join(llms))}. "
        f"<b>Datasets ({len(datasets)}):</b> {html.escape(', '.join(datasets))}. <b>UQ methods ({len(methods)}):</b> "
        f"{html.escape(', '.join(methods))}.</p>"
    )
    span = (
        f"{min(n_eval)}"
        if n_eval and min(n_eval) == max(n_eval)
        else f"{min(n_eval, default=0)}–{max(n_eval, default=0)}"
    )
    size_note = (
        (
            f'<div class="warn"><b>A small run.</b> {span} evaluation rows per dataset: an AUC on so few '
            f"queries has a 95 % CI tens of points wide (see the alignment page), and relative accuracy on the few most "
            f"confident queries jumps. This run shows that the pipeline works end to end; it does not rank UQ methods "
            f"(that takes at least {MIN_ROWS} rows per dataset, e.g. config/cpu-study.yaml).</div>"
        )
        if small
        else ""
    )
    pages["overview"] = page_html(
        "The run",
        [
            intro,
            size_note,
            ("Rows per dataset", sizes),
            "<h2>Quality</h2>"
            + _warn_block(
                warnings,
                "No quality warnings: every method scored most queries and "
                "no statistic's replies were mostly cut off or unparsable.",
            ),
            ("Accuracy per model and dataset (evaluation rows)", _accuracy_wide(acc)),
        ],
        interactive=False,
    )
    pages["accuracy"] = page_html(
        "Accuracy per model and dataset",
        [
            (
                "Accuracy (n labelled evaluation rows)",
                _accuracy_wide(acc),
                "Evaluation rows only (the SLM's training rows feed the in-domain probe).",
            ),
            (
                "Per model and dataset",
                acc,
                "<code>n_rule</code>, <code>n_judge</code>, <code>n_truncated</code>: which check gave the label "
                "(a truncated reply counts as wrong).",
            ),
        ],
    )
    pages["alignment"] = page_html(
        "Uncertainty–correctness alignment",
        [
            (
                "ROC-AUC, PRR and AURAC per SLM, dataset and method",
                alignment_table(auc, missing),
                _rows_rule(inputs.get("auc", []))
                + "<code>n_missing</code>: queries without a confidence. CI: 95 % bootstrap. Definitions: docs/routing.md.",
            ),
        ],
    )
    for t in ("table4", "table5"):
        pages[t] = page_html(
            f"Table {t[-1]}: RMS distance to the oracle routing curve",
            [
                (
                    "Paper layout",
                    _csv(inputs.get(f"{t}_csv")),
                    "Lower is better; mean over sampling seeds at the configured k.",
                ),
                ("Full grid", _csv(inputs.get(f"{t}_full_csv"))),
            ],
        )
    qt = quality_table(quality, warn_share=warn_share)
    pages["quality"] = page_html(
        "Reply quality",
        [
            _warn_block(warnings, "No quality warnings."),
            (
                "Truncated and unparsable replies per model, dataset and statistic",
                qt,
                f"<code>warning</code>: a share above judge.quality_warn_fraction ({warn_share:g}). Samples: a sample cut off by its "
                "budget has no answer and counts as unparsable.",
            ),
            ("Missing confidences per SLM, dataset and method", missing),
        ],
    )
    rt = router_table(inputs.get("routers", []))
    pages["routers"] = page_html(
        "Routers: operating points",
        [
            _warn_block(
                [f"{r['file']}: {r['warning']}" for r in rt.iter_rows(named=True) if r["warning"]],
                "Every router splits the traffic.",
            ),
            (
                "One row per router file",
                rt,
                "Serve one with <code>uqroute serve --router FILE</code> (docs/router.md).",
            ),
        ],
    )
    status_path = inputs.get("status")
    status_md = Path(status_path).read_text() if status_path else ""
    pages["status"] = _status_page(status_md)
    pq = per_query(results_dir, models=models, slms=slms, datasets=datasets, methods=methods)
    note = (
        f"{pq.height} rows; the first {max_query_rows} are shown (uqroute.results.per_query gives all)."
        if pq.height > max_query_rows
        else f"{pq.height} rows. Search across every column; click a header to sort."
    )
    pages["queries"] = page_html(
        "Every query", [("One row per model, dataset and evaluation query", pq.head(max_query_rows), note)]
    )
    for name, text in pages.items():
        if name in outputs:
            io.write_text(text, outputs[name])
    return warnings


def _status_page(md: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md) if md else "<p>(no status)</p>"
    return page_html("Routing status", [body], interactive=False)


# ------------------------------------------------------------------ end of run
def run_summary(
    results_dir: str | Path = "results",
    *,
    slms: Sequence[str],
    llms: Sequence[str],
    datasets: Sequence[str],
    top: int = 3,
) -> str:
    """The end-of-run summary as text: accuracy per model (mean over the datasets' evaluation rows),
    the ``top`` best-aligned methods per SLM (mean ROC-AUC over datasets), and the quality warnings.
    Files the run did not make are said to be missing, never an error."""
    from ..results import correctness
    from ..schema import ARTIFACTS

    root = Path(results_dir)

    def path(artifact, **w):
        return root / ARTIFACTS[artifact].path.split("/", 1)[1].format(**w)

    lines = ["", "uqroute run summary", "==================="]
    try:
        acc = accuracy_table(correctness(root, models=list(dict.fromkeys([*slms, *llms])), datasets=datasets), slms)
        lines.append(
            "Accuracy (evaluation rows): "
            + "; ".join(
                f"{r['model']} {r['accuracy']:.3f} (n={r['n']})"
                for r in acc.group_by("model", maintain_order=True)
                .agg(
                    pl.col("n_labelled").sum().alias("n"),
                    ((pl.col("accuracy") * pl.col("n_labelled")).sum() / pl.col("n_labelled").sum()).alias("accuracy"),
                )
                .iter_rows(named=True)
                if r["accuracy"] is not None
            )
        )
    except (FileNotFoundError, io.ArtifactInputError) as err:
        lines.append(f"Accuracy: not available ({err})")
    for slm in slms:
        p = path("auc", slm=slm)
        if not p.is_file():
            lines.append(f"Best-aligned methods of {slm}: no routing results yet ({p})")
            continue
        auc = io.read_artifact(p, "auc", stage="summary").filter(pl.col("roc_auc").is_not_null())
        # rank only the methods with an AUC on every dataset where any method has one, so that a method
        # scored on a few queries of one dataset does not top the list
        n_ds = auc["dataset"].n_unique()
        per = auc.group_by("method").agg(pl.col("roc_auc").mean().alias("auc"), pl.len().alias("k"), pl.col("n").sum())
        best = per.filter(pl.col("k") == n_ds).sort("auc", "method", descending=[True, False]).head(top)
        partial = per.filter(pl.col("k") < n_ds).sort("method")["method"].to_list()
        lines.append(
            f"Best-aligned methods of {slm} (mean ROC-AUC over {n_ds} dataset(s)): "
            + (
                "; ".join(f"{r['method']} {r['auc']:.3f} (n={r['n']})" for r in best.iter_rows(named=True))
                or "none has an AUC on every dataset"
            )
        )
        if partial:
            lines.append(f"  not ranked (an AUC on fewer datasets): {', '.join(partial)}")
        n_min = int(auc["n"].min()) if auc.height else 0
        if n_min < MIN_ROWS:
            lines.append(f"  (as few as {n_min} queries per dataset: these AUCs have wide CIs and do not rank methods)")
    qpaths = [path("quality", model=m, dataset=d) for m in dict.fromkeys([*slms, *llms]) for d in datasets]
    upaths = [path("uq", slm=s, dataset=d) for s in slms for d in datasets]
    quality = _read_all([p for p in qpaths if p.is_file()], "quality", "summary")
    missing = missing_table([p for p in upaths if p.is_file()], slms)
    warnings = quality_warnings(quality, missing)
    lines.append(f"Quality warnings ({len(warnings)}):" if warnings else "Quality warnings: none.")
    lines += [f"  - {w}" for w in warnings]
    return "\n".join(lines)
