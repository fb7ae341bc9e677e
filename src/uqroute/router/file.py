"""The router file: build, write, read and check it (fields: ``uqroute.schema.ROUTER_FILE``,
rendered in docs/artifacts.md)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from .. import io
from ..schema import ROUTER_FILE

log = logging.getLogger("uqroute.router")

__all__ = [
    "FORMAT",
    "VERSION",
    "RouterFileError",
    "check_router_file",
    "read_router_file",
    "write_router_file",
    "file_sha256",
    "threshold_value",
    "INFERENCE_KEYS",
    "WARMUP_KEYS",
    "file_warmup",
]

FORMAT = "uqroute-router"
VERSION = 1
#: The keys of the file's ``inference`` section taken from the pipeline's ``inference`` config.
INFERENCE_KEYS = (
    "hidden_layer",
    "num_samples",
    "sample_temperature",
    "sample_max_new_tokens",
    "verbal_max_new_tokens",
    "dtype",
)

#: The keys of the file's ``serving.warmup`` section (:func:`uqroute.router.tracking.warmup_plan`; its
#: ``min_samples`` is ``serving.min_samples``, its ``holdout_n`` is ``holdout.n``).
WARMUP_KEYS = (
    "source",
    "drift_min_samples",
    "alpha",
    "z",
    "fraction_sd_warmup",
    "band_warmup",
    "fraction_sd_tracking",
    "band_tracking",
)

_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class RouterFileError(ValueError):
    """A router file that is not valid (names the file and the field)."""


def _get(obj: Mapping, path: str):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def check_router_file(obj, *, where: str = "router file") -> dict:
    """Check ``obj`` against :data:`uqroute.schema.ROUTER_FILE`: every documented field present with its JSON
    type (null only where nullable; a nullable object's sub-fields are skipped when it is null), no
    undocumented field, ``format``/``version`` as written by this version, aligned grid lists."""
    if not isinstance(obj, Mapping):
        raise RouterFileError(f"{where}: not a JSON object")
    fields = {f.path: f for f in ROUTER_FILE}
    null_parents = set()
    for f in ROUTER_FILE:
        if any(f.path.startswith(p + ".") for p in null_parents):
            continue
        try:
            v = _get(obj, f.path)
        except KeyError:
            raise RouterFileError(f"{where}: field {f.path!r} is missing") from None
        if v is None:
            if not f.nullable:
                raise RouterFileError(f"{where}: field {f.path!r} is null but may not be")
            null_parents.add(f.path)
            continue
        ok = isinstance(v, _TYPES[f.type]) and not (f.type in ("integer", "number") and isinstance(v, bool))
        if not ok:
            raise RouterFileError(f"{where}: field {f.path!r} is a {type(v).__name__}, documented {f.type}")

    def walk(node, prefix):
        for k, v in node.items():
            path = f"{prefix}{k}"
            if path not in fields:
                raise RouterFileError(f"{where}: undocumented field {path!r}")
            if (
                isinstance(v, Mapping)
                and fields[path].type == "object"
                and any(p.startswith(path + ".") for p in fields)
            ):
                walk(v, path + ".")

    walk(obj, "")
    if obj["format"] != FORMAT:
        raise RouterFileError(f"{where}: format is {obj['format']!r}, not {FORMAT!r}")
    if obj["version"] != VERSION:
        raise RouterFileError(f"{where}: version {obj['version']!r}; this uqroute reads version {VERSION}")
    g = obj["grid"]
    if not (len(g["ratio"]) == len(g["threshold"]) == len(g["q"]) == len(obj["curve"]["accuracy_mean"])):
        raise RouterFileError(f"{where}: grid.ratio, grid.threshold, grid.q and curve.accuracy_mean differ in length")
    if obj["serving"]["mode"] not in ("fixed", "tracking"):
        raise RouterFileError(f"{where}: serving.mode must be fixed or tracking, got {obj['serving']['mode']!r}")
    if not obj["holdout"]["confidence"]:
        raise RouterFileError(f"{where}: holdout.confidence is empty")
    return dict(obj)


def file_warmup(plan: Mapping) -> dict:
    """The ``serving.warmup`` section from a :func:`uqroute.router.tracking.warmup_plan`."""
    return {k: plan[k] for k in WARMUP_KEYS}


def _add_warmup(obj: dict, where: str) -> dict:
    """A file written before ``serving.warmup`` existed: its warm-up is chosen as calibration now chooses it
    (from the hold-out's size; the constant ``min_samples`` such files carry is replaced)."""
    from .tracking import warmup_plan

    serving = obj.get("serving")
    if not isinstance(serving, dict) or "warmup" in serving:
        return obj
    try:
        plan = warmup_plan(
            float(obj["operating_point"]["llm_fraction"]),
            len(obj["holdout"]["confidence"]),
            float(serving["drift_margin"]),
            int(serving["window"]),
        )
    except (KeyError, TypeError, ValueError):
        return obj  # check_router_file names what is wrong
    log.info(
        "%s: written before the warm-up was stored; warm-up chosen from the hold-out's size: %d requests "
        "(the file's min_samples %s is not used)",
        where,
        plan["min_samples"],
        serving.get("min_samples"),
    )
    return {**obj, "serving": {**serving, "min_samples": plan["min_samples"], "warmup": file_warmup(plan)}}


def threshold_value(threshold: float | None, fraction: float) -> float:
    """A stored threshold as a float: null means −∞ at fraction 0 (route nothing) and +∞ otherwise (fraction 1)."""
    if threshold is not None:
        return float(threshold)
    return -math.inf if fraction <= 0 else math.inf


def write_router_file(obj: Mapping, path) -> None:
    """Check and write atomically (sorted keys, 2-space indent: the bytes depend on the content only)."""
    check_router_file(obj, where=str(path))
    io.write_json(dict(obj), path)


def read_router_file(path) -> dict:
    """Read and check a router file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"router file {path} does not exist (rule `router` or `uqroute calibrate` writes it)")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RouterFileError(f"router file {path}: not valid JSON ({err})") from None
    if isinstance(obj, dict):
        obj = _add_warmup(obj, f"router file {path}")
    return check_router_file(obj, where=f"router file {path}")


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
