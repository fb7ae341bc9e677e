"""Resumable work in shards: finished shards survive a killed run; the final artifact appears atomically.

Rows are split into consecutive shards of ``shard_size``. Each finished shard is written
atomically to ``<out>.shards/shard-NNNNN.parquet`` beside the final artifact. The shard
directory carries a ``fingerprint.json`` of everything that determines the results
(model, spec, inference config, seed, row ids); shards written under another
fingerprint are discarded, never mixed in. When every shard exists, the caller
assembles the artifact and removes the shard directory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl

from ..io import fingerprint, write_json, write_parquet

__all__ = ["ShardStore", "fingerprint"]


class ShardStore:
    """Shards of one artifact, in ``<out_path>.shards/``."""

    def __init__(self, out_path, fp: str):
        self.dir = Path(str(out_path) + ".shards")
        self.fp = fp
        meta = self.dir / "fingerprint.json"
        if self.dir.exists():
            try:
                old = json.loads(meta.read_text()).get("fingerprint")
            except (OSError, ValueError):
                old = None
            if old != fp:
                shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            write_json({"fingerprint": fp}, meta)

    def path(self, i: int) -> Path:
        return self.dir / f"shard-{i:05d}.parquet"

    def done(self, i: int) -> bool:
        return self.path(i).is_file()

    def run(self, n_shards: int, compute: Callable[[int], pl.DataFrame]) -> list[pl.DataFrame]:
        """Compute every missing shard (in order), then return all shards."""
        for i in range(n_shards):
            if not self.done(i):
                write_parquet(compute(i), self.path(i))
        return [pl.read_parquet(self.path(i)) for i in range(n_shards)]

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
