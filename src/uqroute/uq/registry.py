"""The UQ method registry, in the style of LM-Polygraph's estimators.

A UQ method is a small pure function over the *joined frame* of one dataset (the
evaluation rows of the ``data`` artifact joined on ``id`` with the ``generations``
and ``probes`` artifacts, see ``src/uqroute/schema.py``). It returns one float per
row: a confidence (higher = more confident), ``NaN`` where the method cannot score
that row (written as null in the ``uq`` artifact).

Adding a method is one function plus one registration::

    @register("my_method", columns=("token_logprobs",), family="token_probability",
              source="Author et al. 2024, 'Title'")
    def my_method(frame: pl.DataFrame) -> np.ndarray:
        ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["UQMethod", "METHODS", "ANSWER_LABELS", "register", "get_methods", "probe_methods", "UnknownMethodError"]

MethodFn = Callable[[pl.DataFrame], np.ndarray]


class UnknownMethodError(KeyError, ValueError):
    """A UQ method name that is not in :data:`METHODS`."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class UQMethod:
    """One registered UQ method.

    Attributes:
        name: the method's name everywhere (config, column, figure labels).
        fn: ``frame -> float array`` (one confidence per row, NaN = cannot score).
        columns: the joined-frame columns ``fn`` reads; checked before it runs.
        family: the paper's category (Table 1): ``token_probability``, ``consistency``,
            ``verbalized`` or ``probe``.
        source: the paper the method comes from.
        answer: which answer the confidence is about, and so which correctness label it is
            evaluated against: ``greedy`` (the greedy response; ``correctness.correct``) or
            ``verbal_1s`` (the answer stated in the verbalization-1s reply itself;
            ``correctness.verbal_1s_correct``).
    """

    name: str
    fn: MethodFn
    columns: tuple[str, ...]
    family: str
    source: str
    answer: str = "greedy"

    def __call__(self, frame: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"UQ method {self.name!r} needs columns {missing}, which the joined frame lacks")
        out = np.asarray(self.fn(frame), dtype=np.float64)
        if out.shape != (frame.height,):
            raise ValueError(f"UQ method {self.name!r} returned shape {out.shape} for {frame.height} rows")
        return out


METHODS: dict[str, UQMethod] = {}


#: The answers a confidence can be about, and the ``correctness`` column that labels each.
ANSWER_LABELS = {"greedy": "correct", "verbal_1s": "verbal_1s_correct"}


def register(
    name: str, *, columns: tuple[str, ...], family: str, source: str, answer: str = "greedy"
) -> Callable[[MethodFn], MethodFn]:
    """Decorator: add ``fn`` to :data:`METHODS` under ``name``."""

    def deco(fn: MethodFn) -> MethodFn:
        if name in METHODS:
            raise ValueError(f"UQ method {name!r} is registered twice")
        if answer not in ANSWER_LABELS:
            raise ValueError(f"UQ method {name!r}: answer must be one of {sorted(ANSWER_LABELS)}, got {answer!r}")
        METHODS[name] = UQMethod(name=name, fn=fn, columns=tuple(columns), family=family, source=source, answer=answer)
        return fn

    return deco


def get_methods(names) -> list[UQMethod]:
    """The registered methods for ``names``, in that order; unknown names → :class:`UnknownMethodError`."""
    names = list(names)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UnknownMethodError(f"unknown UQ method(s) {unknown}; known methods: {sorted(METHODS)}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"UQ method(s) {dupes} listed more than once")
    return [METHODS[n] for n in names]


def probe_methods(names) -> list[str]:
    """The names among ``names`` of methods in the ``probe`` family: those scored by rule ``probe``
    (which trains the in-domain and the leave-one-dataset-out probe together). Unknown names are
    left out (:func:`get_methods` reports them)."""
    return [n for n in names if n in METHODS and METHODS[n].family == "probe"]
