"""Per-query random seeds, independent of batch composition and row order."""

from __future__ import annotations

import hashlib


def branch_seed(seed: int | None, key: str, k: int) -> int:
    """A 63-bit seed derived from ``(seed, key, k)`` (key = query id, k = sample index).

    Each sampled continuation gets its own ``torch.Generator`` seeded with this value,
    so a query's samples are reproducible whatever else shares its batch.
    """
    digest = hashlib.sha256(f"{0 if seed is None else int(seed)}\x1f{key}\x1f{int(k)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
