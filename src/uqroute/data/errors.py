"""Errors raised by the dataset stage. Each message names the culprit (dataset, split, file, row, column)."""

from __future__ import annotations


class DatasetError(ValueError):
    """Base class for every dataset-stage input error."""


class UnknownDatasetError(DatasetError):
    """A dataset name that is not in the registry."""


class SplitNotFoundError(DatasetError, FileNotFoundError):
    """A split file (mirror/slices) or split (hub) that does not exist."""


class MissingColumnError(DatasetError):
    """A split file that lacks a column the dataset's adapter reads."""


class CorruptFileError(DatasetError):
    """A mirror/slices file that cannot be read as parquet (truncated, garbage)."""


class EmptySplitError(DatasetError):
    """A split with no rows."""


class RowError(DatasetError):
    """A source row that cannot be turned into a unified row (e.g. an unlabeled answer)."""

    def __init__(self, dataset: str, split: str, index: int, column: str, problem: str):
        self.dataset, self.split, self.index, self.column = dataset, split, index, column
        super().__init__(f"dataset {dataset!r}, split {split!r}, row {index}, column {column!r}: {problem}")
