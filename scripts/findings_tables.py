"""Write the summary tables of docs/findings.md from a results folder.

    python scripts/findings_tables.py RESULTS_DIR OUT_DIR [--k 0.1]

RESULTS_DIR is a run's ``results/`` (e.g. of ``config/cpu-study.yaml``); OUT_DIR gets one CSV per
table of :func:`uqroute.findings.summary_tables` (docs/findings/ in the repository).
"""

import argparse

from uqroute.findings import summary_tables, write_tables

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("results_dir")
ap.add_argument("out_dir")
ap.add_argument("--k", type=float, default=0.1, help="proxy sampling ratio of the proxy_vs_random table (routing.k)")
args = ap.parse_args()
for path in write_tables(summary_tables(args.results_dir, k=args.k), args.out_dir):
    print(path)
