"""Errors raised while fetching or loading a model; each names the model and the culprit."""

from __future__ import annotations


class ModelSourceError(ValueError):
    """A model's source in the config is invalid, missing, corrupt or unsupported."""


class ChecksumError(ModelSourceError):
    """A downloaded or assembled file does not have the sha256 the config pins."""
