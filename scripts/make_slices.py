#!/usr/bin/env python
"""Make the small real dataset slices shipped in data/slices/ from the offline mirror.

For each dataset of ``uqroute.data.DATASETS`` present in the mirror, writes a
seeded uniform sample (default 40 rows, kept in source order) of its evaluation
split and, where the mirror has it, of its training split, in the mirror's layout
``<owner>__<name>/<config>/<split>.parquet``. Rows keep every hub column and the
parquet schema metadata (the ``huggingface`` feature schema), so the slices are
read by the same code path as the mirror (``data.source: slices``).

Usage:
    .venv/bin/python scripts/make_slices.py ../shared/datasets [--out data/slices] [--rows 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from uqroute.data import DATASETS


def slice_file(src: Path, dst: Path, rows: int, seed: int) -> int:
    """Copy a seeded sample of ``rows`` rows of ``src`` (all if fewer) to ``dst``; returns rows written."""
    table = pq.read_table(src)
    n = table.num_rows
    if rows < n:
        rel = "/".join(src.parts[-3:])
        rng = np.random.default_rng([seed, zlib.crc32(rel.encode())])
        keep = np.sort(rng.choice(n, size=rows, replace=False))
        table = table.take(keep)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(dst)
    return table.num_rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mirror", type=Path, help="the offline mirror root (e.g. ../shared/datasets)")
    ap.add_argument("--out", type=Path, default=Path("data/slices"))
    ap.add_argument("--rows", type=int, default=40, help="rows per split (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.mirror.is_dir():
        ap.error(f"mirror directory {args.mirror} does not exist")

    for spec in DATASETS.values():
        for split in (spec.eval_split, spec.train_split):
            if split is None:
                continue
            src = args.mirror / spec.split_file(split)
            if not src.is_file():
                print(f"{spec.name}: {split}: not in the mirror ({src}), skipped", file=sys.stderr)
                continue
            n = slice_file(src, args.out / spec.split_file(split), args.rows, args.seed)
            print(f"{spec.name}: {split}: {n} rows -> {args.out / spec.split_file(split)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
