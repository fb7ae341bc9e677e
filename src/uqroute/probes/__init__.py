"""Uncertainty probes over hidden states (paper §3.1 (7)–(8)): rule ``probe``.

``run_probes`` trains the in-domain probe (``trained_probe``) and the
leave-one-dataset-out probe (``ood_probe``) for one target dataset, writes their
P(correct) for the target's evaluation rows and saves both as safetensors. ``run_proxy_probes``
(rule ``proxy_probe``) trains, for each of several pairs of datasets, the OOD probe without both
datasets of the pair, for leak-free proxy pools.
``fit_probe`` / ``crossfit_predict`` / ``load_probe`` are usable on their own.
"""

from .inputs import ProbeInputError, ProbeInputs, load_probe_inputs
from .model import build_probe
from .run import in_domain_scores, leak_free_scores, ood_scores, probe_settings, run_probes, run_proxy_probes
from .train import CrossfitResult, FittedProbe, ProbeWarning, crossfit_predict, derive_seed, fit_probe
from .weights import load_probe, save_probe, save_probes

__all__ = [
    "run_probes",
    "run_proxy_probes",
    "leak_free_scores",
    "in_domain_scores",
    "ood_scores",
    "probe_settings",
    "build_probe",
    "fit_probe",
    "crossfit_predict",
    "CrossfitResult",
    "FittedProbe",
    "ProbeWarning",
    "ProbeInputError",
    "ProbeInputs",
    "load_probe_inputs",
    "save_probe",
    "save_probes",
    "load_probe",
    "derive_seed",
]
