"""The start-up checks of a config's UQ methods (called by :mod:`uqroute.preflight`)."""

from __future__ import annotations

from collections.abc import Mapping

from .registry import METHODS, probe_methods

__all__ = ["config_problems"]


def config_problems(config: Mapping) -> list[str]:
    """The mistakes in a validated config's ``uq`` section, each naming its key:

    * ``uq.methods``: a name that is not a registered UQ method;
    * ``datasets``: fewer than two while a probe method is selected (the leave-one-dataset-out
      probe trains on the run's other datasets).
    """
    problems: list[str] = []
    methods = list((config.get("uq") or {}).get("methods") or [])
    datasets = list(config.get("datasets") or [])
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        problems.append(f"uq.methods: unknown UQ method(s) {unknown}; known: {', '.join(sorted(METHODS))}")
    probes = probe_methods(methods)
    if probes and len(datasets) < 2:
        problems.append(
            f"datasets: {probes} (uq.methods) need at least two datasets, since the leave-one-dataset-out probe "
            f"trains on the run's other datasets; the run has {datasets}. Add a dataset or drop {probes} from uq.methods"
        )
    return problems
