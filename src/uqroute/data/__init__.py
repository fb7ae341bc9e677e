"""Dataset stage: the paper's 15 benchmarks in one schema (rule ``download``).

* :mod:`.registry` — ``DATASETS`` / ``get_spec``: hub id, config, splits, task type, domain.
* :mod:`.adapters` — one adapter per dataset: hub row → unified row.
* :mod:`.sources` — hub, offline mirror, or the shipped ``data/slices``.
* :mod:`.prompts` — one prompt function per task type.
* :mod:`.build` — ``load_rows`` / ``build_dataset``.
"""

from .adapters import ADAPTERS, canonical_number
from .build import build_dataset, load_rows, select_indices
from .checks import config_problems
from .errors import (
    CorruptFileError,
    DatasetError,
    EmptySplitError,
    MissingColumnError,
    RowError,
    SplitNotFoundError,
    UnknownDatasetError,
)
from .registry import ANSWER_FORMATS, DATASETS, DOMAINS, TASK_TYPES, DatasetSpec, get_spec
from .sources import SOURCES, read_split

__all__ = [
    "ADAPTERS",
    "ANSWER_FORMATS",
    "DATASETS",
    "DOMAINS",
    "SOURCES",
    "TASK_TYPES",
    "CorruptFileError",
    "DatasetError",
    "DatasetSpec",
    "EmptySplitError",
    "MissingColumnError",
    "RowError",
    "SplitNotFoundError",
    "UnknownDatasetError",
    "build_dataset",
    "canonical_number",
    "config_problems",
    "get_spec",
    "load_rows",
    "read_split",
    "select_indices",
]
