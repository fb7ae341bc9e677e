"""Fitting probes: standardise, train with BCE + Adam, predict; K-fold cross-fitting.

Deterministic on CPU under a seed: initialisation and mini-batch shuffling draw from one
``torch.Generator`` seeded by the caller, no global RNG state is read or advanced, and
training runs with ``torch.use_deterministic_algorithms(True)`` on one thread (both
restored afterwards).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..settings import defaults
from .model import build_probe

__all__ = [
    "ProbeWarning",
    "FittedProbe",
    "fit_probe",
    "crossfit_predict",
    "CrossfitResult",
    "derive_seed",
]

log = logging.getLogger(__name__)


class ProbeWarning(UserWarning):
    """A probe that could not be trained as configured (one-class labels, too few rows)."""


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 32-bit seed for one purpose (e.g. ``("fold", 3)``) derived from the run seed."""
    words = [int(seed) & 0xFFFFFFFF]
    for k in keys:
        words += [int(k)] if isinstance(k, int) else list(str(k).encode())
    return int(np.random.SeedSequence(words).generate_state(1)[0])


@contextlib.contextmanager
def _deterministic():
    """Deterministic kernels on one CPU thread, restored afterwards.

    The probe is small: one thread is as fast as several (and far faster on a loaded
    machine, where threads spin-wait), and it makes the floating-point reduction order,
    hence the trained weights, independent of the machine's core count.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(threads)


def _standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the training rows (std 0 → 1, so constant features stay 0)."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0) if len(x64) else np.zeros(x.shape[1])
    std = x64.std(axis=0) if len(x64) else np.ones(x.shape[1])
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class FittedProbe:
    """A trained probe (``kind="mlp"``) or a constant base-rate score (``kind="constant"``).

    ``predict(x)`` maps raw hidden states (n, d) to P(correct) (n,). Inputs are standardised
    with ``mean``/``std`` of the training rows before the network sees them.
    """

    kind: str
    input_dim: int
    hidden_sizes: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    base_rate: float
    net: nn.Sequential | None = None
    info: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"probe expects hidden states of shape (n, {self.input_dim}), got {x.shape}")
        if self.kind == "constant":
            return np.full(len(x), self.base_rate, dtype=np.float64)
        z = torch.from_numpy(((x.astype(np.float32) - self.mean) / self.std).astype(np.float32))
        self.net.eval()
        with torch.no_grad(), _deterministic():
            return torch.sigmoid(self.net(z).squeeze(-1)).double().numpy()


def _constant(x: np.ndarray, y: np.ndarray, hidden_sizes, reason: str, label: str) -> FittedProbe:
    base = float(np.mean(y))
    warnings.warn(
        f"{label}: {reason}; scoring every query with the constant training base rate {base:.4f}",
        ProbeWarning,
        stacklevel=3,
    )
    mean, std = _standardizer(x)
    return FittedProbe(
        "constant",
        x.shape[1],
        tuple(hidden_sizes),
        mean,
        std,
        base,
        None,
        {"n_train": int(len(y)), "n_positive": int(y.sum()), "reason": reason},
    )


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    *,
    hidden_sizes: Sequence[int] | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    label: str = "probe",
) -> FittedProbe:
    """Train the MLP probe on hidden states ``x`` (n, d) and labels ``y`` ∈ {0, 1} (n,).

    Binary cross-entropy on the logit (``BCEWithLogitsLoss``, i.e. BCE of the sigmoid output),
    Adam with learning rate ``lr``, ``epochs`` passes over seeded mini-batches of
    ``batch_size`` (paper: 20 epochs, lr 5e-4 in-domain and 1e-4 out-of-domain). One-class
    labels give a constant probe (the base rate) with a :class:`ProbeWarning`; no labels at
    all is a ``ValueError``. An argument left at ``None`` takes the ``probe`` section's default
    (``uqroute.settings.defaults("probe")``).
    """
    d = defaults("probe")
    hidden_sizes = d["hidden_sizes"] if hidden_sizes is None else hidden_sizes
    lr = d["lr"] if lr is None else lr
    epochs = d["epochs"] if epochs is None else epochs
    batch_size = d["batch_size"] if batch_size is None else batch_size
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"{label}: hidden states of shape {x.shape} do not match {len(y)} labels")
    if len(y) == 0:
        raise ValueError(f"{label}: no labelled training rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{label}: labels must be 0/1, got {sorted(set(y.tolist()))[:5]}")
    if y.min() == y.max():
        return _constant(x, y, hidden_sizes, f"all {len(y)} training labels are {bool(y[0])}", label)

    mean, std = _standardizer(x)
    xt = torch.from_numpy(((x.astype(np.float32) - mean) / std).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32))
    gen = torch.Generator().manual_seed(int(seed))
    with _deterministic():
        net = build_probe(x.shape[1], hidden_sizes, gen)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        loss_fn = nn.BCEWithLogitsLoss()
        net.train()
        epoch_loss = float("nan")
        for epoch in range(int(epochs)):
            order = torch.randperm(len(yt), generator=gen)
            total = 0.0
            for start in range(0, len(order), int(batch_size)):
                idx = order[start : start + int(batch_size)]
                opt.zero_grad()
                loss = loss_fn(net(xt[idx]).squeeze(-1), yt[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            epoch_loss = total / len(yt)
            log.debug("%s: epoch %d/%d loss %.4f", label, epoch + 1, epochs, epoch_loss)
    log.info("%s: trained on %d rows (%d positive), final epoch loss %.4f", label, len(y), int(y.sum()), epoch_loss)
    return FittedProbe(
        "mlp",
        x.shape[1],
        tuple(int(h) for h in hidden_sizes),
        mean,
        std,
        float(y.mean()),
        net,
        {"n_train": int(len(y)), "n_positive": int(y.sum()), "final_loss": epoch_loss},
    )


@dataclass
class CrossfitResult:
    """Cross-fitted scores: ``scores[i]`` comes from a probe that never saw row i's label.

    ``fold[i]`` is the fold whose held-out part held row i (−1: unlabelled row, scored by
    ``full``; −2: constant scheme). ``full`` is the probe fit on every labelled row (the one
    saved as weights).
    """

    scores: np.ndarray
    fold: np.ndarray
    n_folds: int
    full: FittedProbe
    scheme: str


def crossfit_predict(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int | None = None,
    seed: int = 0,
    label: str = "probe",
    **fit_kwargs,
) -> CrossfitResult:
    """Score every row of ``x`` with a probe that did not see its label (seeded stratified K-fold).

    Rows with a NaN label are never trained on; they are scored by the probe fit on all
    labelled rows. K is reduced to the size of the smaller class when that is below
    ``folds`` (with a :class:`ProbeWarning`); below 2, every row gets the constant base rate
    (scheme ``constant``). ``folds`` defaults to ``probe.crossfit_folds``; ``fit_kwargs`` go to
    :func:`fit_probe`.
    """
    from sklearn.model_selection import StratifiedKFold

    folds = defaults("probe")["crossfit_folds"] if folds is None else folds
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    labelled = np.flatnonzero(~np.isnan(y))
    if labelled.size == 0:
        raise ValueError(f"{label}: no row has a correctness label, nothing to cross-fit")
    yl = y[labelled]
    minority = int(min((yl == 1).sum(), (yl == 0).sum()))
    k = min(int(folds), minority)
    fold = np.full(len(y), -1, dtype=np.int64)
    if k < 2:
        full = _constant(
            x[labelled],
            yl,
            fit_kwargs.get("hidden_sizes") or defaults("probe")["hidden_sizes"],
            f"only {minority} row(s) of the smaller class among {labelled.size} labelled rows, "
            f"too few for {folds}-fold cross-fitting",
            label,
        )
        fold[:] = -2
        return CrossfitResult(full.predict(x), fold, 0, full, "constant")
    if k < folds:
        warnings.warn(
            f"{label}: the smaller class has only {minority} rows; cross-fitting with {k} folds instead of {folds}",
            ProbeWarning,
            stacklevel=2,
        )
    scores = np.full(len(y), np.nan)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=derive_seed(seed, "crossfit-split"))
    for f, (train, test) in enumerate(splitter.split(np.zeros(len(yl)), yl.astype(int))):
        probe = fit_probe(
            x[labelled[train]],
            yl[train],
            seed=derive_seed(seed, "fold", f),
            label=f"{label} fold {f + 1}/{k}",
            **fit_kwargs,
        )
        scores[labelled[test]] = probe.predict(x[labelled[test]])
        fold[labelled[test]] = f
    full = fit_probe(x[labelled], yl, seed=derive_seed(seed, "full"), label=f"{label} (all rows)", **fit_kwargs)
    unlabelled = np.flatnonzero(np.isnan(y))
    if unlabelled.size:
        scores[unlabelled] = full.predict(x[unlabelled])
    return CrossfitResult(scores, fold, k, full, "crossfit")
