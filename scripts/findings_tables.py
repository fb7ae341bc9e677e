"""Write the summary tables of docs/findings.md from a results folder.

    python scripts/findings_tables.py RESULTS_DIR OUT_DIR [--k 0.1] [--doc docs/findings.md]

RESULTS_DIR is a run's ``results/`` (e.g. of ``config/cpu-study.yaml``); OUT_DIR gets one CSV per
table of :func:`uqroute.findings.summary_tables` (docs/findings/ in the repository). With ``--doc``,
the table blocks of that document are rewritten from the new tables (the prose is not: its
numbers are checked against the tables by tests/test_findings.py).
"""

import argparse
from pathlib import Path

import polars as pl

from uqroute.findings import refresh_doc, summary_tables, write_tables

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("results_dir")
ap.add_argument("out_dir")
ap.add_argument("--k", type=float, default=0.1, help="proxy sampling ratio of the proxy_vs_random table (routing.k)")
ap.add_argument("--doc", help="a document whose table blocks to rewrite from the new tables")
args = ap.parse_args()
tables = summary_tables(args.results_dir, k=args.k)
paths = write_tables(tables, args.out_dir)
for path in paths:
    print(path)
if args.doc:
    doc = Path(args.doc)
    committed = {p.stem: pl.read_csv(p) for p in paths}  # as the CSV holds them
    doc.write_text(refresh_doc(doc.read_text(), committed))
    print(doc)
